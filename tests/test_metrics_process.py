"""Metrics through real processes: an executor daemon's port, and the portal under gunicorn with
two workers answering with the same figures."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask

from multiflexi_web.models import JobStatus
from tests.executor_support import (
    ROOT,
    daemon_env,
    job,
    log_text,
    schedule,
    shell_rt,
    show_logs,
    start_daemon,
    stop,
    wait_for,
)
from tests.factories import make_company, make_job, make_runtemplate
from tests.test_metrics import Samples, parse, value

pytestmark = pytest.mark.slow
TOKEN = "daemon-metrics-token"


@pytest.fixture(autouse=True)
def _logs_on_failure(tmp_path: Path) -> Iterator[None]:
    yield
    show_logs(tmp_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_executor_metrics_port(app: Flask, db_url: str, tmp_path: Path) -> None:
    rt = shell_rt("printf 'twelve bytes'")
    [job_id] = schedule(rt)
    port = free_port()
    proc = start_daemon(
        db_url,
        tmp_path,
        MULTIFLEXI_EXECUTOR_METRICS_PORT=str(port),
        MULTIFLEXI_METRICS_TOKEN=TOKEN,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    app_id = str(rt.application_id)
    seen: list[Samples] = []

    def finished_counted() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"executor exited with {proc.returncode}")
        try:
            status, body = get(url, TOKEN)
        except OSError:
            return False  # not listening yet
        seen.append(parse(body))
        done = value(
            seen[-1], "multiflexi_executor_jobs_finished_total", app=app_id, status="succeeded"
        )
        return status == 200 and done == 1

    try:
        wait_for(finished_counted, 60, "the executor's metrics to count the finished job")
        samples = seen[-1]
        # Counted when the job ended on its slot; the finisher records it a moment later.
        done = JobStatus.SUCCEEDED.value
        wait_for(lambda: job(job_id).status == done, 60, "the finish to be recorded")
        assert value(samples, "multiflexi_executor_jobs_claimed_total") == 1
        assert value(samples, "multiflexi_job_duration_seconds_count", app=app_id) == 1
        assert value(samples, "multiflexi_job_start_lag_seconds_count") == 1
        stored = value(samples, "multiflexi_executor_output_stored_bytes_total", stream="stdout")
        assert stored == len(b"twelve bytes")
        claims = value(samples, "multiflexi_executor_claim_seconds_count")
        assert claims is not None and claims >= 1
        rss = value(samples, "multiflexi_daemon_rss_bytes")
        assert rss is not None and rss > 10 * 1024 * 1024
        age = value(samples, "multiflexi_daemon_heartbeat_age_seconds")
        assert age is not None and age >= 0
        kinds = [dict(k[1]) for k in samples if k[0] == "multiflexi_daemon_info"]
        assert len(kinds) == 1 and kinds[0]["kind"] == "executor"
        # The token guards the daemon's port as it does the portal's /metrics.
        status, body = get(url)
        assert status == 401 and "multiflexi_" not in body
        assert get(url, "wrong")[0] == 401
    finally:
        assert stop(proc) == 0


def test_portal_under_gunicorn_two_workers(app: Flask, db_url: str, tmp_path: Path) -> None:
    company = make_company()
    rt = make_runtemplate(company=company)
    for status in ("scheduled", "scheduled", "running", "succeeded"):
        make_job(rt, status=status)
    port = free_port()
    access = tmp_path / "access.log"
    gunicorn = Path(sys.executable).parent / "gunicorn"
    cmd = [str(gunicorn), "-w", "2", "-b", f"127.0.0.1:{port}", "--access-logfile", str(access)]
    cmd += ["--access-logformat", "%(p)s %(U)s %(s)s", "app:app"]
    log = open(tmp_path / "gunicorn.log", "ab")  # noqa: SIM115 - closed after the process
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=daemon_env(db_url, tmp_path, MULTIFLEXI_METRICS_TOKEN=TOKEN),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/metrics"

    def answering() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}")
        try:
            return get(url, TOKEN)[0] == 200
        except OSError:
            return False

    def pids() -> set[str]:
        lines = access.read_text().splitlines() if access.exists() else []
        return {line.split()[0] for line in lines if " /metrics 200" in line}

    figures: list[dict[tuple[str, frozenset[tuple[str, str]]], float]] = []

    def both_workers_answered() -> bool:
        with ThreadPoolExecutor(8) as pool:
            bodies = list(pool.map(lambda _: get(url, TOKEN), range(16)))
        for status, body in bodies:
            assert status == 200
            # Ages move with the clock; every count must be the same whoever answered.
            figures.append({k: v for k, v in parse(body).items() if "age_seconds" not in k[0]})
        return len(pids()) >= 2

    try:
        wait_for(answering, 60, "gunicorn to answer")
        wait_for(both_workers_answered, 120, "both gunicorn workers to answer a scrape")
        assert all(f == figures[0] for f in figures)
        first = figures[0]
        company_id = str(company.id)
        assert value(first, "multiflexi_jobs", status="scheduled", company=company_id) == 2
        assert value(first, "multiflexi_jobs", status="running", company=company_id) == 1
        assert value(first, "multiflexi_queue_depth") == 2
        assert get(url)[0] == 401
    finally:
        stop(proc)
        log.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_taken_metrics_port_leaves_the_executor_running(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    rt = shell_rt("true")
    [job_id] = schedule(rt)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start_daemon(db_url, tmp_path, MULTIFLEXI_EXECUTOR_METRICS_PORT=str(port))
        try:
            wait_for(lambda: job(job_id).status == JobStatus.SUCCEEDED.value, 60, "the job to run")
            assert "action=metrics_failed" in log_text(tmp_path)
        finally:
            assert stop(proc) == 0
