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
"""

from datetime import datetime

from .clock import parse_iso
from .hubapi import HubAPI, HubAPIError


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


async def server_activity(
    api: HubAPI, public_url: str, server: dict, now: datetime
) -> datetime | None:
    """Ask a running server for its activity; None when it cannot tell."""
    base = server.get("full_url") or public_url.rstrip("/") + server["url"]
    base = base.rstrip("/") + "/api/"
    try:
        code, status = await api.fetch("GET", base + "status", retries=1)
        if code != 200 or not isinstance(status, dict):
            api.log.warning("No activity report from %s (HTTP %s)", base, code)
            return None
        code, kernels = await api.fetch("GET", base + "kernels", retries=1)
    except HubAPIError as e:
        api.log.warning("No activity report from %s: %s", base, e)
        return None
    if code != 200 or not isinstance(kernels, list):
        kernels = []
    return activity_from_reports(status, kernels, now)
