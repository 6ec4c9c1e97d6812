"""Slot planning without a database: misfire policies after a simulated downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from multiflexi_web.services.scheduling.tick import MISFIRE_GRACE, plan_slots
from multiflexi_web.services.scheduling.times import Schedule

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
HOURLY = Schedule("0 * * * *", ZoneInfo("UTC"))
MINUTELY = Schedule("* * * * *", ZoneInfo("UTC"))


def h(n: float) -> datetime:
    return T0 + timedelta(hours=n)


@pytest.mark.parametrize(
    ("sched", "policy", "now", "expected_runs", "expected_next"),
    [
        # on time: one slot, whatever the policy
        (HOURLY, "latest", h(0) + timedelta(seconds=1), [(h(0), "scheduled")], h(1)),
        (HOURLY, "skip", h(0) + MISFIRE_GRACE, [(h(0), "scheduled")], h(1)),
        (HOURLY, "all", h(0), [(h(0), "scheduled")], h(1)),
        # late by more than the grace, no later slot passed
        (HOURLY, "latest", h(0.5), [(h(0), "scheduled")], h(1)),
        (HOURLY, "skip", h(0.5), [(h(0), "skipped")], h(1)),
        # three hours of downtime
        (HOURLY, "latest", h(3.5), [(h(3), "scheduled")], h(4)),
        (HOURLY, "skip", h(3.5), [(h(n), "skipped") for n in range(4)], h(4)),
        (HOURLY, "skip", h(3) + timedelta(seconds=2),
         [(h(n), "skipped") for n in range(3)] + [(h(3), "scheduled")], h(4)),
        (HOURLY, "all", h(3.5), [(h(n), "scheduled") for n in range(4)], h(4)),
    ],
)  # fmt: skip
def test_misfire_policies(
    sched: Schedule,
    policy: str,
    now: datetime,
    expected_runs: list[tuple[datetime, str]],
    expected_next: datetime,
) -> None:
    plan = plan_slots(sched, policy, T0, now, max_catchup=10)
    assert [(r.at, r.status.value) for r in plan.runs] == expected_runs
    assert plan.next_run_at == expected_next
    assert plan.last_slot_at == expected_runs[-1][0]


def test_all_runs_only_the_latest_catchup_slots_and_records_older_ones_skipped() -> None:
    plan = plan_slots(MINUTELY, "all", T0, T0 + timedelta(minutes=24, seconds=30), max_catchup=5)
    statuses = [r.status.value for r in plan.runs]
    assert statuses == ["skipped"] * 20 + ["scheduled"] * 5
    assert plan.runs[-1].at == T0 + timedelta(minutes=24)
    assert "MULTIFLEXI_MAX_CATCHUP" in (plan.runs[0].reason or "")


def test_a_year_of_downtime_is_bounded() -> None:
    now = T0 + timedelta(days=365)
    assert len(plan_slots(MINUTELY, "skip", T0, now, 10).runs) == 100  # the record cap
    assert [r.at for r in plan_slots(MINUTELY, "latest", T0, now, 10).runs] == [now]
    assert plan_slots(MINUTELY, "latest", T0, now, 10).next_run_at == now + timedelta(minutes=1)


def test_manual_templates_get_no_slot_and_no_next_run() -> None:
    plan = plan_slots(None, "latest", T0, h(1), 10)
    assert (plan.runs, plan.next_run_at, plan.last_slot_at) == ((), None, None)
