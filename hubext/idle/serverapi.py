"""Asking a user's server about itself.

The server is the user's and may be hostile, so a question carries only the
token it is given (never the service's), follows no redirect (one could
carry the token elsewhere), reads at most `MAX_ANSWER` bytes and is retried
once on a connection error, a timeout or a 5xx. Any other trouble is
`NoReport`: the hub's record decides.

Asking must not itself look like activity: both requests carry
`no_track_activity`, so jupyter_server does not record them. The proxy still
counts them as traffic, which is why the sweep asks only right before it
would stop or remove a server (see `Sweeper._decide`).
"""

import asyncio
import json
from collections.abc import Callable
from datetime import datetime

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from .activity import NoReport, activity_from_reports

# jupyter_server skips recording API activity for requests with this argument
UNTRACKED = "?no_track_activity=1"
# /api/kernels of a server with a thousand kernels is about 300 kB
MAX_ANSWER = 4 * 1024 * 1024
RETRY_WAIT = 1.0


def server_api_url(server: dict, public_url: str, hub_api_url: str) -> str:
    """Where a server's own `/api/` is reached through the proxy.

    An explicit `public_url` wins (the hub's public address may not be
    reachable from where the service runs); then the hub's `full_url`; then
    the hub API URL without its `/hub/api` suffix.
    """
    if public_url:
        base = public_url.rstrip("/") + server["url"]
    elif server.get("full_url"):
        base = server["full_url"]
    else:
        root = hub_api_url.rstrip("/")
        root = root[: -len("/hub/api")] if root.endswith("/hub/api") else root
        base = root + server["url"]
    return base.rstrip("/") + "/api/"


class ServerAsker:
    """Asks servers' `/api/status` and `/api/kernels` with a given token."""

    def __init__(
        self,
        timeout: float = 60.0,
        max_clients: int = 10,
        on_request: Callable[[], None] | None = None,
    ):
        self.timeout = timeout
        self.on_request = on_request or (lambda: None)
        self.max_clients = max_clients
        self._client = None

    async def activity(self, base: str, token: str, now: datetime) -> datetime | None:
        """The newest activity the server at `base` (its `/api/`) reports."""
        status = await self.get(base + "status", token)
        kernels = await self.get(base + "kernels", token)
        return activity_from_reports(status, kernels, now)

    async def get(self, url: str, token: str):
        """GET one JSON answer; `NoReport` for anything but a 200 with JSON."""
        request = HTTPRequest(
            url + UNTRACKED,
            headers={"Authorization": f"token {token}"},
            follow_redirects=False,
            request_timeout=self.timeout,
        )
        if self._client is None:
            self._client = AsyncHTTPClient(
                force_instance=True,
                max_clients=self.max_clients,
                max_body_size=MAX_ANSWER,
            )
        for attempt in range(2):
            self.on_request()
            try:
                resp = await self._client.fetch(request, raise_error=False)
            except Exception as e:  # refused, timed out, too big, cut off
                code, problem = 599, str(e) or type(e).__name__
            else:
                code, problem = resp.code, None
            if code < 500:
                break
            if attempt == 0:
                await asyncio.sleep(RETRY_WAIT)
        if problem:
            raise NoReport(f"{url}: {problem}")
        if code in (302, 401, 403):
            raise NoReport(f"HTTP {code} from {url}: the server refused the token")
        if code != 200:
            raise NoReport(f"HTTP {code} from {url}")
        try:
            return json.loads(resp.body)
        except (ValueError, RecursionError):
            raise NoReport(f"{url} answered with something other than JSON") from None
