"""Repository hosts: how to read one file at one commit from each kind.

`RepoHost` is the base; `GitHubHost` and `GitLabHost` speak the hosts'
REST APIs, `hubext.repofiles.gitcli.GitHost` speaks git itself. The
fetcher makes one instance per allowlisted host and never hands a host a
repository on another host.
"""

import base64
import json
from urllib.parse import quote, urlsplit

from tornado.httpclient import AsyncHTTPClient
from traitlets import Bool, Float, Instance, Int, Unicode
from traitlets.config import LoggingConfigurable

from .errors import RepoFileError
from .http import BadRedirect, TooLarge, Unreachable, capped_get
from .launch import LaunchRef

#: Cap on the commit probe's body, which is read only for its status.
PROBE_LIMIT = 1 << 20


def short(commit: str) -> str:
    """The 7-character form people recognise from their git host."""
    return commit[:7]


class RepoHost(LoggingConfigurable):
    """One allowlisted repository host.

    Override points:

    - `fetch_file` (required): the file's bytes, ``None`` when the commit
      exists but has no such file, `RepoFileError` for anything else;
    - `default_api_url`: the API base when the admin gives none.

    The fetcher sets every trait; none is read from configuration files.
    """

    kind = ""

    host = Unicode(help="The allowlist key: host name, or host:port.")
    api_url = Unicode(help="Base URL of the host's API (unused by plain git).")
    token = Unicode(help="Access token for this host; never logged or shown.")
    timeout = Float(10.0, help="Seconds before giving up on the host.")
    max_bytes = Int(65536, help="Largest file read, in bytes.")
    allow_http = Bool(False, help="Whether plain http:// URLs may be used.")

    def default_api_url(self) -> str:
        """The API base used when the admin's host entry has no ``api_url``."""
        return f"https://{self.host}"

    async def fetch_file(self, ref: LaunchRef, path: str) -> bytes | None:
        """Read ``path`` from ``ref.repo`` at ``ref.commit``."""
        raise NotImplementedError

    def where(self, ref: LaunchRef, path: str) -> str:
        """``path`` in ``repo`` at ``commit`` on ``host``, for messages."""
        return f"{path} in {ref.repo} at commit {short(ref.commit)} on {self.host}"

    def error(
        self, message: str, ref: LaunchRef, path: str, *, permanent=False, **fields
    ):
        """A `RepoFileError` carrying the launch's coordinates for the log.

        ``permanent``: the refusal follows from the commit alone and may be
        cached (see `RepoFileError`).
        """
        return RepoFileError(
            message,
            permanent=permanent,
            host=self.host,
            repo=ref.repo,
            commit=ref.commit,
            path=path,
            **fields,
        )

    def too_large(self, ref: LaunchRef, path: str, size=None) -> RepoFileError:
        """The refusal of a file above the cap; ``size`` when it is known."""
        return self.error(
            f"{self.where(ref, path)} is larger than the {self.max_bytes} bytes "
            f"hubext reads. Keep {path} to a few short lines.",
            ref,
            path,
            permanent=True,
            **({"size": size} if size is not None else {}),
        )

    def not_a_file(self, ref: LaunchRef, path: str) -> RepoFileError:
        return self.error(
            f"{self.where(ref, path)} is not a regular file (a directory, "
            f"link or submodule). Make {path} a plain text file.",
            ref,
            path,
            permanent=True,
        )

    def private_hint(self) -> str:
        if self.token:
            return (
                f"or the access token the hub admins configured for {self.host} "
                "cannot read it"
            )
        return (
            "or it is private: the hub admins can configure an access token "
            f"for {self.host} (c.RepoFileFetcher.tokens)"
        )


class HTTPRepoHost(RepoHost):
    """A host with a REST API that serves raw files by commit.

    Override points: `file_url`, `commit_url`, `auth_headers`, `decode`.
    A 404 for the file is told apart from a missing (or hidden) repository
    or commit by asking for the commit: only then is it "no such file".
    """

    client = Instance(
        AsyncHTTPClient,
        help="The fetcher's own HTTP client: never the hub's shared one, "
        "whose few slots a hanging host would otherwise hold.",
    )

    def file_url(self, ref: LaunchRef, path: str) -> str:
        raise NotImplementedError

    def commit_url(self, ref: LaunchRef) -> str:
        raise NotImplementedError

    def auth_headers(self) -> dict:
        return {}

    def file_headers(self) -> dict:
        return {}

    def commit_headers(self) -> dict:
        return {}

    def decode(self, response, ref: LaunchRef, path: str) -> bytes:
        return response.body

    def base(self) -> str:
        return (self.api_url or self.default_api_url()).rstrip("/")

    async def get(self, url, headers, ref: LaunchRef, path: str, limit=None):
        """GET with this host's token, cap, timeout and redirect rule."""
        headers = {"User-Agent": "hubext", **headers, **self.auth_headers()}
        origin = urlsplit(self.base())
        allowed = {f"{origin.scheme}://{origin.netloc.lower()}"}
        try:
            return await capped_get(
                url,
                headers,
                client=self.client,
                timeout=self.timeout,
                max_bytes=limit or self.max_bytes,
                allowed=allowed,
            )
        except TooLarge as e:
            raise self.too_large(ref, path, e.args[0]) from None
        except BadRedirect as e:
            target = urlsplit(e.location).netloc or e.location
            raise self.error(
                f"{self.host} redirected the request for {self.where(ref, path)} "
                f"to {target}, which is not an allowed repository host. Hub "
                "admins: check the api_url of this host in "
                "c.RepoFileFetcher.hosts.",
                ref,
                path,
                redirect=target,
            ) from None
        except Unreachable as e:
            if e.timed_out:
                what = f"did not answer within {self.timeout:g} seconds"
            else:
                what = f"could not be reached ({e.reason})"
            raise self.error(
                f"{self.host} {what} while reading {self.where(ref, path)}. "
                "Try launching again in a few minutes.",
                ref,
                path,
                reason=e.reason,
            ) from None

    async def fetch_file(self, ref: LaunchRef, path: str) -> bytes | None:
        headers = self.file_headers()
        response = await self.get(self.file_url(ref, path), headers, ref, path)
        if response.code == 200:
            return self.decode(response, ref, path)
        if response.code == 404:
            # Only the status matters; a long commit message is no error.
            url, headers = self.commit_url(ref), self.commit_headers()
            probe = await self.get(url, headers, ref, path, limit=PROBE_LIMIT)
            if probe.code == 200:
                return None
            if probe.code == 404:
                raise self.error(
                    f"{self.host} has no repository {ref.repo} with commit "
                    f"{short(ref.commit)}, {self.private_hint()}.",
                    ref,
                    path,
                    status=404,
                )
            response = probe
        raise self.status_error(response, ref, path)

    def status_error(self, response, ref: LaunchRef, path: str) -> RepoFileError:
        """The message for an HTTP status other than 200 and 404."""
        code = response.code
        where = self.where(ref, path)
        if code == 401:
            text = (
                f"{self.host} refused the access token configured for it "
                f"(HTTP 401) while reading {where}. Hub admins: renew the token "
                f"in c.RepoFileFetcher.tokens."
            )
        elif code in (403, 429) and self.rate_limited(response):
            text = (
                f"{self.host} is limiting the number of requests (HTTP {code}) "
                f"while reading {where}. Try launching again in a few minutes."
            )
        elif code in (401, 403):
            text = f"{self.host} denied access (HTTP {code}) to {where}, {self.private_hint()}."
        elif code >= 500:
            text = (
                f"{self.host} had an internal error (HTTP {code}) while reading "
                f"{where}. Try launching again in a few minutes."
            )
        else:
            text = f"{self.host} answered HTTP {code} while reading {where}."
        return self.error(text, ref, path, status=code)

    def rate_limited(self, response) -> bool:
        headers = {k.lower(): v for k, v in response.headers.items()}
        return response.code == 429 or headers.get("x-ratelimit-remaining") == "0"


class GitHubHost(HTTPRepoHost):
    """GitHub or GitHub Enterprise: the REST contents API, raw media type."""

    kind = "github"

    def default_api_url(self) -> str:
        if self.host == "github.com":
            return "https://api.github.com"
        return f"https://{self.host}/api/v3"

    def auth_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def file_headers(self) -> dict:
        return {
            "Accept": "application/vnd.github.raw",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    def commit_headers(self) -> dict:
        return {"Accept": "application/vnd.github.sha"}

    def file_url(self, ref: LaunchRef, path: str) -> str:
        return (
            f"{self.base()}/repos/{quote(ref.repo)}/contents/{quote(path)}"
            f"?ref={ref.commit}"
        )

    def commit_url(self, ref: LaunchRef) -> str:
        return f"{self.base()}/repos/{quote(ref.repo)}/commits/{ref.commit}"

    def decode(self, response, ref: LaunchRef, path: str) -> bytes:
        """Raw bytes, or the base64 JSON form some servers send instead."""
        ctype = {k.lower(): v for k, v in response.headers.items()}.get(
            "content-type", ""
        )
        if not ctype.startswith("application/json"):
            return response.body
        try:
            item = json.loads(response.body)
        except ValueError:
            item = None
        if isinstance(item, dict) and item.get("type") == "file":
            if item.get("encoding") == "base64":
                return base64.b64decode(item.get("content", ""))
        raise self.not_a_file(ref, path)


class GitLabHost(HTTPRepoHost):
    """GitLab (gitlab.com or self-hosted): API v4 raw file endpoint."""

    kind = "gitlab"

    def auth_headers(self) -> dict:
        return {"PRIVATE-TOKEN": self.token} if self.token else {}

    def project(self, ref: LaunchRef) -> str:
        return f"{self.base()}/api/v4/projects/{quote(ref.repo, safe='')}"

    def file_url(self, ref: LaunchRef, path: str) -> str:
        return (
            f"{self.project(ref)}/repository/files/{quote(path, safe='')}/raw"
            f"?ref={ref.commit}"
        )

    def commit_url(self, ref: LaunchRef) -> str:
        return f"{self.project(ref)}/repository/commits/{ref.commit}"
