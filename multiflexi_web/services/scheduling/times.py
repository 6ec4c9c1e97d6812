"""Schedule math: interval codes and cron to run times, in the RunTemplate's time zone.

Cron is evaluated on the local wall clock; `delay` seconds are added on the wall clock too, so
"daily + 7200" is 02:00 local every day. Wall times are then turned into UTC instants:
- a wall time that does not exist (spring forward) runs at the instant the clock jumps
  (02:30 in Europe/Prague on the spring-forward day runs at 03:00 CEST, once);
- a wall time that occurs twice (fall back) runs once, at its first occurrence, unless the
  cron's hour field is `*` (minutely, hourly...): such schedules follow real time and run in both
  repeated hours, as Vixie cron does.
All returned times are aware UTC datetimes.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from multiflexi_web.models import Interval, MisfirePolicy, OverlapPolicy, RetryBackoff, RunTemplate
from multiflexi_web.models.bounds import DELAY, MAX_ATTEMPTS, RETRY_MIN_GAP, BoundError

if TYPE_CHECKING:
    from croniter import croniter

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
# Larger than any daylight-saving shift in the tz database (Antarctica/Troll moves 2 h).
MAX_SHIFT = timedelta(hours=3)
_SECOND = timedelta(seconds=1)


class ScheduleError(ValueError):
    """A schedule setting is invalid; the message names the field and the reason."""


def validate(interval: str, cron: str | None, timezone: str | None, delay: int) -> None:
    """Refuse a schedule that cannot work, naming the field and the reason."""
    try:
        code = Interval(interval)
    except ValueError:
        raise ScheduleError(f"interval {interval!r}: must be one of n i h d w m y c") from None
    try:
        DELAY.check(delay)
    except BoundError as exc:
        raise ScheduleError(str(exc)) from None
    zone = _zone(timezone) if timezone else ZoneInfo("UTC")
    if code is Interval.CUSTOM:
        _validate_cron(cron, zone)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    # OSError: a folder of the zone database ("Europe": IsADirectoryError), a name too long.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"timezone {name!r}: not a known IANA time zone") from None


@cache
def _cron() -> tuple[type[croniter], tuple[type[Exception], ...]]:
    """croniter and the errors it raises for a bad expression or date."""
    # croniter with dateutil is ~1 MiB: loaded by the first cron schedule read, so an executor
    # (which imports this module for the Reschedule action) pays for it only when it must.
    from croniter import CroniterBadCronError, CroniterBadDateError, croniter

    return croniter, (CroniterBadCronError, CroniterBadDateError)


def _validate_cron(cron: str | None, zone: ZoneInfo) -> None:
    if not cron or not cron.strip():
        raise ScheduleError("cron: required when the interval is c (custom)")
    if len(cron.split()) != 5:
        raise ScheduleError(f"cron {cron!r}: must have 5 fields (minute hour day month weekday)")
    if not _cron()[0].is_valid(cron):
        raise ScheduleError(f"cron {cron!r}: not a valid cron expression")
    try:
        next(Schedule(cron, zone, 0).runs_after(datetime(2000, 1, 1, tzinfo=UTC)))
    except ScheduleError:
        raise ScheduleError(f"cron {cron!r}: never fires (no such date)") from None


@dataclass(frozen=True)
class Schedule:
    """A cron expression, the zone it is read in and a delay: the source of run times."""

    cron: str
    tz: ZoneInfo
    delay: int = 0

    @property
    def follows_real_time(self) -> bool:
        """Hour field `*`: repeated wall-clock hours (fall back) run twice."""
        return self.cron.split()[1] == "*"

    def runs_after(self, after: datetime) -> Iterator[datetime]:
        """Run times strictly after `after`, ascending, without end."""
        start = after
        if self.follows_real_time and _offset_changes(self.tz, after):
            start = after - MAX_SHIFT  # a repeated hour just behind us may still have runs ahead
        wall = start.astimezone(self.tz).replace(tzinfo=None)
        cron, bad = _cron()
        try:
            it = cron(self.cron, wall - timedelta(seconds=self.delay) - _SECOND)
            yield from self._ascending(it, after)
        except bad as exc:
            raise ScheduleError(f"cron {self.cron!r}: {exc}") from exc

    def _ascending(self, it: croniter, after: datetime) -> Iterator[datetime]:
        pending: list[datetime] = []
        last: datetime | None = None
        while True:
            instants = self._resolve(it.get_next(datetime) + timedelta(seconds=self.delay))
            for t in instants:
                if t > after:
                    heapq.heappush(pending, t)
            # Later wall times never resolve before instants[0], so what is below it is final.
            while pending and pending[0] <= instants[0]:
                t = heapq.heappop(pending)
                if t != last:
                    last = t
                    yield t

    def _resolve(self, wall: datetime) -> list[datetime]:
        first = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        if first < second:  # the wall time occurs twice
            return [first, second] if self.follows_real_time else [first]
        return [_transition(self.tz, second, first)]  # the wall time does not exist

    def next_runs(self, after: datetime, count: int) -> list[datetime]:
        it = self.runs_after(after)
        return [next(it) for _ in range(count)]

    def runs_between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """The latest `limit` run times t with start <= t <= end, ascending."""
        window = timedelta(hours=1)
        while True:
            lo = max(start - _SECOND / 1_000_000, end - window)
            found: deque[datetime] = deque(maxlen=limit)
            for t in self.runs_after(lo):
                if t > end:
                    break
                found.append(t)
            if len(found) >= limit or lo < start:
                return list(found)
            window *= 4  # widen until enough runs are found or the window reaches `start`


def _offset_changes(tz: ZoneInfo, at: datetime) -> bool:
    return (at - MAX_SHIFT).astimezone(tz).utcoffset() != (at + MAX_SHIFT).astimezone(
        tz
    ).utcoffset()


def _transition(tz: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The instant in (before, after] at which the zone's UTC offset changes (to the second)."""
    lo, hi = int(before.timestamp()), int(after.timestamp())
    old = before.astimezone(tz).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(tz).utcoffset() == old:
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(hi, UTC)


def cron_for(rt: RunTemplate) -> str | None:
    code = Interval(rt.interval)
    if code is Interval.MANUAL:
        return None
    if code is Interval.CUSTOM:
        return rt.cron or None
    return INTERVAL_CRON[code]


def zone_for(rt: RunTemplate, default_tz: str) -> ZoneInfo:
    return ZoneInfo(rt.timezone or default_tz)


@lru_cache(maxsize=4096)
def schedule_of(interval: str, cron: str | None, delay: int, timezone: str) -> Schedule | None:
    """The Schedule of these settings, or None for manual (or custom without cron)."""
    code = Interval(interval)
    if code is Interval.MANUAL:
        return None
    expr = (cron or None) if code is Interval.CUSTOM else INTERVAL_CRON[code]
    return Schedule(expr, ZoneInfo(timezone), delay) if expr else None


def schedule_for(rt: RunTemplate, default_tz: str) -> Schedule | None:
    return schedule_of(rt.interval, rt.cron, rt.delay or 0, rt.timezone or default_tz)


def slots_after(cron: str, tz: ZoneInfo, after: datetime, delay: int, count: int) -> list[datetime]:
    """The next `count` run times (slot + delay) strictly after `after`, as UTC datetimes."""
    return Schedule(cron, tz, delay).next_runs(after, count)


def next_run(rt: RunTemplate, after: datetime, default_tz: str) -> datetime | None:
    """The first run time strictly after `after`, or None for manual/inactive templates."""
    sched = schedule_for(rt, default_tz)
    if sched is None or not rt.active:
        return None
    return sched.next_runs(after, 1)[0]


def refresh_next_run(rt: RunTemplate, now: datetime, default_tz: str) -> None:
    """Recompute the next run after a schedule edit: the next future slot, never a past one."""
    rt.next_run_at = next_run(rt, now, default_tz)


@dataclass
class Policies:
    """What happens to missed slots, overlapping runs and failures."""

    misfire: str = MisfirePolicy.LATEST.value
    overlap: str = OverlapPolicy.WAIT.value
    max_attempts: int = 1
    retry_backoff: str = RetryBackoff.NONE.value
    retry_min_gap: int = 0


def _choice(
    name: str, value: str, allowed: type[MisfirePolicy | OverlapPolicy | RetryBackoff]
) -> str:
    if value not in {m.value for m in allowed}:
        raise ScheduleError(
            f"{name} {value!r}: must be one of {', '.join(m.value for m in allowed)}"
        )
    return value


def apply_policies(rt: RunTemplate, p: Policies) -> None:
    """Validate and store the policies (they never move the next run)."""
    try:
        MAX_ATTEMPTS.check(p.max_attempts)
        RETRY_MIN_GAP.check(p.retry_min_gap)
    except BoundError as exc:
        raise ScheduleError(str(exc)) from None
    rt.misfire_policy = _choice("misfire", p.misfire, MisfirePolicy)
    rt.overlap_policy = _choice("overlap", p.overlap, OverlapPolicy)
    rt.retry_backoff = _choice("retry_backoff", p.retry_backoff, RetryBackoff)
    rt.max_attempts, rt.retry_min_gap = p.max_attempts, p.retry_min_gap


def policies_of(rt: RunTemplate) -> Policies:
    return Policies(
        rt.misfire_policy, rt.overlap_policy, rt.max_attempts, rt.retry_backoff, rt.retry_min_gap
    )
