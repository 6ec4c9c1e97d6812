"""The executor's lease: claims checked before they start, jobs stopped when it is lost, and
reaping that waits until the reaper itself has been connected for LOST_AFTER."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text, update

from daemons.runtime import Runtime
from multiflexi_web.db.retry import LINK
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, Worker, utcnow
from multiflexi_web.runner.lease import Lease
from multiflexi_web.runner.pool import Executor
from multiflexi_web.services.jobs import transitions as jobs
from tests.executor_support import job, schedule, shell_rt, wait_for
from tests.factories import make_worker


@pytest.fixture
def executor(app: Flask) -> Iterator[Executor]:
    host = Runtime("executor", app)
    host.register()
    ex = Executor(host)
    yield ex
    ex._shutdown()
    host.unregister()


def _lapse(lease: Lease) -> None:
    """As if the worker heartbeat could not be written for LOST_AFTER (an outage)."""
    lease.renewed_at -= lease.lost_after
    lease.renewed(time.monotonic())


def _idle(ex: Executor) -> bool:
    return not ex.running and not ex.finisher.pending()


def test_the_lease_holds_a_claim_only_if_it_never_lapsed_since() -> None:
    lease = Lease(lost_after=60)
    before = time.monotonic()
    assert lease.holds_claim(before) and not lease.lost()
    _lapse(lease)
    assert not lease.holds_claim(before)  # claimed before the gap: ask the database
    assert lease.holds_claim(time.monotonic())
    lease.renewed_at -= 45
    assert lease.lost() and not lease.holds_claim(time.monotonic())


def test_a_claimed_ahead_job_reaped_meanwhile_is_not_started(
    executor: Executor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = tmp_path / "ran.txt"
    kept, reaped = schedule(
        shell_rt(f'echo "$MULTIFLEXI_JOB_ID" >> {ran}', overlap_policy="allow"), 2
    )
    asked: list[int] = []
    still_claimed = jobs.still_claimed
    monkeypatch.setattr(jobs, "still_claimed", lambda j, w: asked.append(j) or still_claimed(j, w))
    claimed = jobs.claim(executor.rt.worker_id or 0, 2)
    executor.claims.made(claimed, time.monotonic())
    _lapse(executor.rt.lease)
    assert jobs.mark_lost(reaped, "test: reaped while its executor was cut off")
    db.session.commit()
    for c in claimed:
        executor._start(c)
    wait_for(lambda: job(kept).status == "succeeded" and _idle(executor), 30, "the kept job")
    assert sorted(asked) == [kept, reaped]  # both checked in the database: the lease lapsed
    assert ran.read_text().split() == [str(kept)]
    assert job(reaped).status == "lost"


def test_without_a_lapse_a_claim_starts_without_asking(
    executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    [only] = schedule(shell_rt("true"))
    monkeypatch.setattr(jobs, "still_claimed", lambda j, w: pytest.fail("asked the database"))
    claimed = jobs.claim(executor.rt.worker_id or 0, 1)
    executor.claims.made(claimed, time.monotonic())
    executor._start(claimed[0])
    wait_for(lambda: job(only).status == "succeeded" and _idle(executor), 30, "the job")


def test_a_lost_lease_stops_the_running_jobs(executor: Executor, tmp_path: Path) -> None:
    started = tmp_path / "started"
    [long] = schedule(shell_rt(f"touch {started}; sleep 60", max_attempts=2))
    claimed = jobs.claim(executor.rt.worker_id or 0, 1)
    executor.claims.made(claimed, time.monotonic())
    executor._start(claimed[0])
    wait_for(started.exists, 30, "the job's process")
    executor.rt.lease.renewed_at -= executor.rt.lease.fence_after  # nobody could beat meanwhile
    wait_for(lambda: job(long).status == "failed" and _idle(executor), 30, "the job stopped")
    assert "lease lost" in (job(long).status_reason or "")
    retry = db.session.query(Job).filter(Job.retry_of_id == long).one()  # retried per policy
    assert retry.status == "scheduled"


def _stale_job_of_dead_worker() -> tuple[int, int]:
    [job_id] = schedule(shell_rt("true"))
    dead = make_worker(heartbeat_age=600)
    old = utcnow() - timedelta(minutes=10)
    db.session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(status="running", worker_id=dead.id, heartbeat_at=old, claimed_at=old)
    )
    db.session.commit()
    return job_id, dead.id


def test_a_reaper_judges_others_only_once_connected_for_lost_after(
    executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, dead = _stale_job_of_dead_worker()
    LINK.failed()  # this executor just came back from an outage
    executor.reaper.maintain()
    assert job(job_id).status == "running"
    assert db.session.get(Worker, dead).status == "running"  # type: ignore[union-attr]
    monkeypatch.setattr(LINK, "last_error", time.monotonic() - executor.s.lost_after)
    executor.reaper._next_reap = 0.0
    executor.reaper.maintain()
    assert job(job_id).status == "lost"
    db.session.expire_all()
    assert db.session.get(Worker, dead).status == "dead"  # type: ignore[union-attr]


def test_a_worker_marked_dead_that_beats_again_runs_again(app: Flask) -> None:
    from daemons.runtime import Runtime

    host = Runtime("executor", app)
    host.register()
    later = jobs.database_now() + timedelta(seconds=120)  # as seen by a reaper 2 minutes on
    assert host.worker_id in jobs.mark_dead_workers(60, now=later)
    db.session.commit()
    host.beat()
    db.session.expire_all()
    back = db.session.get(Worker, host.worker_id)
    assert back is not None and (back.status, back.stopped_at) == ("running", None)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_connection_killed_under_a_job_thread_is_no_job_error(
    executor: Executor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from multiflexi_web.runner.contexts import ContextCache
    from tests.pg_kill import backend_pid, terminate

    caplog.set_level(logging.INFO)
    [only] = schedule(shell_rt("echo done"))
    get = ContextCache.get

    def get_then_die(self: ContextCache, rt_id: int) -> object:
        found = get(self, rt_id)
        db.session.execute(text("SELECT 1"))  # the job thread's session holds a connection...
        terminate(backend_pid())  # ...killed while the job runs
        return found

    monkeypatch.setattr(ContextCache, "get", get_then_die)
    claimed = jobs.claim(executor.rt.worker_id or 0, 1)
    executor.claims.made(claimed, time.monotonic())
    executor._start(claimed[0])
    wait_for(lambda: job(only).status == "succeeded" and _idle(executor), 30, "the job")
    assert "job_finished" in caplog.text and "job_error" not in caplog.text
