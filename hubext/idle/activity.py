"""What a running server's own answers say about its activity.

The hub's `last_activity` misses a kernel that computes silently for days
with no browser open. A running jupyter_server knows better: `/api/status`
gives its own `last_activity` and open `connections`, `/api/kernels` each
kernel's `execution_state`, `last_activity` and `connections` (asked by
`serverapi`).

Counted as activity "now": a busy kernel, or any open connection (server or
kernel). Counted as activity at its time: the server's and every kernel's
`last_activity`, at most now. The answers come from a server the user
controls, so they are checked, not trusted: anything but the shapes
jupyter_server gives (a string that is not a time, a number where a count
belongs, a list for a dict, null) makes the whole answer `NoReport`, and the
hub's own record decides. A well-formed lie can only keep that server.
"""

from datetime import datetime

from .clock import parse_iso

# no server has more open connections; a bigger count is not an answer
MAX_COUNT = 2**31


class NoReport(Exception):
    """The server gave no usable report; the hub's record decides."""


def activity_from_reports(status, kernels, now: datetime) -> datetime | None:
    """Newest activity in a server's `/api/status` and `/api/kernels` answers."""
    if not isinstance(status, dict):
        raise NoReport(f"/api/status is a {type(status).__name__}, not an object")
    if not isinstance(kernels, list):
        raise NoReport(f"/api/kernels is a {type(kernels).__name__}, not a list")
    times = [_time(status, "status"), now if _count(status, "status") else None]
    for kernel in kernels:
        if not isinstance(kernel, dict):
            raise NoReport(f"a kernel is a {type(kernel).__name__}, not an object")
        state = kernel.get("execution_state")
        if state is not None and not isinstance(state, str):
            raise NoReport(f"a kernel's execution_state is {state!r}")
        times.append(_time(kernel, "a kernel"))
        if state == "busy" or _count(kernel, "a kernel"):
            times.append(now)
    known = [min(t, now) for t in times if t is not None]
    return max(known) if known else None


def _time(answer: dict, what: str) -> datetime | None:
    value = answer.get("last_activity")
    if value is None:
        return None
    if not isinstance(value, str):
        raise NoReport(f"{what}'s last_activity is {_short(value)}, not a time")
    try:
        return parse_iso(value)
    except (ValueError, OverflowError):
        raise NoReport(
            f"{what}'s last_activity {_short(value)} is not a time"
        ) from None


def _count(answer: dict, what: str) -> int:
    value = answer.get("connections")
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value < MAX_COUNT:
        raise NoReport(f"{what}'s connections is {_short(value)}, not a count")
    return value


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
