"""SQLite: the CLI's writes wait for the lock that busy executors hold, never fail on it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import Job
from tests.executor_support import (
    ROOT,
    daemon_env,
    schedule,
    shell_rt,
    show_logs,
    start_daemon,
    stop,
    wait_for,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),  # CLI processes starting on a busy machine
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]
CLI = [sys.executable, "-m", "multiflexi_web.cli"]
TRIES = 9
BUSY = 15000  # jobs that keep two executors writing for the whole test


@pytest.fixture(autouse=True)
def _logs_on_failure(tmp_path: Path) -> Iterator[None]:
    yield
    show_logs(tmp_path)


def _finished(rt_id: int) -> int:
    db.session.rollback()
    done = (Job.runtemplate_id == rt_id) & (Job.status == "succeeded")
    return db.session.scalar(select(func.count()).where(done)) or 0


def _cli(db_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = daemon_env(db_url, tmp_path)
    return subprocess.run(
        [*CLI, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_cli_writes_succeed_while_two_executors_run_short_jobs(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    busy = shell_rt("echo $MULTIFLEXI_JOB_ID", overlap_policy="allow")
    schedule(busy, BUSY)
    target = shell_rt("true", overlap_policy="allow")
    executors = [start_daemon(db_url, tmp_path, log_name=f"executor{i}") for i in range(2)]
    try:
        wait_for(lambda: _finished(busy.id) >= 50, 60, "the executors busy with jobs")
        args = ("runtemplate", "schedule", str(target.id))
        with ThreadPoolExecutor(3) as pool:  # three at a time: more contention, less waiting
            runs = list(pool.map(lambda _: _cli(db_url, tmp_path, *args), range(TRIES)))
        failures = [r.stderr.strip()[-300:] for r in runs if r.returncode != 0]
        assert _finished(busy.id) < BUSY, "the executors ran out of work: nothing was contended"
        assert failures == []
    finally:
        for proc in executors:
            stop(proc, 60)
    db.session.rollback()
    count = select(func.count()).where(Job.runtemplate_id == target.id)
    assert db.session.scalar(count) == TRIES
