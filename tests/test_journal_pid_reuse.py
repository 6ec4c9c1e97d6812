"""A restarted executor that gets its dead predecessor's pid replays its journal: restarted in
place (compose's `restart: unless-stopped` keeps the container, its hostname and its writable
layer, and the entrypoint `exec`s the daemon, so it is PID 1 every time) or after a reboot, it
used to open the dead executor's file as its own and never record the finishes it held; the
jobs stayed `running` until reaped as lost and retried: finished work ran a second time."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from flask import Flask

from multiflexi_web.models import JobStatus
from multiflexi_web.runner.journal import Journal
from multiflexi_web.runner.replay import replay_orphans
from multiflexi_web.runner.run import JobRun, RunSettings
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.transitions import Outcome
from tests.executor_support import job, schedule, shell_rt
from tests.factories import make_worker


def test_a_restarted_executor_with_the_dead_ones_pid_replays_its_journal(
    app: Flask, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    rt = shell_rt("true", overlap_policy="allow")
    [job_id] = schedule(rt, 1)
    dead_worker = make_worker()
    [claimed] = jobs.claim(dead_worker.id, 1)
    cfg = RunSettings(tmp_path, tmp_path / "art", 1 << 20, 1 << 20, 60, 1.0, False, 1.0)
    run = JobRun(claimed, cfg, threading.Event())
    run.outcome = Outcome(JobStatus.SUCCEEDED, 0)  # the job's work is done

    # The executor journals the finish, then is killed -9 before the database took it.
    dead = Journal(state, 1 << 20)
    dead.append([run.journal_entry(dead_worker.id)])
    os.close(dead.fd)  # its process died: the lock is gone, the file stays

    # Restarted in the same container: same hostname, same pid, a journal of its own.
    restarted = Journal(state, 1 << 20)
    assert restarted.path != dead.path and f"-{os.getpid()}-" in restarted.path.name

    def unit(fn: Callable[[], None]) -> None:
        fn()

    try:
        # What Executor.serve() does before its first claim.
        replay_orphans(state, restarted.path, unit)
        # The produced result must be recorded (not left to be reaped as lost and run again).
        assert job(job_id).status == JobStatus.SUCCEEDED.value
        assert not dead.path.exists()  # replayed, then removed
    finally:
        restarted.close()
