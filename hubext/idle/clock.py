"""The service's one clock.

Every "now" in the idle service comes from `utcnow()`, so tests can move
time forward (monkeypatch `hubext.idle.clock.utcnow`) against a real hub
whose timestamps only ever move forward.
"""

from datetime import datetime, timezone


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def parse_iso(value: str | None) -> datetime | None:
    """Parse a hub timestamp (ISO 8601, `Z` or offset) into aware UTC."""
    if not value:
        return None
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)
