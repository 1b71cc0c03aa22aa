"""`RepoFileFetcher`: the one object the spawner asks for a repository file.

It checks the launch against the admin's allowlist before any connection,
picks the host's provider, and keeps a bounded cache keyed by
(host, repo, commit, path). A commit never changes, so an answer (including
"no such file") stays valid, and so does a refusal that follows from the
commit's content (too large, not a regular file): BinderHub retries a
failed launch four times, and none of the retries asks the host again.
Failures that may pass (timeouts, server errors, access) are not cached.
Concurrent launches of the same commit wait on one shared upstream request.

API requests go through the fetcher's own HTTP client, one per event loop,
never tornado's shared ``AsyncHTTPClient()``: that one has ``max_clients``
slots for the whole hub (its proxy API calls too), and a hanging repository
host would hold them.
"""

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from posixpath import normpath
from urllib.parse import urlsplit

from tornado.httpclient import AsyncHTTPClient
from traitlets import (
    Any,
    CaselessStrEnum,
    Dict,
    Float,
    Instance,
    Int,
    TraitError,
    Unicode,
    default,
    validate,
)
from traitlets.config import LoggingConfigurable

from .errors import RepoFileError
from .gitcli import GitHost
from .launch import PROVIDER_PREFIXES, LaunchRef, parse_launch
from .providers import GitHubHost, GitLabHost, HTTPRepoHost, RepoHost, short

HOST_KINDS = {"github": GitHubHost, "gitlab": GitLabHost, "git": GitHost}

#: Which host kinds may serve each kind of launch. Every GitHub or GitLab
#: host also speaks git, so a generic git launch may name one.
SERVES = {
    "github": {"github"},
    "gitlab": {"gitlab"},
    "git": {"git", "github", "gitlab"},
}

HOST_KEYS = {"provider", "api_url", "allow_http", "username"}


def _check_entry(name: str, entry) -> None:
    """Raise `TraitError` naming the entry of ``hosts`` that is wrong."""
    where = f"c.RepoFileFetcher.hosts[{name!r}]"
    if not isinstance(entry, dict):
        raise TraitError(f"{where} must be a dict such as {{'provider': 'github'}}")
    unknown = set(entry) - HOST_KEYS
    if unknown:
        raise TraitError(
            f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(HOST_KEYS)}"
        )
    if entry.get("provider") not in HOST_KINDS:
        raise TraitError(
            f"{where}['provider'] must be one of {sorted(HOST_KINDS)}, "
            f"not {entry.get('provider')!r}"
        )
    api_url = entry.get("api_url")
    if api_url is not None and urlsplit(str(api_url)).scheme not in ("http", "https"):
        raise TraitError(f"{where}['api_url'] must be an http(s) URL, not {api_url!r}")
    if name != name.lower() or "/" in name or not name:
        raise TraitError(
            f"c.RepoFileFetcher.hosts key {name!r} must be a lower-case host "
            "name, or host:port, such as 'gitlab.example.edu'"
        )


def _check_path(path: str) -> str:
    """A clean repository-relative path, or ValueError."""
    clean = normpath(path) if path else ""
    if not clean or clean.startswith(("/", "../")) or clean in (".", ".."):
        raise ValueError(f"repository file path must be relative, not {path!r}")
    return clean


class RepoFileFetcher(LoggingConfigurable):
    """Read one file from the launched repository at the launched commit."""

    hosts = Dict(
        config=True,
        help="""Repository hosts hubext may read files from, and how.

        Keys are host names as they appear in repository URLs (with
        ``:port`` when the URL has one); values are dicts with
        ``provider`` ("github", "gitlab" or "git"), optional ``api_url``
        (default https://api.github.com for github.com,
        https://HOST/api/v3 for other GitHub hosts, https://HOST for
        GitLab), optional ``allow_http`` (plain http, default False) and,
        for git, optional ``username`` sent with the token. A launch from
        any other host fails without connecting anywhere. Default: only
        github.com.

        c.RepoFileFetcher.hosts = {
            "github.com": {"provider": "github"},
            "gitlab.example.edu": {"provider": "gitlab"},
            "git.example.edu": {"provider": "git"},
        }
        """,
    )

    @default("hosts")
    def _default_hosts(self):
        return {"github.com": {"provider": "github"}}

    @validate("hosts")
    def _validate_hosts(self, proposal):
        for name, entry in proposal.value.items():
            _check_entry(name, entry)
        return proposal.value

    tokens = Dict(
        value_trait=Unicode(),
        config=True,
        help="""Access tokens by host (the keys of ``hosts``), for private
        repositories and higher API rate limits. Sent only to that host;
        never logged or shown. GitHub: a fine-grained token with read access
        to contents; GitLab: a token with ``read_api`` (or ``read_repository``
        for git). Default: none.

        c.RepoFileFetcher.tokens = {"gitlab.example.edu": "glpat-..."}
        """,
    )

    timeout = Float(
        10.0,
        config=True,
        help="""Seconds to wait for a host before the launch fails (or falls
        back to the defaults, see ``on_error``). Default: 10.

        c.RepoFileFetcher.timeout = 5
        """,
    )

    max_bytes = Int(
        65536,
        config=True,
        help="""Largest file read, in bytes; a larger one is an error for
        the user, and the download stops once the size is passed.
        Default: 65536.

        c.RepoFileFetcher.max_bytes = 16384
        """,
    )

    max_connections = Int(
        10,
        config=True,
        help="""How many requests to GitHub and GitLab APIs run at once;
        more wait their turn (within ``timeout``). These connections are
        hubext's own, apart from the HTTP client the hub uses for its proxy
        and services, so a slow or hanging repository host never delays the
        hub itself. The git provider runs ``git`` processes instead and is
        not limited by this. Default: 10.

        c.RepoFileFetcher.max_connections = 20
        """,
    )

    @validate("timeout", "max_bytes", "max_connections")
    def _validate_positive(self, proposal):
        if proposal.value <= 0:
            name = proposal.trait.name
            raise TraitError(f"c.RepoFileFetcher.{name} must be positive")
        return proposal.value

    on_error = CaselessStrEnum(
        ["fail", "defaults"],
        "fail",
        config=True,
        help="""What a failure to read the file (host down, timeout,
        private repository, disallowed host...) does to the launch: "fail"
        shows the user why; "defaults" logs a warning and launches with the
        site defaults, as if the file were absent. Default: "fail".

        c.RepoFileFetcher.on_error = "defaults"
        """,
    )

    cache_size = Int(
        1024,
        config=True,
        help="""How many (host, repo, commit, path) answers to keep, least
        recently used dropped first; refusals that follow from the commit
        (file too large, not a regular file) count as answers. 0 turns the
        cache off. Default: 1024.

        c.RepoFileFetcher.cache_size = 4096
        """,
    )

    provider_prefixes = Dict(
        value_trait=CaselessStrEnum(["github", "gitlab", "git"]),
        config=True,
        help="""BinderHub provider prefixes (the ``gh`` in ``v2/gh/...``) and
        the kind of host each one launches from. Add an entry when
        BinderHub registers a provider under another prefix, e.g. a second
        GitLab. Default: {"gh": "github", "gl": "gitlab", "git": "git"}.

        c.RepoFileFetcher.provider_prefixes = {
            "gh": "github", "gl": "gitlab", "git": "git", "gl2": "gitlab"
        }
        """,
    )

    @default("provider_prefixes")
    def _default_prefixes(self):
        return dict(PROVIDER_PREFIXES)

    _cache = Instance(OrderedDict, args=())
    _inflight = Dict()
    _client = Instance(AsyncHTTPClient, allow_none=True)
    _client_loop = Any(None)  # the event loop _client belongs to

    async def fetch(self, user_options: dict, path: str = ".resources") -> bytes | None:
        """The file's bytes at the launched commit, or None if it has none.

        Raises `RepoFileError` for any other failure, unless ``on_error`` is
        "defaults" (then: a warning and None).
        """
        path = _check_path(path)
        try:
            return await self._fetch(user_options, path)
        except RepoFileError as e:
            return self._on_error(e)

    def cached(self, user_options: dict, path: str = ".resources"):
        """What `fetch` would return, when that needs no request; else
        `NOT_CACHED`. A launch of a commit the hub has read before then
        costs no trip through the event loop."""
        path = _check_path(path)
        try:
            *_, hit = self._lookup(user_options, path)
            return hit if hit is NOT_CACHED else _answer(hit)
        except RepoFileError as e:
            return self._on_error(e)

    def launch_ref(self, user_options: dict):
        """The launched repo@commit, with this hub's provider prefixes; None
        when it cannot be read and ``on_error`` is "defaults"."""
        try:
            return parse_launch(user_options, self.provider_prefixes)
        except RepoFileError as e:
            return self._on_error(e)

    def _lookup(self, user_options, path):
        """The launch's ref, host and cache key, and its cached answer or
        `NOT_CACHED`; a host no longer allowed is refused here, cached or not."""
        ref = parse_launch(user_options, self.provider_prefixes)
        host = self.host_for(ref)
        key = (ref.host, ref.repo, ref.commit, path)
        if key not in self._cache:
            return ref, host, key, NOT_CACHED
        self._cache.move_to_end(key)
        return ref, host, key, self._cache[key]

    def _on_error(self, e: RepoFileError) -> None:
        if self.on_error != "defaults":
            raise e
        fields = {k: v for k, v in e.fields.items() if k != "stderr"}
        self.log.warning("Using the defaults: %s %s", e.message, fields)
        return None

    def http_client(self) -> AsyncHTTPClient:
        """The fetcher's own client for the running event loop, made on first use.

        A tornado client belongs to the loop it was made in; a hub has one
        loop, tests may have several, so a client for another loop is closed
        and replaced.
        """
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_loop is not loop:
            self.close()
        if self._client is None:
            self._client = AsyncHTTPClient(
                force_instance=True, max_clients=self.max_connections
            )
            self._client_loop = loop
        return self._client

    def close(self) -> None:
        """Close the HTTP client; a later fetch makes a new one."""
        if self._client is not None:
            self._client.close()
        self._client = self._client_loop = None

    def host_for(self, ref: LaunchRef) -> RepoHost:
        """A provider for ``ref``'s host, or an error if it is not allowed."""
        entry = self.hosts.get(ref.host)
        if entry is None:
            raise RepoFileError(
                f"hubext does not read files from {ref.host or 'this host'}, so "
                f"it cannot see the {ref.repo} repository's settings. Hub admins "
                f"can allow the host in c.RepoFileFetcher.hosts.",
                host=ref.host,
                repo=ref.repo,
                permanent=True,  # until the admins change the hub's config
            )
        kind = entry["provider"]
        if kind not in SERVES[ref.provider]:
            raise RepoFileError(
                f"{ref.host} is configured as a {kind} host, but this is a "
                f"{ref.provider} launch. Hub admins: fix its provider in "
                "c.RepoFileFetcher.hosts.",
                host=ref.host,
                permanent=True,
            )
        cls = GitHost if ref.provider == "git" else HOST_KINDS[kind]
        extra = {"username": entry["username"]} if "username" in entry else {}
        if issubclass(cls, HTTPRepoHost):
            extra["client"] = self.http_client()
        return cls(
            parent=self,
            host=ref.host,
            api_url=entry.get("api_url") or "",
            allow_http=bool(entry.get("allow_http", False)),
            token=self.tokens.get(ref.host, ""),
            timeout=self.timeout,
            max_bytes=self.max_bytes,
            **extra,
        )

    async def _fetch(self, user_options, path) -> bytes | None:
        ref, host, key, hit = self._lookup(user_options, path)
        if hit is not NOT_CACHED:
            return _answer(hit)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._upstream(host, ref, path, key))
            self._inflight[key] = task
            task.add_done_callback(self._forget(key))
        # shield: one waiter giving up must not cancel the others' request
        return await asyncio.shield(task)

    def _forget(self, key):
        def done(task):
            self._inflight.pop(key, None)
            if not task.cancelled():
                task.exception()  # retrieved by the waiters; silence asyncio

        return done

    async def _upstream(self, host: RepoHost, ref: LaunchRef, path, key):
        """The one real request for ``key``; caches its answer or lasting refusal."""
        try:
            data = await self._ask(host, ref, path)
        except RepoFileError as e:
            if e.permanent:
                self._remember(key, _Refused(e.message, e.fields))
            raise
        self.log.info(
            "%s %s in %s at %s on %s",
            "Read" if data is not None else "No",
            path,
            ref.repo,
            short(ref.commit),
            ref.host,
        )
        self._remember(key, data)
        return data

    async def _ask(self, host: RepoHost, ref: LaunchRef, path) -> bytes | None:
        try:
            data = await asyncio.wait_for(host.fetch_file(ref, path), self.timeout)
        except asyncio.TimeoutError:
            raise host.error(
                f"{ref.host} did not answer within {self.timeout:g} seconds "
                f"while reading {host.where(ref, path)}. Try launching again "
                "in a few minutes.",
                ref,
                path,
            ) from None
        if data is not None and len(data) > self.max_bytes:
            raise host.too_large(ref, path, len(data))
        return data

    def _remember(self, key, value) -> None:
        if self.cache_size > 0:
            self._cache[key] = value
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


NOT_CACHED = object()  # `RepoFileFetcher.cached`: a request is needed


@dataclass(frozen=True)
class _Refused:
    """A cached lasting refusal: raised afresh on each hit, so a long-lived
    cache holds no tracebacks (and so no frames) of earlier launches."""

    message: str
    fields: dict


def _answer(cached):
    """The cached file (or None), or the cached refusal raised again."""
    if isinstance(cached, _Refused):
        raise RepoFileError(cached.message, permanent=True, **cached.fields)
    return cached
