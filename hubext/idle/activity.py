"""What a running server's own answers say about its activity.

The hub's `last_activity` misses a kernel that computes silently for days
with no browser open. A running jupyter_server knows better: `/api/status`
gives its own `last_activity` and open `connections`, `/api/kernels` each
kernel's `execution_state`, `last_activity` and `connections` (asked by
`serverapi`).

Counted as activity "now": a busy kernel, or any open connection (server or
kernel). Counted as activity at its time: the server's and every kernel's
`last_activity`. Anything else (a failed or odd answer) counts as nothing:
the hub's own record then decides.
"""

from datetime import datetime

from .clock import parse_iso


class NoReport(Exception):
    """The server gave no usable report; the hub's record decides."""


def activity_from_reports(status: dict, kernels: list, now: datetime):
    """Newest activity in a server's `/api/status` and `/api/kernels` answers."""
    if not isinstance(status, dict):
        raise NoReport(f"/api/status is a {type(status).__name__}, not an object")
    if not isinstance(kernels, list):
        kernels = []
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
