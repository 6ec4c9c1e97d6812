"""Next-run math, table-driven: interval codes, delay, month ends, leap years, DST in 3 zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from multiflexi_web.models import RunTemplate
from multiflexi_web.services.scheduling.times import (
    Schedule,
    ScheduleError,
    next_run,
    refresh_next_run,
    schedule_of,
    slots_after,
    validate,
)

PRAGUE = "Europe/Prague"
NEW_YORK = "America/New_York"
SYDNEY = "Australia/Sydney"


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)  # type: ignore[misc]


def local(tz: str, *a: int, fold: int = 0) -> datetime:
    return datetime(*a, tzinfo=ZoneInfo(tz), fold=fold).astimezone(UTC)  # type: ignore[misc]


def runs(
    interval: str,
    after: datetime,
    count: int,
    *,
    cron: str | None = None,
    delay: int = 0,
    tz: str = "UTC",
) -> list[datetime]:
    sched = schedule_of(interval, cron, delay, tz)
    assert sched is not None
    return sched.next_runs(after, count)


# (interval, cron, delay, tz, after, expected next run times)
CASES = [
    (
        "i",
        None,
        0,
        "UTC",
        utc(2026, 5, 4, 10, 0, 30),
        [utc(2026, 5, 4, 10, 1), utc(2026, 5, 4, 10, 2)],
    ),
    ("i", None, 0, "UTC", utc(2026, 5, 4, 10, 1), [utc(2026, 5, 4, 10, 2)]),  # strictly after
    ("h", None, 0, "UTC", utc(2026, 5, 4, 10, 0), [utc(2026, 5, 4, 11), utc(2026, 5, 4, 12)]),
    ("d", None, 0, "UTC", utc(2026, 5, 4, 10), [utc(2026, 5, 5), utc(2026, 5, 6)]),
    ("w", None, 0, "UTC", utc(2026, 5, 4, 0), [utc(2026, 5, 11), utc(2026, 5, 18)]),  # Mondays
    ("w", None, 0, "UTC", utc(2026, 5, 3, 23, 59), [utc(2026, 5, 4)]),
    ("m", None, 0, "UTC", utc(2026, 1, 31, 12), [utc(2026, 2, 1), utc(2026, 3, 1)]),
    ("y", None, 0, "UTC", utc(2026, 1, 1), [utc(2027, 1, 1), utc(2028, 1, 1)]),
    (
        "c",
        "*/15 9-10 * * 1-5",
        0,
        "UTC",
        utc(2026, 5, 8, 10, 50),  # Friday -> Monday
        [utc(2026, 5, 11, 9), utc(2026, 5, 11, 9, 15)],
    ),
    # delay shifts every slot
    ("d", None, 7200, "UTC", utc(2026, 5, 4, 1), [utc(2026, 5, 4, 2), utc(2026, 5, 5, 2)]),
    ("d", None, 7200, "UTC", utc(2026, 5, 4, 2), [utc(2026, 5, 5, 2)]),
    ("h", None, 900, "UTC", utc(2026, 5, 4, 10, 20), [utc(2026, 5, 4, 11, 15)]),
    ("i", None, 30, "UTC", utc(2026, 5, 4, 10, 0, 30), [utc(2026, 5, 4, 10, 1, 30)]),
    ("w", None, 86400 + 3600, "UTC", utc(2026, 5, 4), [utc(2026, 5, 5, 1)]),  # Tuesday 01:00
    # month ends and leap years
    ("c", "0 0 31 * *", 0, "UTC", utc(2026, 1, 31), [utc(2026, 3, 31), utc(2026, 5, 31)]),
    ("c", "0 0 30 * *", 0, "UTC", utc(2026, 1, 30), [utc(2026, 3, 30)]),  # no Feb 30
    ("c", "0 0 29 2 *", 0, "UTC", utc(2026, 1, 1), [utc(2028, 2, 29), utc(2032, 2, 29)]),
    ("c", "0 0 29 2 *", 0, "UTC", utc(2096, 3, 1), [utc(2104, 2, 29)]),  # 2100 is no leap year
    ("m", None, 86400 * 28, "UTC", utc(2028, 2, 1), [utc(2028, 2, 29), utc(2028, 3, 29)]),
    ("c", "0 12 L * *", 0, "UTC", utc(2028, 2, 1), [utc(2028, 2, 29, 12), utc(2028, 3, 31, 12)]),
    # local time zone without DST changes in range
    ("d", None, 0, PRAGUE, utc(2026, 5, 4, 10), [local(PRAGUE, 2026, 5, 5)]),
    ("d", None, 0, "Asia/Kolkata", utc(2026, 5, 4, 10), [utc(2026, 5, 4, 18, 30)]),
]


@pytest.mark.parametrize(("interval", "cron", "delay", "tz", "after", "expected"), CASES)
def test_next_runs(
    interval: str, cron: str | None, delay: int, tz: str, after: datetime, expected: list[datetime]
) -> None:
    assert runs(interval, after, len(expected), cron=cron, delay=delay, tz=tz) == expected


# Daylight saving: (tz, schedule, after, expected local wall times "MM-DD HH:MM+ZZZZ").
DST_CASES = [
    # Prague springs forward 2026-03-29 02:00 -> 03:00: 02:30 does not exist, runs once at 03:00.
    (
        PRAGUE,
        ("c", "30 2 * * *", 0),
        utc(2026, 3, 27),
        ["03-27 02:30+0100", "03-28 02:30+0100", "03-29 03:00+0200", "03-30 02:30+0200"],
    ),
    (
        PRAGUE,
        ("d", None, 9000),
        utc(2026, 3, 27),  # daily + 02:30 is the same schedule
        ["03-27 02:30+0100", "03-28 02:30+0100", "03-29 03:00+0200", "03-30 02:30+0200"],
    ),
    # Prague falls back 2026-10-25 03:00 -> 02:00: 02:30 happens twice, runs once (the first).
    (
        PRAGUE,
        ("c", "30 2 * * *", 0),
        utc(2026, 10, 23),
        ["10-23 02:30+0200", "10-24 02:30+0200", "10-25 02:30+0200", "10-26 02:30+0100"],
    ),
    (
        PRAGUE,
        ("d", None, 7200),
        utc(2026, 10, 24, 12),  # daily + 02:00 (the repeated hour)
        ["10-25 02:00+0200", "10-26 02:00+0100"],
    ),
    (
        PRAGUE,
        ("d", None, 4 * 3600),
        utc(2026, 10, 24, 12),  # wall-clock delay: 04:00 both days
        ["10-25 04:00+0100", "10-26 04:00+0100"],
    ),
    # hourly follows real time: no 02:00 on spring day, two 02:00s on the fall-back day
    (
        PRAGUE,
        ("h", None, 0),
        utc(2026, 3, 28, 23, 30),
        ["03-29 01:00+0100", "03-29 03:00+0200", "03-29 04:00+0200"],
    ),
    (
        PRAGUE,
        ("h", None, 0),
        utc(2026, 10, 24, 22, 30),
        ["10-25 01:00+0200", "10-25 02:00+0200", "10-25 02:00+0100", "10-25 03:00+0100"],
    ),
    (
        PRAGUE,
        ("c", "*/20 * * * *", 0),
        utc(2026, 10, 25, 0, 30),  # from 02:30 CEST
        [
            "10-25 02:40+0200",
            "10-25 02:00+0100",
            "10-25 02:20+0100",
            "10-25 02:40+0100",
            "10-25 03:00+0100",
        ],
    ),
    (
        PRAGUE,
        ("i", None, 0),
        utc(2026, 3, 29, 0, 58),
        ["03-29 01:59+0100", "03-29 03:00+0200", "03-29 03:01+0200"],
    ),
    (
        PRAGUE,
        ("h", None, 0),
        utc(2026, 10, 25, 1, 30),  # after is inside the repeated hour
        ["10-25 03:00+0100", "10-25 04:00+0100"],
    ),
    # New York: spring forward 2026-03-08 02:00 -> 03:00, fall back 2026-11-01 02:00 -> 01:00
    (
        NEW_YORK,
        ("c", "30 2 * * *", 0),
        utc(2026, 3, 7),
        ["03-07 02:30-0500", "03-08 03:00-0400", "03-09 02:30-0400"],
    ),
    (
        NEW_YORK,
        ("c", "30 1 * * *", 0),
        utc(2026, 10, 31),
        ["10-31 01:30-0400", "11-01 01:30-0400", "11-02 01:30-0500"],
    ),
    (
        NEW_YORK,
        ("h", None, 0),
        utc(2026, 11, 1, 4, 30),
        ["11-01 01:00-0400", "11-01 01:00-0500", "11-01 02:00-0500"],
    ),
    (
        NEW_YORK,
        ("w", None, 2 * 3600 + 1800),
        utc(2026, 3, 1),  # weekly: Mondays 02:30
        ["03-02 02:30-0500", "03-09 02:30-0400"],
    ),
    # Sydney (south): back 2026-04-05 03:00 -> 02:00, forward 2026-10-04 02:00 -> 03:00
    (
        SYDNEY,
        ("c", "30 2 * * *", 0),
        utc(2026, 4, 3, 12),
        ["04-04 02:30+1100", "04-05 02:30+1100", "04-06 02:30+1000"],
    ),
    (
        SYDNEY,
        ("c", "30 2 * * *", 0),
        utc(2026, 10, 2, 12),
        ["10-03 02:30+1000", "10-04 03:00+1100", "10-05 02:30+1100"],
    ),
]


@pytest.mark.parametrize(("tz", "spec", "after", "expected"), DST_CASES)
def test_daylight_saving(
    tz: str, spec: tuple[str, str | None, int], after: datetime, expected: list[str]
) -> None:
    interval, cron, delay = spec
    got = runs(interval, after, len(expected), cron=cron, delay=delay, tz=tz)
    assert [t.astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M%z") for t in got] == expected
    assert all(t.tzinfo is UTC for t in got)


@pytest.mark.parametrize("tz", [PRAGUE, NEW_YORK, SYDNEY])
def test_a_whole_year_daily_runs_once_per_local_day_and_hourly_every_real_hour(tz: str) -> None:
    start, end = utc(2026, 1, 1), utc(2026, 12, 31, 23, 59)  # both ends inclusive
    daily = Schedule("30 2 * * *", ZoneInfo(tz)).runs_between(start, end, 1000)
    days = [t.astimezone(ZoneInfo(tz)).date() for t in daily]
    assert len(days) == len(set(days)) == 365
    hourly = Schedule("0 * * * *", ZoneInfo(tz)).runs_between(start, end, 10_000)
    assert len(hourly) == 8760
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(hourly))


def test_runs_between_returns_the_latest_slots_ascending() -> None:
    sched = Schedule("0 * * * *", ZoneInfo("UTC"))
    got = sched.runs_between(utc(2026, 5, 4, 10), utc(2026, 5, 4, 15, 30), 3)
    assert got == [utc(2026, 5, 4, 13), utc(2026, 5, 4, 14), utc(2026, 5, 4, 15)]
    assert sched.runs_between(utc(2026, 5, 4, 10), utc(2026, 5, 4, 15, 30), 100)[0] == utc(
        2026, 5, 4, 10
    )  # start is inclusive
    yearly = Schedule("0 0 1 1 *", ZoneInfo("UTC"))
    assert yearly.runs_between(utc(2000, 1, 1), utc(2026, 6, 1), 2) == [
        utc(2025, 1, 1),
        utc(2026, 1, 1),
    ]
    # a year of minutely downtime is cut short without walking every minute
    minutely = Schedule("* * * * *", ZoneInfo("UTC"))
    assert len(minutely.runs_between(utc(2025, 1, 1), utc(2026, 1, 1), 10)) == 10


def test_slots_after_keeps_its_signature() -> None:
    got = slots_after("0 0 * * *", ZoneInfo(PRAGUE), utc(2026, 3, 28, 12), 9000, 2)
    assert got == [local(PRAGUE, 2026, 3, 29, 3, 0), local(PRAGUE, 2026, 3, 30, 2, 30)]


def rt(**kw: object) -> RunTemplate:
    values: dict[str, object] = {
        "interval": "d",
        "delay": 0,
        "active": True,
        "cron": None,
        "timezone": None,
    }
    values.update(kw)
    return RunTemplate(**values)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (rt(), utc(2026, 5, 5)),
        (rt(timezone=PRAGUE), local(PRAGUE, 2026, 5, 5)),
        (rt(interval="n"), None),
        (rt(active=False), None),
        (rt(interval="c", cron="15 6 * * *"), utc(2026, 5, 5, 6, 15)),
        (rt(interval="c", cron=None), None),
    ],
)
def test_next_run_of_a_template(template: RunTemplate, expected: datetime | None) -> None:
    assert next_run(template, utc(2026, 5, 4, 10), "UTC") == expected


def test_default_time_zone_applies_when_the_template_has_none() -> None:
    assert next_run(rt(), utc(2026, 5, 4, 10), NEW_YORK) == local(NEW_YORK, 2026, 5, 5)


def test_refresh_next_run_never_picks_a_past_slot() -> None:
    template = rt(interval="h", next_run_at=utc(2020, 1, 1))
    refresh_next_run(template, utc(2026, 5, 4, 10, 0, 1), "UTC")
    assert template.next_run_at == utc(2026, 5, 4, 11)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("x", None, None, 0), "interval 'x': must be one of n i h d w m y c"),
        (("d", None, None, -1), "delay -1: must be 0 or more seconds"),
        (("d", None, "Mars/Olympus", 0), "timezone 'Mars/Olympus': not a known IANA time zone"),
        (("c", None, None, 0), "cron: required when the interval is c (custom)"),
        (("c", "0 0 * *", None, 0), "must have 5 fields"),
        (("c", "0 0 * * * *", None, 0), "must have 5 fields"),
        (("c", "61 * * * *", None, 0), "not a valid cron expression"),
        (("c", "0 0 30 2 *", None, 0), "never fires"),
    ],
)
def test_validate_refuses_with_the_reason(
    args: tuple[str, str | None, str | None, int], message: str
) -> None:
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(*args)


@pytest.mark.parametrize(
    "args", [("n", None, None, 0), ("d", None, PRAGUE, 7200), ("c", "*/5 * * * 1-5", None, 0)]
)
def test_validate_accepts(args: tuple[str, str | None, str | None, int]) -> None:
    validate(*args)
