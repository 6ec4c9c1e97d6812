"""Real executors against a PostgreSQL of the test's own that goes away: nothing runs twice.

LOST_AFTER is 3 s here (60 s by default): an outage of 5 s is "longer than LOST_AFTER".
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from multiflexi_web.extensions import db
from multiflexi_web.models import Job
from tests.executor_support import (
    job,
    log_text,
    output_of,
    schedule,
    shell_rt,
    show_logs,
    start_daemon,
    stop,
    wait_for,
)
from tests.private_pg import PrivatePostgres, private_pg  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow
FAST = {"MULTIFLEXI_LOST_AFTER": "3", "MULTIFLEXI_KILL_GRACE": "1", "MULTIFLEXI_STOP_GRACE": "2"}
OUTAGE = 5.0  # seconds PostgreSQL is stopped: longer than LOST_AFTER


@pytest.fixture
def db_url(private_pg: PrivatePostgres) -> str:  # noqa: F811 - this module's database
    return private_pg.url


@pytest.fixture(autouse=True)
def _logs_on_failure(tmp_path: Path) -> Iterator[None]:
    yield
    show_logs(tmp_path)


def _once_script(side: Path, then: str) -> str:
    """Append the job id to `side` under flock (two executors may write at once), then `then`."""
    return f"flock {side}.lock sh -c 'echo $MULTIFLEXI_JOB_ID >> {side}'; {then}"


def _all_jobs() -> list[Job] | None:
    """Every job, or None while the database is still away from the test's connection."""
    try:
        db.session.rollback()
        return list(db.session.scalars(select(Job).order_by(Job.id)))
    except DBAPIError:
        db.session.rollback()
        return None


def _settled() -> bool:
    found = _all_jobs()
    return found is not None and all(j.status not in ("scheduled", "running") for j in found)


def test_an_outage_longer_than_lost_after_runs_no_job_twice(
    app: Flask,
    db_url: str,
    tmp_path: Path,
    private_pg: PrivatePostgres,  # noqa: F811
) -> None:
    side, done = tmp_path / "ran.txt", tmp_path / "done.txt"
    finish = f"sleep 0.4; flock {done}.lock sh -c 'echo $MULTIFLEXI_JOB_ID >> {done}'; echo done"
    rt = shell_rt(_once_script(side, finish), overlap_policy="allow", max_attempts=3)
    schedule(rt, 40)
    procs = [start_daemon(db_url, tmp_path, log_name=f"executor{n}", **FAST) for n in (1, 2)]
    try:
        wait_for(lambda: side.exists() and len(side.read_text().split()) >= 6, 60, "jobs ran")
        private_pg.stop()
        time.sleep(OUTAGE)  # the fault itself: how long the database is away
        private_pg.start()
        wait_for(_settled, 120, "every job finished after the outage", every=0.2)
    finally:
        for p in procs:
            stop(p)
    ran = Counter(int(x) for x in side.read_text().split())
    completed = Counter(int(x) for x in done.read_text().split())
    assert [i for i, n in ran.items() if n > 1] == []  # no job id ran twice
    jobs_ = _all_jobs() or []
    succeeded = [j for j in jobs_ if j.status == "succeeded"]
    assert {j.id for j in succeeded} <= set(ran)
    assert not any(j.retry_of_id in {s.id for s in succeeded} for j in jobs_)  # none re-run
    originals = [j for j in jobs_ if j.retry_of_id is None]
    assert len(originals) == 40
    for j in originals:  # each job's work completed exactly once, over all its attempts
        chain = _chain(j, jobs_)
        why = [(c.id, c.status, c.status_reason) for c in chain]
        assert [c.status for c in chain].count("succeeded") == 1, why
        assert sum(completed[c.id] for c in chain) == 1, why
    logs = log_text(tmp_path, "executor1") + log_text(tmp_path, "executor2")
    assert "finish_failed" not in logs and "job_error" not in logs


def _chain(first: Job, everything: list[Job]) -> list[Job]:
    chain, by_parent = [first], {j.retry_of_id: j for j in everything if j.retry_of_id}
    while chain[-1].id in by_parent:
        chain.append(by_parent[chain[-1].id])
    return chain


def test_a_result_journaled_before_a_kill_9_is_recorded_by_the_next_executor(
    app: Flask,
    db_url: str,
    tmp_path: Path,
    private_pg: PrivatePostgres,  # noqa: F811
) -> None:
    side, state = tmp_path / "ran.txt", tmp_path / "state"
    rt = shell_rt(_once_script(side, "sleep 1; echo done"))
    [only] = schedule(rt)
    env = {**FAST, "MULTIFLEXI_LOST_AFTER": "30", "MULTIFLEXI_STATE_DIR": str(state)}
    first = start_daemon(db_url, tmp_path, log_name="executor1", **env)
    try:
        wait_for(side.exists, 60, "the job running")
        private_pg.stop()  # the job ends while the database is away
        wait_for(lambda: _journaled(state), 60, "the finish journaled")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    private_pg.start()
    second = start_daemon(
        db_url, tmp_path, log_name="executor2", **FAST, MULTIFLEXI_STATE_DIR=str(state)
    )
    try:
        wait_for(lambda: _settled() and bool(_all_jobs()), 60, "the job recorded", every=0.2)
    finally:
        stop(second)
    assert side.read_text().split() == [str(only)]  # ran once, before the kill
    assert job(only).status == "succeeded" and output_of(only) == b"done\n"
    assert len(_all_jobs() or []) == 1  # no retry: it was never judged lost
    assert "journal_replayed" in log_text(tmp_path, "executor2")
    assert [p for p in state.glob("journal-*") if p.stat().st_size] == []


def _journaled(state: Path) -> bool:
    return any(p.stat().st_size for p in state.glob("journal-*.jsonl")) if state.exists() else False


def test_private_postgres_is_not_the_shared_one(private_pg: PrivatePostgres) -> None:  # noqa: F811
    assert private_pg.port != 5432 and os.path.isdir(private_pg.data)
