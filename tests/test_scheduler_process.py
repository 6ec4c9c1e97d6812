"""The scheduler as real processes: --once, SIGTERM, a bad setting, and 3 schedulers racing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from multiflexi_web.config import PROJECT_ROOT
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, RunTemplate, Worker, utcnow
from tests.conftest import TEST_KEY
from tests.factories import make_app, make_company

pytestmark = pytest.mark.slow
BIN = [sys.executable, "-m", "daemons.scheduler"]


def env_for(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MULTIFLEXI_", "DATABASE_"))}
    env.update(
        DATABASE_URL=db_url,
        ENCRYPTION_MASTER_KEY=TEST_KEY,
        SECRET_KEY="test-secret",
        MULTIFLEXI_ENV_FILE="/nonexistent",
        MULTIFLEXI_LOCAL_ENV="/nonexistent",
    )
    env.update(extra)
    return env


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(db_url: str, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"scheduler{len(procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [*BIN, *args], cwd=PROJECT_ROOT, env=env_for(db_url, **extra), stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for log in sorted(tmp_path.glob("scheduler*.log")):
        print(f"--- {log.name}\n{log.read_text()[-3000:]}")


def logs(tmp_path: Path) -> list[str]:
    return [p.read_text() for p in sorted(tmp_path.glob("scheduler*.log"))]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()  # a fresh snapshot each look
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def templates(n: int, **kw: object) -> list[int]:
    company, app = make_company(), make_app()
    rows = [
        RunTemplate(company_id=company.id, application_id=app.id, name=f"rt{i}", **kw)
        for i in range(n)
    ]
    db.session.add_all(rows)
    db.session.commit()
    return [r.id for r in rows]


def job_count() -> int:
    return db.session.scalar(select(func.count(Job.id))) or 0


def test_once_runs_one_tick_and_exits(app: Flask, db_url: str, spawn: Callable[..., Any]) -> None:
    due = utcnow().replace(microsecond=0) - timedelta(seconds=1)
    [rt_id] = templates(1, interval="h", next_run_at=due)
    proc = spawn(db_url, "--once")
    assert proc.wait(60) == 0
    db.session.rollback()
    slots = db.session.scalars(select(Job.slot_at).where(Job.runtemplate_id == rt_id)).all()
    assert slots == [due]
    worker = db.session.scalars(select(Worker).where(Worker.kind == "scheduler")).one()
    assert worker.status == "stopped"


def test_sigterm_finishes_the_tick_and_exits(
    app: Flask, db_url: str, spawn: Callable[..., Any], tmp_path: Path
) -> None:
    proc = spawn(db_url, "--interval", "0.2")
    wait_for(lambda: db.session.scalar(select(Worker.status)) == "running", 30, "worker row")
    [rt_id] = templates(1, interval="i", next_run_at=utcnow())
    wait_for(lambda: job_count() == 1, 15, "the due slot's job")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0  # a deadline, not a measure: the outcome is asserted below
    db.session.rollback()
    assert db.session.scalar(select(Worker.status)) == "stopped"
    text = "".join(logs(tmp_path))
    assert "action=stopping signal=SIGTERM" in text and "action=stopped" in text
    assert db.session.get(RunTemplate, rt_id).next_run_at > utcnow() - timedelta(seconds=1)  # type: ignore[union-attr]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_bad_setting_stops_it_at_start_naming_the_key(
    app: Flask, db_url: str, spawn: Callable[..., Any], tmp_path: Path
) -> None:
    proc = spawn(db_url, MULTIFLEXI_TIMEZONE="Mars/Olympus")
    assert proc.wait(60) == 2
    assert "MULTIFLEXI_TIMEZONE" in "".join(logs(tmp_path))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_memory_ceiling_exits_non_zero_for_a_restart(
    app: Flask, db_url: str, spawn: Callable[..., Any], tmp_path: Path
) -> None:
    proc = spawn(db_url, "--interval", "0.2", MULTIFLEXI_MEMORY_LIMIT_MB="1")
    assert proc.wait(60) == 3
    assert "action=memory_limit limit_mb=1" in "".join(logs(tmp_path))


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_lost_database_connections_are_survived(
    app: Flask, db_url: str, spawn: Callable[..., Any]
) -> None:
    proc = spawn(db_url, "--interval", "0.2")
    wait_for(lambda: db.session.scalar(select(Worker.status)) == "running", 30, "worker row")
    db.session.rollback()
    db.session.execute(
        text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    )
    db.session.commit()
    templates(1, interval="i", next_run_at=utcnow())
    wait_for(lambda: job_count() == 1, 20, "a job after the connections were cut")
    assert proc.poll() is None


START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SPEED = 30.0  # one fake minute every 2 real seconds
FAKE_MINUTES = 4


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_three_schedulers_race_without_duplicates_or_gaps(
    app: Flask, db_url: str, spawn: Callable[..., Any], tmp_path: Path
) -> None:
    ids = templates(150, interval="i", misfire_policy="all", next_run_at=START)
    late = START + timedelta(seconds=30)
    ids += templates(150, interval="i", delay=30, misfire_policy="all", next_run_at=late)
    epoch = time.time() + 6  # the fake clock reaches START once all three are up
    clock = f"{START.isoformat()},{epoch},{SPEED}"
    procs = [
        # Small batches in one lane make each tick many short transactions, so the other two
        # schedulers, woken within 0.1 s, always join the race (SKIP LOCKED) for the same slot.
        spawn(
            db_url,
            "--interval",
            "0.1",
            "--batch",
            "10",
            "--lanes",
            "1",
            MULTIFLEXI_FAKE_CLOCK=clock,
        )
        for _ in range(3)
    ]
    time.sleep(max(0.0, epoch + FAKE_MINUTES * 60 / SPEED + 1 - time.time()))
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    assert [p.wait(30) for p in procs] == [0, 0, 0]
    db.session.rollback()
    rows = db.session.execute(select(Job.runtemplate_id, Job.slot_at)).all()
    assert len(rows) == len(set(rows))  # the unique index makes this hold; the next checks gaps
    by_rt: dict[int, list[datetime]] = {}
    for rt_id, slot in rows:
        by_rt.setdefault(rt_id, []).append(slot)
    for rt in db.session.scalars(select(RunTemplate).where(RunTemplate.id.in_(ids))):
        assert rt.next_run_at is not None and rt.next_run_at >= START + timedelta(minutes=3)
        expected, t = [], START + timedelta(seconds=rt.delay)
        while t < rt.next_run_at:
            expected.append(t)
            t += timedelta(minutes=1)
        assert sorted(by_rt.get(rt.id, [])) == expected, f"runtemplate {rt.id}"
    busy = [text for text in logs(tmp_path) if "action=tick templates=" in text]
    assert len(busy) >= 2, "at least two of the three schedulers wrote slots"
