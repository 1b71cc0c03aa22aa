"""A small JupyterHub REST API client that retries.

Why its own client: the service must survive hub restarts and transient
errors in the middle of a pass. Every request is retried with exponential
backoff on connection errors, timeouts and 5xx answers, and each retry is
logged. Listing uses the hub's pagination (`offset`/`limit` with the
`application/jupyterhub-pagination+json` media type) and asks for stopped
servers too (`include_stopped_servers`), which stock culling never sees.
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

PAGINATION = "application/jupyterhub-pagination+json"


class HubAPIError(Exception):
    """The hub answered with an error, or never answered, after all retries."""

    def __init__(self, method: str, url: str, code: int, detail: str):
        super().__init__(
            f"{method} {url} failed with {code}: {detail}. "
            "Check that the hub is running and that the service's role "
            "has the scopes listed in docs/how-to/idle-removal.md."
        )
        self.code = code


def server_path(user: str, server: str) -> str:
    """The API path of a (named) server, escaped."""
    return f"/users/{quote(user, safe='')}/servers/{quote(server, safe='')}"


class HubAPI:
    """Calls the hub API at `url` with `token`; retries what may pass."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        retries: int = 6,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        request_timeout: float = 60.0,
        log: logging.Logger | None = None,
        on_request: Callable[[], None] | None = None,
        max_clients: int = 64,
    ):
        self.url = url.rstrip("/")
        self.token = token
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.request_timeout = request_timeout
        self.log = log or logging.getLogger("hubext.idle")
        self.on_request = on_request or (lambda: None)
        self.max_clients = max_clients
        self._client = None

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1, 2, ...)."""
        return min(self.backoff * 2 ** (attempt - 1), self.backoff_max)

    async def fetch(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict | None = None,
        retries: int | None = None,
    ) -> tuple[int, Any]:
        """One call of the hub API at `path`; (status, JSON) for < 500.

        Only paths: this client carries the service's token, which may
        go to the hub and nowhere else (a user's server is asked with a
        token of its own, see `servertoken`).
        """
        if not path.startswith("/") or "://" in path:
            raise ValueError(f"not a hub API path: {path!r}")
        retries = self.retries if retries is None else retries
        url = self.url + path
        all_headers = {"Authorization": f"token {self.token}"}
        all_headers.update(headers or {})
        request = HTTPRequest(
            url,
            method=method,
            headers=all_headers,
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            request_timeout=self.request_timeout,
        )
        if self._client is None:
            # sized for the service's concurrency, not shared with others
            self._client = AsyncHTTPClient(
                force_instance=True, max_clients=self.max_clients
            )
        client = self._client
        for attempt in range(retries + 1):
            self.on_request()
            try:
                resp = await client.fetch(request, raise_error=False)
            except (OSError, HTTPClientError) as e:
                # raise_error=False covers HTTP answers only: no connection,
                # a timeout or a cut-off answer still raise, as code 599
                code, detail = 599, f"{type(e).__name__}: {e}"
            else:
                if resp.code < 500 and not _proxy_miss(resp):
                    return resp.code, _decode(resp.body)
                code, detail = resp.code, _snippet(resp.body)
            if attempt == retries:
                raise HubAPIError(method, url, code, detail)
            wait = self.delay(attempt + 1)
            self.log.warning(
                "%s %s failed with %s (%s); retry %d/%d in %.1fs",
                method,
                url,
                code,
                detail,
                attempt + 1,
                retries,
                wait,
            )
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def users(self, page_size: int = 200) -> AsyncIterator[list[dict]]:
        """Yield pages of user models, every server included (stopped too)."""
        offset = 0
        while True:
            query = urlencode(
                {"include_stopped_servers": 1, "offset": offset, "limit": page_size}
            )
            code, data = await self.fetch(
                "GET", f"/users?{query}", headers={"Accept": PAGINATION}
            )
            if code != 200:
                raise HubAPIError("GET", f"{self.url}/users", code, _snippet(data))
            if isinstance(data, list):  # a hub without pagination support
                yield data
                return
            yield data["items"]
            following = (data.get("_pagination") or {}).get("next")
            if not following:
                return
            offset = following["offset"]

    async def get_user(self, user: str, stopped: bool = False) -> dict | None:
        """The user's model, None if the user is gone; with `stopped`, with
        stopped servers too. It holds `auth_state` only if the token has
        `admin:auth_state`."""
        path = f"/users/{quote(user, safe='')}"
        if stopped:
            path += "?include_stopped_servers=1"
        code, data = await self.fetch("GET", path)
        if code == 404:
            return None
        if code != 200 or not isinstance(data, dict):
            raise HubAPIError("GET", path, code, _snippet(data))
        return data

    async def get_server(self, user: str, server: str) -> dict | None:
        """The server's model, or None once it is gone (or its user is).

        Read from the user's model: `GET /users/{user}/servers/{name}` is
        new in JupyterHub 6.0, the user's model with stopped servers is in
        every supported hub.
        """
        data = await self.get_user(user, stopped=True)
        return None if data is None else (data.get("servers") or {}).get(server)

    async def delete_server(self, user: str, server: str, remove: bool) -> int:
        """Stop (and with `remove`, delete) a server; 404 means already gone."""
        path = server_path(user, server) if server else f"/users/{quote(user)}/server"
        code, data = await self.fetch(
            "DELETE", path, body={"remove": True} if remove else None
        )
        if code not in (202, 204, 404):
            raise HubAPIError("DELETE", path, code, _snippet(data))
        return code


def _proxy_miss(resp) -> bool:
    """A 404 that did not come from the hub's API.

    While the hub restarts, its proxy is up before the hub's route is back
    and answers every request with its own 404 page. Read as "server gone",
    that would count a removal that never happened; it is retried instead.
    The hub's API always answers a 404 with a JSON body.
    """
    if resp.code != 404:
        return False
    return "json" not in resp.headers.get("Content-Type", "")


def _decode(body: bytes | None) -> Any:
    if not body:
        return None
    text = body.decode("utf8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _snippet(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf8", "replace")
    return str(body)[:200]
