"""Times typed by people (forms, query strings, CLI options): ISO 8601 read in a zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


class TimeRangeError(ValueError):
    """A time value is malformed; the message names the field."""


def parse_time(raw: str | None, name: str, timezone: str) -> datetime | None:
    """An ISO 8601 date or time, or None when empty; without a zone it is read in `timezone`."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise TimeRangeError(
            f"{name}: must be an ISO 8601 date or time, got {raw[:40]!r}"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=ZoneInfo(timezone))


def month_start(now: datetime, timezone: str) -> datetime:
    """Midnight of the first day of `now`'s month in `timezone`."""
    local = now.astimezone(ZoneInfo(timezone))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
