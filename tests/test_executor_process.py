"""The executor as a real process: signals, kill -9, cancel, timeouts, memory ceiling."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Job
from tests.executor_support import (
    Gate,
    cancel,
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

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _logs_on_failure(tmp_path: Path) -> Iterator[None]:
    yield
    show_logs(tmp_path)


SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
PG_ONLY = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
# An executor whose jobs must not be stopped by its lease fence (LOST_AFTER x 0.75 without a
# committed beat): 30 s, which no loaded host's commit stall reaches. Only an executor that
# must judge another one dead soon (a rescuer) runs with the short LOST_AFTER.
STEADY = {"MULTIFLEXI_LOST_AFTER": "30", "MULTIFLEXI_KILL_GRACE": "1", "MULTIFLEXI_STOP_GRACE": "1"}
FAST = {**STEADY, "MULTIFLEXI_LOST_AFTER": "2"}
# Deadlines only: a busy machine may be slow, so tests wait this long for an outcome and assert
# the outcome (which status, which reason), never how long it took.
DEADLINE = 60


def _status(job_id: int) -> str:
    return job(job_id).status


def _dead(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_sigterm_lets_short_jobs_finish_and_stops_long_ones(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    gate = Gate()  # the short job runs until the SIGTERM has been sent, then ends at once
    short = shell_rt(f"{gate.wait_script()}; echo done")
    long = shell_rt("echo started; sleep 600")  # never ends by itself within the test
    [short_id], [long_id] = schedule(short), schedule(long)
    proc = start_daemon(db_url, tmp_path, **{**STEADY, "MULTIFLEXI_STOP_GRACE": "5"})
    try:
        # A pid is recorded once the job's process runs: a job merely claimed would be given
        # back to the queue by the stop, not stopped (test_sigterm_gives_back_...).
        wait_for(
            lambda: job(short_id).pid is not None and job(long_id).pid is not None,
            DEADLINE,
            "both jobs' processes running",
        )
        proc.send_signal(signal.SIGTERM)
        gate.open()
        assert proc.wait(DEADLINE) == 0  # it did not wait for the long job (below: its reason)
    finally:
        stop(proc)
        gate.close()
    assert (_status(short_id), output_of(short_id)) == ("succeeded", b"done\n")
    stopped = job(long_id)
    assert stopped.status == "failed"
    assert "shutting down (stop grace of 5s passed)" in (stopped.status_reason or "")
    assert output_of(long_id) == b"started\n"
    assert "action=stopped" in log_text(tmp_path)


def _counts(ids: list[int]) -> dict[str, int]:
    db.session.rollback()
    rows = db.session.execute(select(Job.status).where(Job.id.in_(ids))).scalars()
    out: dict[str, int] = {}
    for status in rows:
        out[status] = out.get(status, 0) + 1
    return out


def test_sigterm_gives_back_the_jobs_claimed_ahead(app: Flask, db_url: str, tmp_path: Path) -> None:
    """Short jobs get their successors claimed ahead; a stop returns those to the queue (not
    lost, not run twice), and the next executor runs them."""
    ids = schedule(shell_rt("echo $MULTIFLEXI_JOB_ID", overlap_policy="allow"), 400)
    proc = start_daemon(db_url, tmp_path, **STEADY)
    try:
        wait_for(lambda: _counts(ids).get("succeeded", 0) >= 40, DEADLINE, "40 jobs done")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE) == 0
    finally:
        stop(proc)
    left = _counts(ids)
    assert set(left) <= {"succeeded", "scheduled"}, left
    assert left.get("scheduled"), f"the stop came too late to test anything: {left}"
    db.session.rollback()
    assert not db.session.scalar(select(Job.worker_id).where(Job.status == "scheduled").limit(1))
    rest = start_daemon(db_url, tmp_path, "--drain", **STEADY)
    assert rest.wait(2 * DEADLINE) == 0
    assert _counts(ids) == {"succeeded": 400}
    for job_id in ids[::50]:
        assert output_of(job_id) == f"{job_id}\n".encode()


@SQLITE_ONLY
def test_long_jobs_are_not_claimed_ahead(app: Flask, db_url: str, tmp_path: Path) -> None:
    """A job claimed ahead waits for a slot; behind long jobs it must stay in the queue."""
    ids = schedule(shell_rt("sleep 0.4", overlap_policy="allow"), 6)
    proc = start_daemon(db_url, tmp_path, MULTIFLEXI_MAX_PARALLEL="1")
    try:
        wait_for(lambda: _counts(ids).get("succeeded", 0) >= 2, DEADLINE, "two jobs done")
        for _ in range(10):  # sampled while the daemon knows its jobs are long
            assert _counts(ids).get("running", 0) <= 1, _counts(ids)
            time.sleep(0.1)
    finally:
        stop(proc)


@SQLITE_ONLY
def test_second_sigterm_stops_at_once(app: Flask, db_url: str, tmp_path: Path) -> None:
    rt = shell_rt("trap '' TERM; echo up; sleep 600")
    [job_id] = schedule(rt)
    grace = {"MULTIFLEXI_STOP_GRACE": "600", "MULTIFLEXI_KILL_GRACE": "600"}
    proc = start_daemon(db_url, tmp_path, **grace)
    try:
        wait_for(lambda: output_of(job_id) == b"up\n", DEADLINE, "the job's first output")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "action=stopping" in log_text(tmp_path), DEADLINE, "the first SIGTERM")
        assert proc.poll() is None  # still waiting for the job (grace of 600 s)
        proc.send_signal(signal.SIGTERM)
        proc.wait(DEADLINE)  # far below the graces: only the second SIGTERM ends it in time
    finally:
        stop(proc)
    stopped = job(job_id)
    assert stopped.status == "failed" and stopped.exit_code == 137
    assert "second SIGTERM" in (stopped.status_reason or "")


def test_kill_9_leaves_the_job_lost_and_a_retry_planned(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    rt = shell_rt("sleep 60", max_attempts=2, retry_min_gap=3600)
    [job_id] = schedule(rt)
    first = start_daemon(db_url, tmp_path, **STEADY, log_name="first")
    try:
        wait_for(lambda: job(job_id).pid is not None, DEADLINE, "the job's pid recorded")
        pid = job(job_id).pid
        assert pid is not None
        first.kill()
        first.wait(DEADLINE)
    finally:
        stop(first)
    wait_for(lambda: _dead(pid), DEADLINE, "the job killed by the dead executor's guard")
    assert _status(job_id) == "running"
    second = start_daemon(db_url, tmp_path, **FAST, log_name="second")
    try:
        wait_for(lambda: _status(job_id) == "lost", DEADLINE, "the job marked lost")
    finally:
        stop(second)
    assert "stopped heartbeating" in (job(job_id).status_reason or "")
    retry = db.session.scalars(select(Job).where(Job.retry_of_id == job_id)).one()
    assert (retry.status, retry.attempt, retry.schedule_type) == ("scheduled", 2, "retry")


@PG_ONLY
def test_cancel_and_timeout_kill_the_process_group(app: Flask, db_url: str, tmp_path: Path) -> None:
    script = "sleep 60 & echo $!; sleep 60"
    cancelled_rt, timed_rt = shell_rt(script), shell_rt(script, timeout=1)
    [cancel_id], [timeout_id] = schedule(cancelled_rt), schedule(timed_rt)
    proc = start_daemon(db_url, tmp_path, **STEADY)
    try:
        wait_for(lambda: output_of(cancel_id) != b"", DEADLINE, "the job's output")
        assert cancel(cancel_id) == "cancel requested"
        wait_for(lambda: _status(cancel_id) == "cancelled", DEADLINE, "the job cancelled")
        wait_for(lambda: _status(timeout_id) == "timed_out", DEADLINE, "the job timed out")
    finally:
        stop(proc)
    for job_id in (cancel_id, timeout_id):
        grandchild = int(output_of(job_id).split()[0])
        wait_for(lambda g=grandchild: _dead(g), DEADLINE, f"grandchild {grandchild} gone")
    assert job(cancel_id).status_reason == "cancelled on request while running"


@SQLITE_ONLY
def test_memory_ceiling_stops_claiming_and_exits_non_zero(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    [job_id] = schedule(shell_rt("true"))
    proc = start_daemon(db_url, tmp_path, MULTIFLEXI_MEMORY_LIMIT_MB="1")
    assert proc.wait(DEADLINE) == 3
    assert "action=memory_limit" in log_text(tmp_path)
    assert _status(job_id) == "scheduled"


@SQLITE_ONLY
def test_a_bad_setting_stops_the_daemon_with_a_message(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    proc = start_daemon(db_url, tmp_path, MULTIFLEXI_MAX_PARALLEL="many")
    assert proc.wait(DEADLINE) == 2
    assert "MULTIFLEXI_MAX_PARALLEL" in log_text(tmp_path)
