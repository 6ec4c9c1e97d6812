"""Upstream's own generated Python client (multiflexi-client 1.1.0 from PyPI, unmodified, in a
venv of its own) against our server on loopback: every read operation it offers, and creating
a job the way it creates one."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog, Job, JobStatus
from tests.api_helpers import make_scene
from tests.api_live import serving
from tests.factories import PASSWORD, make_job, reread
from tests.services import need

CLIENT = "multiflexi-client==1.1.0"
SCRIPT = Path(__file__).with_name("upstream_client_script.py")
CACHE = Path(os.environ.get("MULTIFLEXI_TEST_CACHE", Path.home() / ".cache" / "multiflexi-test"))


@pytest.fixture(scope="session")
def client_python() -> Iterator[Path]:
    """The venv's python, created once per machine (a lock keeps parallel runs apart)."""
    venv = CACHE / "multiflexi-client-1.1.0"
    python = venv / "bin" / "python"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "multiflexi-client.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _works(python):
            _build(venv)
    yield python


def _works(python: Path) -> bool:
    if not python.exists():
        return False
    probe = "import multiflexi_client; assert multiflexi_client.__version__ == '1.1.0'"
    return subprocess.run([python, "-c", probe], capture_output=True, check=False).returncode == 0


def _build(venv: Path) -> None:
    """Build beside the final place and rename: a half-built venv is never taken as done."""
    partial = venv.with_name(venv.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", partial], check=True, capture_output=True)
    pip = [partial / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run([*pip, CLIENT], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        need(False, f"PyPI (pip install {CLIENT}: {done.stderr.strip()[-300:]})")
    partial.rename(venv)
    # The venv's scripts name the partial path; only `bin/python` (a symlink) is used here.


def test_upstream_client_reads_and_creates_jobs(app: Flask, client_python: Path) -> None:
    s = make_scene(app)
    job = make_job(s.rt_a, output="hello\n")
    foreign = make_job(s.rt_b)
    args = [s.a.id, s.rt_a.application_id, s.rt_a.id, job.id, foreign.id]
    with serving(app) as base:
        host = f"{base}/api/VitexSoftware/MultiFlexi/1.0.0"
        run = subprocess.run(
            [client_python, SCRIPT, host, "operator", PASSWORD, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=600,  # a hang guard only: nothing here waits on time
            check=False,
        )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["version"] == "1.1.0"
    assert out["ping"] is None  # the client types /ping as bodiless
    status = out["status"]
    assert (status["companies"], status["apps"], status["runtemplates"]) == (1, 1, 1)
    assert status["daemon"] == "stopped" and status["timestamp"]
    assert [a["name"] for a in out["apps"]] == ["tool"]
    assert out["app"]["executable"] == "/bin/echo" and "GREETING" in out["app"]["environment"]
    assert [c["id"] for c in out["companies"]] == [s.a.id]  # Beta is not the operator's
    assert out["company"]["name"] == "Alpha" and out["company"]["code"] == "alpha"
    assert [r["id"] for r in out["runtemplates"]] == [s.rt_a.id]
    assert out["runtemplate"]["name"] == "alpha-rt" and out["runtemplate"]["executor"] == "Native"
    assert [j["id"] for j in out["jobs"]] == [job.id]
    detail = out["job"]
    assert (detail["id"], detail["runtemplate_id"], detail["exitcode"]) == (job.id, s.rt_a.id, 0)
    assert detail["begin"] and detail["end"] and detail["command"] == "/bin/echo hello"
    assert out["foreign"] == 404 and out["wrong_password"] == 401

    created, from_rt = out["created"], out["created_from_runtemplate"]
    assert from_rt["status"] == 201
    reread()
    for made in (created, from_rt):
        row = db.session.get(Job, made["id"])
        assert row is not None and row.id not in {job.id, foreign.id}
        assert row.runtemplate_id == s.rt_a.id and row.status == JobStatus.SCHEDULED.value
        assert row.schedule_type == "adhoc-api" and row.launched_by_id == s.operator.id
    runs = db.session.scalars(select(AuditLog).where(AuditLog.action == "run")).all()
    assert {r.actor for r in runs} == {"operator (api basic)"} and len(runs) == 2
