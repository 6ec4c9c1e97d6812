"""The guard witnesses job exits: a job that ended as its executor died, before its exit entry
was journaled, is recorded from the status the guard read, not reaped as lost and run again."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from multiflexi_web.executors.base import AppInfo, JobSpec, RunResult
from multiflexi_web.executors.native import NativeExecutor
from multiflexi_web.extensions import db
from multiflexi_web.models import Job
from multiflexi_web.runner import guard as guard_module
from multiflexi_web.runner import journal
from multiflexi_web.runner.guard import Guard, exits_path
from multiflexi_web.runner.journal import Journal
from multiflexi_web.runner.replay import replay_orphans
from multiflexi_web.services.jobs import transitions as jobs
from tests.executor_support import (
    Gate,
    all_threads_stopped,
    job,
    log_text,
    process_state,
    schedule,
    shell_rt,
    start_daemon,
    stop,
    wait_for,
)
from tests.factories import make_worker

DEADLINE = 60.0  # generous: every wait below ends on an event


def _state(pid: int) -> str | None:
    return process_state(f"/proc/{pid}/stat")


@pytest.fixture
def journaled(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "state", 1 << 20)
    yield j
    with contextlib.suppress(OSError):
        os.close(j.fd)


def _job(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, process_group=0)


def test_a_dead_executors_guard_writes_the_exits_it_saw_and_only_those(
    journaled: Journal,
) -> None:
    ok, failed = _job(["true"]), _job(["sh", "-c", "exit 3"])
    running, journaled_one = _job(["sleep", "600"]), _job(["true"])
    g = Guard(journaled.path, journaled.fd)
    try:
        for pid, job_id in ((ok.pid, 41), (failed.pid, 42), (running.pid, 43)):
            g.watch(pid, job_id)
        g.watch(journaled_one.pid, 44)
        for proc in (ok, failed, journaled_one):
            wait_for(lambda p=proc: _state(p.pid) == "Z", DEADLINE, "the job ended, unreaped")
        journaled_one.wait()  # its exit entry was written: the executor reaps, then forgets
        g.forget(journaled_one.pid)
        os.close(journaled.fd)  # the executor's end (kill -9): only the guard holds the lock
        assert journal.orphans(journaled.path.parent, None) == []  # not replayable yet
    finally:
        os.close(g.fd)  # the pipe's end: what a dead executor leaves
        assert g.proc.wait(DEADLINE) == 0
        for proc in (ok, failed, running):
            proc.wait()
    assert running.returncode == -9  # killed, and not a witnessed exit
    lines = set(exits_path(journaled.path).read_text().splitlines())
    # A log: 44, reaped after its exit entry, is there with its `-` if the guard saw it end.
    assert lines - {"+44 0", "-44"} == {"+41 0", "+42 3"} and ("+44 0" in lines) == ("-44" in lines)
    [orphan] = journal.orphans(journaled.path.parent, None)  # the guard let go of it
    assert orphan.exits() == {41: 0, 42: 3}
    orphan.release()


def test_an_exit_is_on_record_even_if_the_guard_is_killed_with_its_executor(
    journaled: Journal,
) -> None:
    """systemd's KillMode=mixed SIGKILLs what is left of the unit once the executor died, the
    guard included, and an OOM kill may take both: the guard logs each status the moment it
    reads it, so nothing is left for its last moments."""
    ended = _job(["sh", "-c", "exit 5"])
    g = Guard(journaled.path, journaled.fd)
    try:
        g.watch(ended.pid, 51)
        wait_for(
            lambda: (
                exits_path(journaled.path).exists()
                and exits_path(journaled.path).read_text() == "+51 5\n"
            ),
            DEADLINE,
            "the guard logging the exit",
        )
        g.proc.kill()  # with the executor: no chance to write anything more
        g.proc.wait(DEADLINE)
        os.close(journaled.fd)
    finally:
        os.close(g.fd)
        ended.wait()
    [orphan] = journal.orphans(journaled.path.parent, None)
    assert orphan.exits() == {51: 5}
    orphan.release()


def test_a_clean_stop_writes_no_exits_file(journaled: Journal) -> None:
    g = Guard(journaled.path, journaled.fd)
    proc = _job(["true"])
    g.watch(proc.pid, 7)
    wait_for(lambda: _state(proc.pid) == "Z", DEADLINE, "the job ended")
    proc.wait()
    g.forget(proc.pid)
    assert g.close() == 0
    assert not exits_path(journaled.path).exists()


def test_witnessed_jobs_are_recorded_at_replay_and_the_journal_wins(
    app: Flask, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rt = shell_rt("true", overlap_policy="allow")
    ids = schedule(rt, 3)
    claimed = jobs.claim(make_worker().id, 3)
    assert sorted(c.id for c in claimed) == sorted(ids)
    done, failed, both = sorted(ids)
    folder = tmp_path / "state"
    j = Journal(folder, 1 << 20)
    entry = {
        "job": both, "worker": 1, "rt": rt.id, "started_at": job(both).started_at.isoformat(),
        "status": "failed", "exit": 9, "reason": "exit code 9", "pid": None, "command": [],
        "env": [], "counters": {}, "output": [], "artifacts": [], "exited_only": True,
    }  # fmt: skip
    j.append([entry])
    exits_path(j.path).write_text(f"{done} 0\n{failed} -9\n{both} 0\n")
    os.close(j.fd)  # its executor died

    assert replay_orphans(folder, None, lambda fn: fn()) == 3
    assert job(done).status == "succeeded"
    assert (job(failed).status, job(failed).exit_code) == ("failed", 137)
    assert (job(both).status, job(both).exit_code) == ("failed", 9)  # the journal's entry
    assert f"action=exit_witnessed job={done} exit=0 output=live_only" in caplog.text
    assert not exits_path(j.path).exists() and not j.path.exists()


def test_native_journals_the_exit_before_it_reaps_the_process(tmp_path: Path) -> None:
    """Until ended() returns the process is a zombie: its status readable by the guard."""
    seen: list[tuple[str | None, int | None]] = []

    class IO:
        pid: int | None = None

        def started(self, pid: int | None = None, container_id: str | None = None) -> None:
            self.pid = pid

        def output(self, stream: str, data: bytes) -> None:
            pass

        def should_stop(self) -> bool:
            return False

        def ended(self, result: RunResult) -> None:
            assert self.pid is not None
            seen.append((_state(self.pid), guard_module.exit_status(self.pid)))

    io = IO()
    spec = JobSpec(
        job_id=1,
        argv=("/bin/sh", "-c", "exit 5"),
        env={"PATH": "/usr/bin:/bin"},
        workdir=tmp_path,
        app=AppInfo("t", "/bin/sh", None, None),
        timeout=None,
        kill_grace=1.0,
    )
    result = NativeExecutor().run(spec, io)
    assert result.exit_code == 5
    assert seen == [("Z", 5)]
    assert io.pid is not None and _state(io.pid) is None  # reaped after


def test_the_guard_reads_a_signalled_jobs_status() -> None:
    proc = _job(["sleep", "600"])
    proc.kill()
    wait_for(lambda: _state(proc.pid) == "Z", DEADLINE, "the job killed, unreaped")
    assert guard_module.exit_status(proc.pid) == -9
    proc.wait()
    assert guard_module.exit_status(proc.pid) is None


# LOST_AFTER long enough that no loaded host's commit stall lets the lease fence stop a job
# (nothing here waits for a dead executor to be judged: replay needs no LOST_AFTER).
FAST = {"MULTIFLEXI_LOST_AFTER": "30", "MULTIFLEXI_KILL_GRACE": "1", "MULTIFLEXI_STOP_GRACE": "1"}


def _witnessed(base: Path, job_id: int) -> bool:
    return any(f"+{job_id} 0\n" in found.read_text() for found in base.rglob("journal-*.exits"))


@pytest.mark.slow
def test_a_job_ending_while_its_executor_cannot_journal_it_is_recorded_not_rerun(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    """The executor is frozen (SIGSTOP) before the job ends, so it can neither reap nor
    journal it, then killed: its guard, still running, read the status; the next executor
    records the job from it. Before, the job was reaped as lost and run again (max_attempts=2)."""
    gate = Gate()
    runs = gate.dir / "runs"  # a folder the job user reaches
    runs.touch()
    runs.chmod(0o666)  # the job user appends to it
    script = f"echo $$ >> {runs}; {gate.wait_script()}; exit 0"
    rt = shell_rt(script, max_attempts=2, retry_min_gap=0)
    [job_id] = schedule(rt)
    first = start_daemon(db_url, tmp_path, **FAST, log_name="first")
    try:
        wait_for(lambda: runs.read_text().strip() != "", DEADLINE, "the job running")
        pid = int(runs.read_text().split()[0])
        found = re.search(r"guard_started pid=(\d+)", log_text(tmp_path, "first"))
        assert found is not None
        guard_pid = int(found[1])
        first.send_signal(signal.SIGSTOP)  # frozen: it cannot notice the exit
        # Every thread stopped before the job may end: on a busy machine a job thread still
        # running could reap the job first, and no zombie would ever be there to witness.
        wait_for(lambda: all_threads_stopped(first.pid), DEADLINE, "the executor frozen")
        gate.open()
        wait_for(lambda: _state(pid) == "Z", DEADLINE, "the job ended, unreaped")
        # The guard read the status (it appends it to the .exits file as it reads it). Killed
        # before that, the zombie goes to init, which may reap it before the guard's last
        # sweep (docs/architecture.md says so): on a busy machine that is a real race.
        wait_for(lambda: _witnessed(tmp_path, job_id), DEADLINE, "the guard read the exit")
        first.kill()
        first.wait(DEADLINE)
        wait_for(lambda: _state(guard_pid) in (None, "Z"), DEADLINE, "the guard done")
        assert "action=exits_witnessed jobs=1" in log_text(tmp_path, "first")
        second = start_daemon(db_url, tmp_path, **FAST, log_name="second")
        try:
            wait_for(lambda: job(job_id).status == "succeeded", DEADLINE, "the job recorded")
        finally:
            stop(second)
        assert runs.read_text().split() == [str(pid)]  # ran once
    finally:
        stop(first)
        gate.close()
    assert db.session.scalars(select(Job).where(Job.retry_of_id == job_id)).all() == []
    assert f"action=exit_witnessed job={job_id} exit=0" in log_text(tmp_path, "second")
