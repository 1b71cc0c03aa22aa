"""Activity a running server reports about itself.

The hub's `last_activity` misses a kernel that computes silently for days
with no browser open. A running jupyter_server knows better: `/api/status`
gives its own `last_activity` and open `connections`, `/api/kernels` each
kernel's `execution_state`, `last_activity` and `connections`. We ask through
the proxy with the service token (the role needs `access:servers`).

Counted as activity "now": a busy kernel, or any open connection (server or
kernel). Counted as activity at its time: the server's and every kernel's
`last_activity`. Anything else (a failed or odd answer) counts as nothing:
the hub's own record then decides.

Asking must not itself look like activity: both requests carry
`no_track_activity`, so jupyter_server does not record them. The proxy still
counts them as traffic, which is why the sweep asks only right before it
would stop or remove a server (see `Sweeper._decide`).
"""

from datetime import datetime

from .clock import parse_iso
from .hubapi import HubAPI, HubAPIError

# jupyter_server skips recording API activity for requests with this argument
UNTRACKED = "?no_track_activity=1"


def activity_from_reports(status: dict, kernels: list, now: datetime):
    """Newest activity in a server's `/api/status` and `/api/kernels` answers."""
    times = [parse_iso(status.get("last_activity"))]
    if (status.get("connections") or 0) > 0:
        times.append(now)
    for kernel in kernels:
        if not isinstance(kernel, dict):
            continue
        times.append(parse_iso(kernel.get("last_activity")))
        busy = kernel.get("execution_state") == "busy"
        if busy or (kernel.get("connections") or 0) > 0:
            times.append(now)
    known = [t for t in times if t is not None]
    return max(known) if known else None


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


def _why(code: int, base: str) -> str:
    if code in (302, 401, 403):
        return (
            f"HTTP {code}: the server refused the service's token; give the "
            "service's role the access:servers scope"
        )
    return f"HTTP {code} from {base}status"


async def server_activity(api: HubAPI, base: str, now: datetime) -> datetime | None:
    """Ask a running server (its `/api/` URL) for activity; None if it cannot tell."""
    try:
        code, status = await api.fetch("GET", base + "status" + UNTRACKED, retries=1)
        if code != 200 or not isinstance(status, dict):
            api.log.warning(
                "No activity report from %s (%s); the hub's record decides",
                base,
                _why(code, base),
            )
            return None
        code, kernels = await api.fetch("GET", base + "kernels" + UNTRACKED, retries=1)
    except HubAPIError as e:
        api.log.warning(
            "No activity report from %s (%s); the hub's record decides", base, e
        )
        return None
    if code != 200 or not isinstance(kernels, list):
        kernels = []
    return activity_from_reports(status, kernels, now)
