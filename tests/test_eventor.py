"""The real eventor process: two of them make each event's jobs once; SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from multiflexi_web.config import PROJECT_ROOT
from multiflexi_web.db.engine import write_session
from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventStatus, Job, Worker
from multiflexi_web.services.events.catalog import RuleSpec, create_rule, create_source
from tests.conftest import TEST_KEY
from tests.factories import make_company, make_runtemplate

pytestmark = pytest.mark.slow


def eventor_env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "MULTIFLEXI_"))}
    env.update(
        DATABASE_URL=db_url,
        ENCRYPTION_MASTER_KEY=TEST_KEY,
        SECRET_KEY="test-secret",
        MULTIFLEXI_ENV_FILE="/nonexistent/multiflexi.env",
        MULTIFLEXI_LOCAL_ENV="/nonexistent/.env",
        MULTIFLEXI_STOP_GRACE="5",
    )
    env.update(extra)
    return env


def spawn_eventor(db_url: str, log: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "daemons.eventor", *args],
            cwd=PROJECT_ROOT,
            env=eventor_env(db_url, **env),
            stdout=fh,
            stderr=fh,
        )


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()  # a fresh snapshot each look
        if check():
            # No read transaction left open: on SQLite the caller's next write would have to
            # upgrade it, which fails at once ("database is locked") if a daemon wrote since.
            db.session.rollback()
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"eventor ignored SIGTERM:\n{log.read_text()}") from None
    assert code == 0, log.read_text()


def _new_events() -> int:
    return (
        db.session.scalar(select(func.count(Event.id)).where(Event.status == EventStatus.NEW.value))
        or 0
    )


def test_two_eventors_never_make_a_job_twice(app: Flask, db_url: str, tmp_path: Path) -> None:
    source = create_source("burst", "webhook")
    for priority in (1, 2):
        rt = make_runtemplate(make_company())
        create_rule(
            source, RuleSpec(rt.id, priority=priority, env_mapping={"N": "$.n"}, admin=True)
        )
    db.session.commit()
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [spawn_eventor(db_url, log, "--poll", "0.05") for log in logs]
    try:
        wait_for(lambda: db.session.scalar(select(func.count(Worker.id))) == 2, 20, "2 eventors")
        write_session(db.session())  # BEGIN IMMEDIATE: two daemons write meanwhile
        db.session.add_all(Event(source_id=source.id, payload={"n": i}) for i in range(200))
        db.session.commit()
        wait_for(lambda: _new_events() == 0, 60, "all events processed")
    finally:
        for proc, log in zip(procs, logs, strict=True):
            stop(proc, log)
    per_event = db.session.execute(
        select(Job.event_id, func.count(Job.id)).group_by(Job.event_id)
    ).all()
    assert len(per_event) == 200 and {count for _, count in per_event} == {2}
    assert db.session.scalar(select(func.count(Job.id)).where(Job.schedule_type != "event")) == 0
    db.session.rollback()
    stopped = db.session.scalars(select(Worker.status)).all()
    assert stopped == ["stopped", "stopped"]


def test_drain_processes_what_is_stored_and_exits(app: Flask, db_url: str, tmp_path: Path) -> None:
    source = create_source("d", "webhook")
    create_rule(source, RuleSpec(make_runtemplate(make_company()).id))
    db.session.add_all(Event(source_id=source.id, payload={"n": i}) for i in range(3))
    db.session.commit()
    log = tmp_path / "drain.log"
    proc = spawn_eventor(db_url, log, "--drain")
    assert proc.wait(timeout=30) == 0, log.read_text()
    db.session.rollback()
    assert db.session.scalar(select(func.count(Job.id))) == 3
    assert "action=drained events=3" in log.read_text()


def test_a_bad_setting_stops_it_at_start_naming_the_key(tmp_path: Path) -> None:
    log = tmp_path / "bad.log"
    proc = spawn_eventor(
        f"sqlite:///{tmp_path / 'x.db'}", log, "--drain", MULTIFLEXI_CYCLE_PAUSE="soon"
    )
    assert proc.wait(timeout=30) == 2
    assert "MULTIFLEXI_CYCLE_PAUSE" in log.read_text()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_once_polls_changes_db_then_drains(app: Flask, db_url: str, tmp_path: Path) -> None:
    acceptor = tmp_path / "acceptor.db"
    with sqlite3.connect(acceptor) as conn:
        conn.execute(
            "CREATE TABLE changes_cache (inversion INTEGER PRIMARY KEY, evidence TEXT,"
            " operation TEXT, recordid INTEGER)"
        )
        conn.executemany(
            "INSERT INTO changes_cache VALUES (?, 'banka', 'create', ?)", [(1, 10), (2, 20)]
        )
    conn.close()
    source = create_source("abra", "changes-db", {"url": f"sqlite:///{acceptor}"})
    create_rule(source, RuleSpec(make_runtemplate(make_company()).id))
    db.session.commit()
    log = tmp_path / "once.log"
    assert spawn_eventor(db_url, log, "--once").wait(timeout=30) == 0, log.read_text()
    db.session.rollback()
    jobs = db.session.scalars(select(Job).order_by(Job.id)).all()
    assert len(jobs) == 2 and "action=drained events=2" in log.read_text()
