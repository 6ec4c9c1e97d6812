"""Pause and drain against a real executor process: races, give-backs, the drained state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from multiflexi_web.db.engine import begin_write
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, PauseScope, Worker
from multiflexi_web.services.operations.drain import request_drain
from multiflexi_web.services.operations.pauses import Target, pause, resume
from tests.executor_support import (
    Gate,
    log_text,
    schedule,
    shell_rt,
    show_logs,
    start_daemon,
    stop,
    wait_for,
)
from tests.test_executor_process import _counts

pytestmark = pytest.mark.slow

# A short LOST_AFTER for its short heartbeat (LOST_AFTER / 6): an executor reads a drain request
# with its beat, and these tests need it read within a fraction of a second.
FAST = {"MULTIFLEXI_LOST_AFTER": "2", "MULTIFLEXI_KILL_GRACE": "1", "MULTIFLEXI_STOP_GRACE": "1"}
DEADLINE = 60  # a deadline only: the outcome is asserted, never how long it took


@pytest.fixture(autouse=True)
def _logs_on_failure(tmp_path: Path) -> Iterator[None]:
    yield
    show_logs(tmp_path)


def _taken(ids: list[int]) -> set[int]:
    """Jobs some executor has claimed (whatever became of them since)."""
    db.session.rollback()
    return set(db.session.scalars(select(Job.id).where(Job.id.in_(ids), Job.status != "scheduled")))


def _status_of(worker_id: int) -> str:
    db.session.rollback()
    worker = db.session.get(Worker, worker_id)
    assert worker is not None
    return worker.status


def _drained(worker_id: int) -> None:
    wait_for(lambda: _status_of(worker_id) == "drained", DEADLINE, "the executor drained")


def _worker_of(pid: int) -> Worker:
    def found() -> bool:
        db.session.rollback()
        return db.session.scalar(select(Worker).where(Worker.pid == pid)) is not None

    wait_for(found, DEADLINE, "the executor's worker row")
    worker = db.session.scalar(select(Worker).where(Worker.pid == pid))
    assert worker is not None
    return worker


def test_no_job_of_a_paused_template_is_claimed_once_the_pause_committed(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    """The pause commits while the executor claims the template's jobs as fast as it can;
    from then on it claims other work but never another of those jobs, until the resume."""
    held_rt = shell_rt("true", overlap_policy="allow")
    held = schedule(held_rt, 300)
    proc = start_daemon(db_url, tmp_path, **FAST)
    try:
        wait_for(lambda: len(_taken(held)) >= 30, DEADLINE, "the executor busy with held jobs")
        begin_write()
        pause(Target(PauseScope.RUNTEMPLATE, held_rt.id), actor="test", user_id=None)
        db.session.commit()
        before = _taken(held)
        assert len(before) < len(held), "the pause came too late to test anything"
        others = schedule(shell_rt("true", overlap_policy="allow"), 30)
        wait_for(lambda: _counts(others) == {"succeeded": 30}, DEADLINE, "work after the pause")
        assert _taken(held) == before
        assert set(_counts(held)) <= {"succeeded", "running", "scheduled"}
        begin_write()
        resume(Target(PauseScope.RUNTEMPLATE, held_rt.id))
        db.session.commit()
        wait_for(lambda: _counts(held) == {"succeeded": 300}, DEADLINE, "the held jobs run")
    finally:
        stop(proc)


def test_a_drained_executor_gives_back_what_it_claimed_ahead_and_idles(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    ids = schedule(shell_rt("echo $MULTIFLEXI_JOB_ID", overlap_policy="allow"), 400)
    proc = start_daemon(db_url, tmp_path, **FAST)
    try:
        wait_for(lambda: _counts(ids).get("succeeded", 0) >= 40, DEADLINE, "40 jobs done")
        worker = _worker_of(proc.pid)
        begin_write()  # after the read: on SQLite a read cannot be upgraded to a write
        request_drain(worker.id)
        db.session.commit()
        _drained(worker.id)
        left = _counts(ids)
        assert proc.poll() is None  # idle, not gone: a supervisor would restart it undrained
    finally:
        assert stop(proc) == 0
    assert _counts(ids) == left  # it claimed nothing while drained
    assert set(left) <= {"succeeded", "scheduled"}, left  # nothing lost, nothing stuck
    assert left.get("scheduled"), f"the drain came too late to test anything: {left}"
    db.session.rollback()
    assert not db.session.scalar(select(Job.worker_id).where(Job.status == "scheduled").limit(1))
    assert "action=drained" in log_text(tmp_path)


def test_a_draining_executor_finishes_its_running_jobs_and_claims_nothing_new(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    gate = Gate()
    try:
        slow = schedule(shell_rt(gate.wait_script(), overlap_policy="allow"), 2)
        proc = start_daemon(db_url, tmp_path, **FAST)  # two slots: both jobs run
        try:
            wait_for(lambda: _counts(slow) == {"running": 2}, DEADLINE, "both jobs running")
            worker = _worker_of(proc.pid)
            begin_write()
            request_drain(worker.id)
            db.session.commit()
            wait_for(lambda: "action=drain_requested" in log_text(tmp_path), DEADLINE, "drain seen")
            later = schedule(shell_rt("true", overlap_policy="allow"), 3)
            db.session.rollback()
            assert _status_of(worker.id) == "draining"
            gate.open()
            _drained(worker.id)
            assert _counts(slow) == {"succeeded": 2}  # finished, not stopped
            assert _counts(later) == {"scheduled": 3}
        finally:
            assert stop(proc) == 0
        assert _status_of(worker.id) == "stopped"
    finally:
        gate.close()
