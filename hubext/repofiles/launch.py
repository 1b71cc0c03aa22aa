"""Where a launch came from: BinderHub's ``user_options`` as a frozen value.

BinderHub passes the repository twice: ``repo_url`` and the *persistent*
request ``v2/<provider>/<spec>``, whose spec ends with the resolved commit.
The commit is taken from the persistent request (never from ``binder_request``,
which may say ``HEAD``), and the two are checked against each other so that
a file is never read from a different repository than the one launched.
"""

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .errors import RepoFileError

#: BinderHub's default URL prefixes for the providers that have git commits.
PROVIDER_PREFIXES = {"gh": "github", "gl": "gitlab", "git": "git"}

_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


@dataclass(frozen=True)
class LaunchRef:
    """One repository at one commit, as launched.

    ``provider`` is ``"github"``, ``"gitlab"`` or ``"git"``; ``host`` is the
    allowlist key (lower-case host name, plus ``:port`` when the URL names
    one); ``repo`` is ``"org/repo"``, the GitLab project path, or the git
    URL for the generic provider.
    """

    provider: str
    host: str
    repo: str
    commit: str
    repo_url: str


def host_key(url: str) -> str:
    """The allowlist key of a URL: ``host`` or ``host:port``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port is not None else host


def _fail(message: str, **fields) -> RepoFileError:
    # the same launch request is refused the same way every time
    return RepoFileError(message, permanent=True, **fields)


def _split_request(persistent: str) -> tuple[str, str, str]:
    """Split ``v2/<prefix>/<spec>/<commit>`` into prefix, spec and commit."""
    parts = persistent.strip("/").split("/", 2)
    if len(parts) != 3 or parts[0] != "v2" or "/" not in parts[2]:
        raise _fail(
            f"BinderHub sent an unexpected launch request {persistent!r}; "
            "expected 'v2/<provider>/<repository>/<commit>'. "
            "Launch again from the BinderHub page.",
            binder_persistent_request=persistent,
        )
    spec, commit = parts[2].rsplit("/", 1)
    return parts[1], spec, commit


def _check_commit(commit: str, user_options: dict) -> None:
    if not _SHA.fullmatch(commit):
        raise _fail(
            f"The launch names the commit {commit!r}, which is not a full "
            "commit hash. Launch again from the BinderHub page.",
            commit=commit,
        )
    image = user_options.get("image") or ""
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    if _SHA.fullmatch(tag) and tag != commit:
        raise _fail(
            f"The launch is inconsistent: the image is built from commit {tag} "
            f"but the request names commit {commit}. Launch again from the "
            "BinderHub page.",
            image=image,
            commit=commit,
        )


def _repo_from_url(repo_url: str, scheme_ok=("https", "http")) -> tuple[str, str]:
    """Host key and path (no leading slash, no ``.git``) of ``repo_url``."""
    parts = urlsplit(repo_url)
    if parts.scheme not in scheme_ok or not parts.hostname:
        raise _fail(
            f"Repository files can only be read over HTTP(S), and the repository "
            f"URL {_safe_url(repo_url)!r} is not an http:// or https:// URL. "
            "Ask the hub admins which git hosts are supported.",
            repo_url=_safe_url(repo_url),
        )
    if parts.username or parts.password:
        raise _fail(
            "The repository URL contains a user name or password. Remove them "
            "from the URL; access to private repositories is configured by "
            "the hub admins.",
            repo_url=_safe_url(repo_url),
        )
    path = parts.path.strip("/")
    path = path[:-4] if path.endswith(".git") else path
    return host_key(repo_url), path


def _safe_url(url: str) -> str:
    """``url`` without any user name or password in it."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def _require(user_options, key: str) -> str:
    value = user_options.get(key)
    if not isinstance(value, str) or not value:
        raise _fail(
            f"The launch has no {key!r}, so hubext cannot tell which repository "
            "and commit were launched. Launch from the BinderHub page rather "
            "than the JupyterHub API.",
            missing=key,
        )
    return value


def parse_launch(user_options: dict, prefixes: dict | None = None) -> LaunchRef:
    """Read the launched repository and commit from BinderHub's ``user_options``.

    Raises `RepoFileError` when a key is missing or malformed, when the
    provider has no git commits (Zenodo, Figshare, ...), or when
    ``repo_url`` and ``binder_persistent_request`` disagree. ``prefixes``
    maps BinderHub's provider prefixes to kinds (default
    `PROVIDER_PREFIXES`), for hubs that register extra providers.
    """
    if not isinstance(user_options, dict):
        raise _fail("The launch carries no options; launch from the BinderHub page.")
    persistent = _require(user_options, "binder_persistent_request")
    repo_url = _require(user_options, "repo_url")
    prefix, spec, commit = _split_request(persistent)
    provider = (prefixes or PROVIDER_PREFIXES).get(prefix)
    if provider is None:
        raise _fail(
            f"Repository files can be read from GitHub, GitLab and git "
            f"launches only, and this launch came from {prefix!r}. The "
            "defaults apply only if the hub admins allow it "
            "(c.RepoFileFetcher.on_error = 'defaults').",
            provider=prefix,
        )
    _check_commit(commit, user_options)
    claimed = unquote(spec)
    if provider == "git":
        host, _ = _repo_from_url(claimed)
        repo, expected = claimed, repo_url
    else:
        host, repo = _repo_from_url(repo_url)
        expected = repo
    if claimed != expected:
        raise _fail(
            f"The launch is inconsistent: it names the repository {claimed!r} "
            f"but its URL is {_safe_url(repo_url)!r}. Launch again from the "
            "BinderHub page.",
            repo_url=_safe_url(repo_url),
            binder_persistent_request=persistent,
        )
    return LaunchRef(provider, host, repo, commit, repo_url)
