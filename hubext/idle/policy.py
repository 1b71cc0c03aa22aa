"""What to do with one server: keep, notify, stop or remove.

Pure functions, no I/O: given the hub's user and server models (as returned
by `GET /hub/api/users?include_stopped_servers=1`), the clock's `now` and,
optionally, the activity the server itself reports, decide.

The rules (see docs/how-to/idle-removal.md):

- a pending server (starting or stopping) is skipped;
- the last activity is the newest of: the server's `last_activity`, else its
  `started`, else the user's `last_activity`; plus, for a running server,
  what the server itself reports (kernels, connections);
- idle = no activity for `timeout`; a named server that is idle is removed
  (stopped first if it runs); a default server that is idle is only stopped;
- a named server within `notice_before` of its removal gets a notice.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from .clock import parse_iso


class Action(str, Enum):
    KEEP = "keep"
    NOTIFY = "notify"
    STOP = "stop"
    REMOVE = "remove"


@dataclass(frozen=True)
class Decision:
    """The verdict on one server, with the facts that led to it."""

    action: Action
    reason: str
    last_activity: datetime | None = None
    remove_at: datetime | None = None


def last_activity(
    user: dict, server: dict, server_activity: datetime | None = None
) -> datetime | None:
    """The newest known activity of a server, or None if nothing is known."""
    hub_side = (
        parse_iso(server.get("last_activity"))
        or parse_iso(server.get("started"))
        or parse_iso(user.get("last_activity"))
    )
    known = [t for t in (hub_side, server_activity) if t is not None]
    return max(known) if known else None


def is_running(server: dict) -> bool:
    """Ready and not stopped: the only state in which a server can be asked."""
    return bool(server.get("ready")) and not server.get("stopped")


def decide(
    user: dict,
    server: dict,
    now: datetime,
    *,
    timeout: timedelta,
    notice_before: timedelta = timedelta(0),
    server_activity: datetime | None = None,
) -> Decision:
    """Decide what happens to `server` of `user` at time `now`."""
    if server.get("pending"):
        return Decision(Action.KEEP, f"pending {server['pending']}")
    named = bool(server.get("name"))
    running = is_running(server)
    if not named and not running:
        return Decision(Action.KEEP, "default server already stopped")
    seen = last_activity(user, server, server_activity)
    if seen is None:
        return Decision(Action.KEEP, "no activity recorded, age unknown")
    deadline = seen + timeout
    if now >= deadline:
        if named:
            how = "running" if running else "stopped"
            return Decision(Action.REMOVE, f"{how}, idle since {seen}", seen, deadline)
        return Decision(Action.STOP, f"default server idle since {seen}", seen)
    if named and notice_before and now >= deadline - notice_before:
        return Decision(Action.NOTIFY, f"removal due at {deadline}", seen, deadline)
    return Decision(Action.KEEP, f"active at {seen}", seen, deadline if named else None)
