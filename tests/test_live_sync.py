"""Live syncs run off the job's thread: a job that ends while its sync waits for the database is
journaled at once, and a replay never stores a row twice."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from multiflexi_web.extensions import db
from multiflexi_web.models import JobStatus
from multiflexi_web.runner.contexts import ContextCache
from multiflexi_web.runner.finish import Finisher
from multiflexi_web.runner.journal import Journal
from multiflexi_web.runner.live_sync import LiveSync
from multiflexi_web.runner.replay import replay_orphans
from multiflexi_web.runner.run import JobRun, RunSettings
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.transitions import Outcome
from tests.executor_support import job, output_of, schedule, shell_rt
from tests.factories import make_worker

WAIT = 60.0  # generous: the events below end every wait long before on a quiet machine


@contextlib.contextmanager
def _job_row_locked(job_id: int) -> Iterator[None]:
    """Another connection holds the job's row (PostgreSQL) or the write lock (SQLite): a live
    sync waits for it, as for a busy or slow database."""
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        if db.engine.dialect.name == "postgresql":
            cur.execute("SELECT id FROM job WHERE id = %s FOR UPDATE", (job_id,))
        else:
            raw.driver_connection.isolation_level = None  # type: ignore[union-attr]
            cur.execute("BEGIN IMMEDIATE")
        yield
    finally:
        raw.rollback()
        raw.close()


def _settings(tmp_path: Path) -> RunSettings:
    return RunSettings(tmp_path, tmp_path / "art", 1 << 20, 1 << 20, 60, 1.0, False, 0.2)


def test_a_job_that_ends_while_its_sync_waits_for_the_database_is_journaled_at_once(
    app: Flask, tmp_path: Path
) -> None:
    """Before, the sync ran on the job's thread: the exit went unjournaled until the database
    answered, and a kill -9 meanwhile had the finished job run again."""
    rt = shell_rt("echo first; sleep 1; echo second")
    [job_id] = schedule(rt, 1)
    claimed = jobs.claim(make_worker().id, 1)[0]
    db.session.commit()
    ctx, problem = ContextCache().get(rt.id)
    db.session.commit()
    journaled = threading.Event()
    sync_under_way: list[bool] = []

    def exited(run: JobRun) -> None:
        sync_under_way.append(not run._sync_done.is_set())
        journaled.set()

    live = LiveSync(app)
    run = JobRun(claimed, _settings(tmp_path), threading.Event(), exited=exited, live=live)

    def work() -> None:
        with app.app_context():
            run.run(ctx, problem)

    thread = threading.Thread(target=work)
    with _job_row_locked(job_id):
        thread.start()
        assert journaled.wait(WAIT), "the exit waited for the blocked sync"
        assert sync_under_way == [True]
        assert thread.is_alive()  # it waits for the sync before recording the finish
    thread.join(WAIT)
    live.close()
    assert not thread.is_alive()
    assert job(job_id).status == "succeeded"
    assert output_of(job_id) == b"first\nsecond\n"


def test_rows_a_sync_stored_after_the_exit_entry_are_not_stored_again_at_replay(
    app: Flask, tmp_path: Path
) -> None:
    """The exit entry holds the batch a sync was storing; the sync then commits and the
    executor dies: the replay skips the rows already there."""
    rt = shell_rt("true")
    [job_id] = schedule(rt, 1)
    run = JobRun(jobs.claim(make_worker().id, 1)[0], _settings(tmp_path), threading.Event())
    run.output("stdout", b"stored by the sync\n")
    run.outcome = Outcome(JobStatus.SUCCEEDED, 0)
    fin = Finisher(
        app, threading.Event(), lambda: [], lambda _: None, 4, Journal(tmp_path / "s", 1 << 20), 7
    )
    run._inflight = [run.sink.take()]  # a sync under way
    run.output("stdout", b"after it\n")
    fin.exited(run)  # both batches
    run._sync_inflight(beat=False)  # ...then the sync commits
    assert output_of(job_id) == b"stored by the sync\n"
    assert fin.journal is not None
    os.close(fin.journal.fd)  # killed

    assert replay_orphans(tmp_path / "s", None, lambda fn: fn()) == 1
    assert job(job_id).status == "succeeded"
    assert output_of(job_id) == b"stored by the sync\nafter it\n"


def test_the_sync_thread_runs_what_was_queued_and_survives_a_failing_sync(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    live = LiveSync(app)
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("a bug")

    assert live.submit(broken)
    assert live.submit(lambda: ran.append("next"))
    live.close()
    assert ran == ["next"]
    assert "action=live_sync_error" in caplog.text
    assert not live.submit(lambda: ran.append("late"))  # closed: the caller syncs itself
    assert ran == ["next"]
