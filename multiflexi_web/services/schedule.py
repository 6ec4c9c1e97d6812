"""Schedule math: interval codes and cron to slot times, in the RunTemplate's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from multiflexi_web.models import Interval, RunTemplate

INTERVAL_CRON = {
    Interval.MINUTELY: "* * * * *",
    Interval.HOURLY: "0 * * * *",
    Interval.DAILY: "0 0 * * *",
    Interval.WEEKLY: "0 0 * * 1",
    Interval.MONTHLY: "0 0 1 * *",
    Interval.YEARLY: "0 0 1 1 *",
}
INTERVAL_NAMES = {
    Interval.MANUAL: "manual",
    Interval.MINUTELY: "minutely",
    Interval.HOURLY: "hourly",
    Interval.DAILY: "daily",
    Interval.WEEKLY: "weekly",
    Interval.MONTHLY: "monthly",
    Interval.YEARLY: "yearly",
    Interval.CUSTOM: "custom",
}


class ScheduleError(ValueError):
    """A schedule setting is invalid; the message names the field and the reason."""


def validate(interval: str, cron: str | None, timezone: str | None, delay: int) -> None:
    try:
        code = Interval(interval)
    except ValueError:
        raise ScheduleError(f"interval {interval!r}: must be one of n i h d w m y c") from None
    if delay < 0:
        raise ScheduleError(f"delay {delay}: must be 0 or more seconds")
    if timezone:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"timezone {timezone!r}: not a known IANA time zone") from None
    if code is Interval.CUSTOM:
        if not cron or not cron.strip():
            raise ScheduleError("cron: required when the interval is c (custom)")
        if len(cron.split()) != 5:
            raise ScheduleError(f"cron {cron!r}: must have 5 fields (minute hour day month weekday)")
        if not croniter.is_valid(cron):
            raise ScheduleError(f"cron {cron!r}: not a valid cron expression")


def cron_for(rt: RunTemplate) -> str | None:
    code = Interval(rt.interval)
    if code is Interval.MANUAL:
        return None
    if code is Interval.CUSTOM:
        return rt.cron or None
    return INTERVAL_CRON[code]


def zone_for(rt: RunTemplate, default_tz: str) -> ZoneInfo:
    return ZoneInfo(rt.timezone or default_tz)


def slots_after(
    cron: str, tz: ZoneInfo, after: datetime, delay: int, count: int
) -> list[datetime]:
    """The next `count` run times (slot + delay) strictly after `after`, as UTC datetimes."""
    start = (after - timedelta(seconds=delay)).astimezone(tz)
    try:
        it = croniter(cron, start)
        out = []
        for _ in range(count):
            slot: datetime = it.get_next(datetime)
            out.append(slot.astimezone(UTC) + timedelta(seconds=delay))
    except (CroniterBadCronError, CroniterBadDateError) as exc:
        raise ScheduleError(f"cron {cron!r}: {exc}") from exc
    return out


def next_run(rt: RunTemplate, after: datetime, default_tz: str) -> datetime | None:
    """The first run time strictly after `after`, or None for manual/inactive templates."""
    cron = cron_for(rt)
    if cron is None or not rt.active:
        return None
    return slots_after(cron, zone_for(rt, default_tz), after, rt.delay, 1)[0]


def refresh_next_run(rt: RunTemplate, now: datetime, default_tz: str) -> None:
    """Recompute the next run after a schedule edit: the next future slot, never a past one."""
    rt.next_run_at = next_run(rt, now, default_tz)
