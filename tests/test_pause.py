"""Pauses: the claim and the scheduler leave paused scopes alone; resuming brings them back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from multiflexi_web.db.raw import driver
from multiflexi_web.extensions import db
from multiflexi_web.models import PauseScope, RunTemplate, utcnow
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.claim import CLAIM
from multiflexi_web.services.operations import pauses
from multiflexi_web.services.operations.pauses import PauseBusy, Target, pause, resume
from multiflexi_web.services.scheduling.batches import tick
from tests.executor_support import job, schedule, shell_rt
from tests.factories import make_worker
from tests.test_jobs_transitions import _plan
from tests.test_scheduler_tick import T0, make_rt, reload, slot_jobs


def _claim() -> list[int]:
    return sorted(c.id for c in jobs.claim(make_worker().id, 10))


def _target(scope: PauseScope, rt: RunTemplate) -> Target:
    ids = {
        PauseScope.RUNTEMPLATE: rt.id,
        PauseScope.APPLICATION: rt.application_id,
        PauseScope.COMPANY: rt.company_id,
    }
    return Target(scope, ids[scope]) if scope in ids else Target(scope)


def _pause(target: Target) -> bool:
    done = pause(target, actor="test", user_id=None)
    db.session.commit()
    return done


def _resume(target: Target) -> bool:
    done = resume(target)
    db.session.commit()
    return done


@pytest.mark.parametrize("scope", list(PauseScope))
def test_a_paused_scope_claims_nothing_and_its_jobs_wait_for_the_resume(
    app: Flask, scope: PauseScope
) -> None:
    held = shell_rt("true", overlap_policy="allow")
    other = shell_rt("true", overlap_policy="allow")  # another company and application
    target = _target(scope, held)
    assert _pause(target)
    held_jobs = schedule(held, 2)
    other_jobs = schedule(other, 1)
    expected = [] if scope is PauseScope.PLATFORM else other_jobs
    assert _claim() == expected
    assert {job(j).status for j in held_jobs} == {"scheduled"}  # not lost, not skipped
    assert not jobs.anything_due()  # the executor's cheap read agrees: it does not spin
    assert _resume(target)
    assert _claim() == held_jobs + ([] if expected else other_jobs)


def test_pausing_twice_or_resuming_what_is_not_paused_changes_nothing(app: Flask) -> None:
    rt = shell_rt("true")
    target = Target(PauseScope.RUNTEMPLATE, rt.id)
    assert _pause(target) and not _pause(target)
    assert _resume(target) and not _resume(target)


def test_a_pause_must_name_something_that_exists(app: Flask) -> None:
    with pytest.raises(ValueError, match="no company 999999"):
        pause(Target(PauseScope.COMPANY, 999999), actor="test", user_id=None)


def test_the_claim_keeps_its_plan_while_something_is_paused(app: Flask) -> None:
    """A pause must not make the claim slow: still a walk along ix_job_waiting, no sort."""
    schedule(shell_rt("true", overlap_policy="allow"), 30)
    _pause(Target(PauseScope.RUNTEMPLATE, shell_rt("true").id))
    sql, params = driver(db.session()).sql(
        CLAIM, {"p_now": utcnow(), "p_worker": make_worker().id, "p_limit": 1}
    )
    plan = _plan(sql, params)
    assert "ix_job_waiting" in plan, plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan


PAUSED_UNTIL = T0 + timedelta(hours=5, minutes=30)  # slots 10:00 .. 15:00 came due while paused


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("latest", [(T0 + timedelta(hours=5), "scheduled")]),
        ("skip", [(T0 + timedelta(hours=h), "skipped") for h in range(6)]),
    ],
)
def test_slots_due_while_paused_meet_the_misfire_policy_at_the_resume(
    app: Flask, policy: str, expected: list[tuple[object, str]]
) -> None:
    """No burst: the paused template writes nothing, then its missed slots count as misfires."""
    held = shell_rt("true", interval="h", next_run_at=T0, misfire_policy=policy)
    running = make_rt(held.company, held.application, next_run_at=T0)  # same company, not paused
    target = Target(PauseScope.RUNTEMPLATE, held.id)
    _pause(target)
    tick(T0 + timedelta(hours=1, seconds=1))
    tick(PAUSED_UNTIL)
    assert slot_jobs(held.id) == [] and reload(held).next_run_at == T0
    assert len(slot_jobs(running.id)) == 2  # the scheduler went on with the others
    _resume(target)
    tick(PAUSED_UNTIL)
    assert [(s, st) for s, st, _ in slot_jobs(held.id)] == expected
    assert reload(held).next_run_at == T0 + timedelta(hours=6)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_pause_waits_for_the_claims_in_flight(
    app: Flask, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim not yet committed holds the pause fence: the pause waits for it (here, past a
    shortened wait, it is refused and changes nothing); once the claim ends it goes through."""
    rt = shell_rt("true", overlap_policy="allow")
    first, _second = schedule(rt, 2)
    target = Target(PauseScope.RUNTEMPLATE, rt.id)
    worker_id = make_worker().id
    in_flight = Session(db.engine)
    try:
        params = {"p_now": utcnow(), "p_worker": worker_id, "p_limit": 1}
        assert [r[0] for r in driver(in_flight).rows(CLAIM, params)] == [first]
        monkeypatch.setattr(pauses, "FENCE_TIMEOUT_MS", 200)
        with pytest.raises(PauseBusy):
            pause(target, actor="test", user_id=None)
        db.session.rollback()
        in_flight.commit()  # the claim made before the pause
    finally:
        in_flight.close()
    assert _pause(target)
    assert _claim() == []
