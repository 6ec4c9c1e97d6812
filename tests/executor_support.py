"""Helpers for executor tests: shell applications, in-process drains, real daemon processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from daemons.runtime import Runtime
from multiflexi_web.db.engine import begin_write
from multiflexi_web.extensions import db
from multiflexi_web.models import Company, Job, JobOutput, RunTemplate
from multiflexi_web.runner.pool import Executor
from multiflexi_web.services.jobs import transitions as jobs
from tests.conftest import LOOPBACK_PEERS, TEST_KEY
from tests.factories import make_app, make_company

ROOT = Path(__file__).resolve().parent.parent
EXECUTOR_BIN = [sys.executable, "-m", "daemons.executor"]


def shell_rt(
    script: str,
    company: Company | None = None,
    *,
    fields: list[dict[str, Any]] | None = None,
    artifacts: list[dict[str, Any]] | None = None,
    **rt_values: Any,
) -> RunTemplate:
    """A RunTemplate running `/bin/sh -c <script>` (the script is one argv word)."""
    begin_write()  # a daemon may be writing: never upgrade this test's read snapshot
    company = company or make_company()
    app = make_app(executable="/bin/sh", fields=fields, artifacts=artifacts)
    begin_write()  # again: the factories commit, and reading their rows back would begin a read
    app.cmdparams = "-c " + _quote(script)
    rt = RunTemplate(company_id=company.id, application_id=app.id, name=f"rt-{app.name}")
    for key, value in rt_values.items():
        setattr(rt, key, value)
    db.session.add(rt)
    db.session.commit()
    return rt


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def schedule(rt: RunTemplate, n: int = 1, **kwargs: Any) -> list[int]:
    """n jobs of rt in one INSERT (jobs.enqueue_many), committed."""
    begin_write()  # a daemon may be writing: never upgrade this test's read snapshot
    ids = [j.id for j in jobs.enqueue_many(rt, n, schedule_type="adhoc-cli", **kwargs)]
    db.session.commit()
    return ids


def cancel(job_id: int) -> str:
    """Cancel as the CLI does while a daemon writes: a fresh write transaction (BEGIN IMMEDIATE
    on SQLite). Upgrading the test's read snapshot to a write fails at once with "database is
    locked" when the daemon committed since that read, whatever the busy timeout."""
    db.session.rollback()
    begin_write()
    answer = jobs.cancel(job_id)
    db.session.commit()
    return answer


def drain(app: Flask) -> Executor:
    """Run an executor in this process until nothing is left to do."""
    db.session.commit()  # end this test's snapshot: the executor's writes must be seen after
    rt = Runtime("executor", app)
    rt.register()
    ex = Executor(rt, drain=True)
    ex.serve()
    rt.unregister()
    db.session.rollback()
    return ex


def job(job_id: int) -> Job:
    db.session.rollback()  # a fresh snapshot (SQLite keeps the old one for an open read)
    found = db.session.get(Job, job_id)
    assert found is not None
    return found


def output_of(job_id: int, stream: str = "stdout") -> bytes:
    db.session.rollback()  # a fresh snapshot
    rows = db.session.scalars(
        select(JobOutput.data)
        .where(JobOutput.job_id == job_id, JobOutput.stream == stream)
        .order_by(JobOutput.seq)
    )
    return b"".join(bytes(r) for r in rows)


def daemon_env(db_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MULTIFLEXI_", "DATABASE_"))}
    env.update(
        DATABASE_URL=db_url,
        ENCRYPTION_MASTER_KEY=TEST_KEY,
        SECRET_KEY="test-secret",
        MULTIFLEXI_TMP=str(tmp_path / "work"),
        MULTIFLEXI_ARTIFACT_DIR=str(tmp_path / "artifacts"),
        MULTIFLEXI_ENV_FILE="/nonexistent",
        MULTIFLEXI_LOCAL_ENV="/nonexistent",
        MULTIFLEXI_MAX_PARALLEL="2",
        MULTIFLEXI_JOB_USER="daemon",  # tests/test_isolation.py runs jobs as the job user
    )
    env.update(LOOPBACK_PEERS)  # the action peers listen on loopback
    env.update(extra)
    return env


def start_daemon(
    db_url: str, tmp_path: Path, *args: str, log_name: str = "executor", **extra: str
) -> subprocess.Popen[bytes]:
    log = open(tmp_path / f"{log_name}.log", "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        [*EXECUTOR_BIN, *args],
        cwd=ROOT,
        env=daemon_env(db_url, tmp_path, **extra),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


class Gate:
    """A file a job waits for, so a test decides when the job may go on (not a sleep that a
    busy machine can outlast). Its folder is readable by the job user, who runs the job."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="multiflexi-gate-"))
        self.dir.chmod(0o755)
        self.path = self.dir / "open"

    def wait_script(self) -> str:
        """Shell that returns once the gate is open."""
        return f"while [ ! -e {self.path} ]; do sleep 0.02; done"

    def open(self) -> None:
        self.path.touch(mode=0o644)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def process_state(stat_path: str) -> str | None:
    """The state letter of /proc/<pid>[/task/<tid>]/stat (R, S, T, Z...); None when gone."""
    try:
        return Path(stat_path).read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def all_threads_stopped(pid: int) -> bool:
    """Whether every thread of the process is stopped: SIGSTOP reaches threads one by one, and
    one still running may yet reap a child or record a job."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    return all(process_state(f"/proc/{pid}/task/{tid}/stat") == "T" for tid in tids)


def wait_for(predicate: Any, timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def show_logs(tmp_path: Path) -> None:
    """Print the daemons' logs (pytest shows them when a test fails)."""
    for log in sorted(tmp_path.glob("*.log")):
        print(f"--- {log.name}\n{log.read_text(errors='replace')[-6000:]}")


def log_text(tmp_path: Path, name: str = "executor") -> str:
    return (tmp_path / f"{name}.log").read_text(errors="replace")
