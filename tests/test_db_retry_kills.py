"""The retry loop against connections killed at every point of a unit of work (PostgreSQL).

Each unit adds 1 to a row; its first try has its connection terminated (pg_terminate_backend
from a second connection) at one point: mid-statement, mid-pipeline, at the commit, during
the rollback. The retry must end with the row added to exactly once, whatever broke.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from multiflexi_web.db import retry as db_retry
from multiflexi_web.db.retry import LINK, retry, safe_rollback
from multiflexi_web.extensions import db
from multiflexi_web.models import Worker
from multiflexi_web.runner.unit import pipelined
from tests.factories import make_worker
from tests.pg_kill import admin_url, backend_pid, terminate

pytestmark = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_retry, "FIRST_WAIT", 0.01)


@pytest.fixture
def worker(app: Flask) -> Iterator[int]:
    w = make_worker()
    db.session.commit()
    yield w.id


def _add_one(worker_id: int) -> Any:
    return text("UPDATE worker SET pid = pid + 1 WHERE id = :id").bindparams(id=worker_id)


def _pid_of(worker_id: int) -> int:
    db.session.rollback()
    found = db.session.get(Worker, worker_id, populate_existing=True)
    assert found is not None
    return found.pid


def _run(unit: Callable[[int], None]) -> int:
    """Retry the unit; returns how many tries it took."""
    tries: list[int] = []

    def fn() -> None:
        tries.append(1)
        unit(len(tries))
        db.session.commit()

    before = LINK.last_error
    retry(fn, threading.Event(), "test=kill")
    assert LINK.last_error > before  # a failed unit counts as a database error
    return len(tries)


def test_killed_mid_statement(app: Flask, worker: int) -> None:
    start = _pid_of(worker)

    def unit(attempt: int) -> None:
        db.session.execute(_add_one(worker))
        if attempt == 1:
            pid = backend_pid()
            args = (pid, admin_url())
            threading.Thread(target=_kill_when_sleeping, args=args, daemon=True).start()
            db.session.execute(text("SELECT pg_sleep(30)"))

    assert _run(unit) == 2
    assert _pid_of(worker) == start + 1


def _kill_when_sleeping(pid: int, url: str) -> None:
    sql = "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND query LIKE %s AND state = 'active'"
    with psycopg.connect(url, autocommit=True) as admin:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if admin.execute(sql, (pid, "%pg_sleep%")).fetchone():
                break
            time.sleep(0.01)
    terminate(pid, url)


def test_killed_mid_pipeline(app: Flask, worker: int) -> None:
    start = _pid_of(worker)

    def unit(attempt: int) -> None:
        with pipelined():
            db.session.execute(_add_one(worker))
            if attempt == 1:
                terminate(backend_pid())
            db.session.execute(_add_one(worker))

    assert _run(unit) == 2
    assert _pid_of(worker) == start + 2  # both statements of the second try, none of the first


def _once(app: Flask, name: str) -> list[int]:
    """A one-shot engine event that kills the connection it fires on."""
    fired: list[int] = []

    def kill(conn: Any) -> None:
        if not fired:
            fired.append(1)
            terminate(backend_pid(conn))

    event.listen(db.engine, name, kill)
    return fired


def test_killed_at_the_commit(app: Flask, worker: int) -> None:
    start = _pid_of(worker)
    fired = _once(app, "commit")
    try:
        assert _run(lambda _attempt: db.session.execute(_add_one(worker))) == 2
    finally:
        event.remove(db.engine, "commit", fired and _listener(db.engine, "commit"))
    assert fired and _pid_of(worker) == start + 1


def test_killed_during_the_rollback(app: Flask, worker: int) -> None:
    """The unit fails (a transient error), then its rollback finds the connection dead."""
    start = _pid_of(worker)

    def unit(attempt: int) -> None:
        db.session.execute(_add_one(worker))
        if attempt == 1:
            raise OperationalError("UPDATE worker", {}, Exception("database is locked"))

    fired = _once(app, "rollback")
    try:
        assert _run(unit) == 2
    finally:
        event.remove(db.engine, "rollback", _listener(db.engine, "rollback"))
    assert fired and _pid_of(worker) == start + 1


def _listener(engine: Any, name: str) -> Any:
    [fn] = [f for f in getattr(engine.dispatch, name) if getattr(f, "__name__", "") == "kill"]
    return fn


def test_a_killed_connection_fails_no_app_context_teardown_after_safe_rollback(
    app: Flask,
) -> None:
    """Without it the teardown's rollback raises: a job recorded succeeded logged job_error."""
    with app.app_context():
        db.session.execute(text("SELECT 1"))  # a transaction open on the connection...
        terminate(backend_pid())  # ...that is killed
        safe_rollback()
    with app.app_context():
        assert db.session.execute(text("SELECT 1")).scalar() == 1  # a fresh connection
