"""Which database errors are transient (real ones, both databases), and the one retry loop."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from sqlalchemy import Connection, Engine, create_engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from multiflexi_web.db import retry as db_retry
from multiflexi_web.db.retry import is_transient, retry
from multiflexi_web.errors import first_line
from tests.db_probe import probe_table


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine of its own (no app hooks) with one table holding the row id=1."""
    args = {"timeout": 0} if db_url.startswith("sqlite") else {}  # SQLite: locked fails at once
    eng = create_engine(db_url, connect_args=args)
    with probe_table(eng, "retry_probe"):
        yield eng
    eng.dispose()


def error_of(conn: Connection, sql: str) -> DBAPIError:
    with pytest.raises(DBAPIError) as caught:
        conn.exec_driver_sql(sql)
    conn.rollback()
    return caught.value


def is_pg(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def test_a_refused_row_or_a_wrong_statement_is_not_transient(engine: Engine) -> None:
    with engine.connect() as conn:
        duplicate = error_of(conn, "INSERT INTO retry_probe VALUES (1, 1)")
        wrong = error_of(conn, "SELECT nope FROM retry_probe")
    assert isinstance(duplicate, IntegrityError) and not is_transient(duplicate)
    assert not is_transient(wrong)
    assert not is_transient(ValueError("database is locked"))  # not a database error at all


def test_another_writer_holding_the_database_is_transient(engine: Engine) -> None:
    """SQLite: "database is locked"; PostgreSQL: a serialization failure (repeatable read)."""
    with engine.connect() as first, engine.connect() as second:
        if is_pg(engine):
            first = first.execution_options(isolation_level="REPEATABLE READ")
            first.exec_driver_sql("SELECT v FROM retry_probe WHERE id = 1")  # its snapshot
        else:
            first.exec_driver_sql("UPDATE retry_probe SET v = 1 WHERE id = 1")  # holds the lock
        if is_pg(engine):
            second.exec_driver_sql("UPDATE retry_probe SET v = 2 WHERE id = 1")
            second.commit()
            exc = error_of(first, "UPDATE retry_probe SET v = 3 WHERE id = 1")
            assert getattr(exc.orig, "sqlstate", None) == "40001"
        else:
            exc = error_of(second, "UPDATE retry_probe SET v = 2 WHERE id = 1")
            assert "database is locked" in str(exc)
    assert isinstance(exc, OperationalError) and is_transient(exc)


def test_a_lost_or_refused_connection_is_transient(engine: Engine) -> None:
    if not is_pg(engine):
        pytest.skip("SQLite has no server connection to lose")
    with engine.connect() as victim, engine.connect() as admin:
        pid = victim.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        assert admin.exec_driver_sql(f"SELECT pg_terminate_backend({pid}, 10000)").scalar()
        lost = error_of(victim, "SELECT 1")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nowhere = create_engine(make_url(str(engine.url)).set(port=port))
    with pytest.raises(DBAPIError) as refused:
        nowhere.connect()
    assert is_transient(lost) and is_transient(refused.value)


# -- the retry loop ------------------------------------------------------------------------------


def _locked() -> OperationalError:
    return OperationalError("UPDATE job", {}, Exception("database is locked"))


def failing(times: int, exc: Callable[[], Exception] = _locked) -> Callable[[], str]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise exc()
        return f"ok after {len(calls)}"

    return fn


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_retry, "FIRST_WAIT", 0.001)


def test_retry_waits_out_transient_errors_and_logs_each(
    app: Flask, quick: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "multiflexi.db"):
        assert retry(failing(2), threading.Event(), "job=7") == "ok after 3"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and lines[0].startswith("job=7 action=db_retry retry_in=")
    assert lines[0].endswith("error=(builtins.Exception) database is locked")


def test_retry_raises_other_errors_at_once(app: Flask, quick: None) -> None:
    fn = failing(5, lambda: IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")))
    with pytest.raises(IntegrityError):
        retry(fn, threading.Event(), "job=7")
    with pytest.raises(ZeroDivisionError):
        retry(lambda: 1 // 0, threading.Event(), "job=7")


def test_retry_gives_up_after_its_tries(app: Flask, quick: None) -> None:
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        raise _locked()

    with pytest.raises(OperationalError):
        retry(fn, threading.Event(), "jobs=1,2", tries=4)
    assert len(calls) == 4


def test_a_hard_stop_ends_the_wait(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second SIGTERM while the database is away: the hour-long wait ends at once."""
    monkeypatch.setattr(db_retry, "FIRST_WAIT", 3600.0)  # an uninterrupted wait times the test out
    hard_stop, failed = threading.Event(), threading.Event()

    def fn() -> None:
        failed.set()
        raise _locked()

    threading.Thread(target=lambda: failed.wait(60) and hard_stop.set(), daemon=True).start()
    with pytest.raises(OperationalError):
        retry(fn, hard_stop, "daemon=executor worker=1")


def test_first_line() -> None:
    assert first_line(ValueError("one\ntwo")) == "one"
    assert first_line(ValueError("\n  padded  \nrest")) == "padded"
    assert first_line(ValueError("")) == "ValueError"
    assert first_line(ValueError("x" * 500)) == "x" * 300
    assert first_line(ValueError("x" * 500), limit=5) == "xxxxx"
