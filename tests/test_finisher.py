"""The finisher: a batch of finishes, its rows and counters, and the successors' claim."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from flask import Flask

from multiflexi_web.extensions import db
from multiflexi_web.models import JobStatus, RunTemplate
from multiflexi_web.runner.finish import Finisher
from multiflexi_web.runner.run import JobRun, RunSettings
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.claim import ClaimedJob
from multiflexi_web.services.jobs.transitions import Outcome
from tests.executor_support import job, output_of, schedule, shell_rt
from tests.factories import make_worker


def _runs(claimed: list[ClaimedJob], tmp_path: Path) -> list[JobRun]:
    cfg = RunSettings(tmp_path, tmp_path / "art", 1 << 20, 1 << 20, 60, 1.0, False, 1.0)
    runs = []
    for c in claimed:
        run = JobRun(c, cfg, threading.Event())
        run.output("stdout", f"out {c.id}\n".encode())
        run.outcome = Outcome(JobStatus.SUCCEEDED, 0)
        run._unsent.append(run.sink.take())
        runs.append(run)
    return runs


@pytest.fixture
def finisher(app: Flask) -> Finisher:
    fin = Finisher(app, threading.Event(), lambda: [], lambda _: None, max_pending=4)
    yield fin  # type: ignore[misc]
    fin.close()


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the batch sizes that went step by step."""
    careful: list[int] = []
    step_by_step = Finisher._step_by_step

    def spy(self: Finisher, batch: list[JobRun]) -> list[ClaimedJob]:
        careful.append(len(batch))
        return step_by_step(self, batch)

    monkeypatch.setattr(Finisher, "_step_by_step", spy)
    return careful


def test_a_batch_records_statuses_output_and_counters(
    app: Flask, finisher: Finisher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = shell_rt("true", overlap_policy="allow")
    ids = schedule(rt, 3)
    runs = _runs(jobs.claim(make_worker().id, 3), tmp_path)
    careful = _spy(monkeypatch)
    finisher._commit(runs)
    # PostgreSQL: all in one round trip; SQLite (no round trips to save) goes step by step.
    assert careful == ([] if db.engine.dialect.name == "postgresql" else [3])
    for job_id in ids:
        assert job(job_id).status == JobStatus.SUCCEEDED.value
        assert output_of(job_id) == f"out {job_id}\n".encode()
    assert db.session.get(RunTemplate, rt.id).success_count == 3  # type: ignore[union-attr]


def test_a_job_reaped_meanwhile_keeps_its_status_and_is_not_counted(
    app: Flask, finisher: Finisher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = shell_rt("true", overlap_policy="allow")
    first, reaped, third = schedule(rt, 3)
    runs = _runs(jobs.claim(make_worker().id, 3), tmp_path)
    assert jobs.mark_lost(reaped, "test: its executor looked dead")
    db.session.commit()
    careful = _spy(monkeypatch)
    finisher._commit(runs)
    assert careful == [3]  # PostgreSQL's one-trip bet was lost and undone; SQLite never bets
    assert [job(i).status for i in (first, reaped, third)] == ["succeeded", "lost", "succeeded"]
    assert output_of(reaped) == b""  # nothing stored for a job that was not ours any more
    counted = db.session.get(RunTemplate, rt.id)
    db.session.refresh(counted)  # type: ignore[arg-type]
    assert (counted.success_count, counted.failure_count) == (2, 1)  # type: ignore[union-attr]


def test_jobs_claimed_ahead_go_back_to_the_queue_on_stop(app: Flask) -> None:
    from daemons.runtime import Runtime
    from multiflexi_web.runner.pool import Executor

    ids = schedule(shell_rt("true", overlap_policy="allow"), 3)
    rt = Runtime("executor", app)
    rt.register()
    ex = Executor(rt)
    try:
        with app.app_context():
            ex.ready.extend(jobs.claim(rt.worker_id or 0, 3))
        assert [job(i).status for i in ids] == ["running"] * 3
        ex._shutdown()
    finally:
        rt.unregister()
    db.session.rollback()
    for i in ids:
        j = job(i)
        assert (j.status, j.worker_id, j.started_at) == ("scheduled", None, None)
    assert not ex.ready
