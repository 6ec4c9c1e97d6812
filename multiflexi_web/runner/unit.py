"""Units of work of the executor: one SQLite writer at a time, retried through outages."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg
from sqlalchemy.exc import DBAPIError, OperationalError

from multiflexi_web.db.engine import write_session
from multiflexi_web.extensions import db

log = logging.getLogger("multiflexi.executor")
T = TypeVar("T")
_SQLITE_WRITES = threading.Lock()


@contextmanager
def writing() -> Iterator[None]:
    """One SQLite writer at a time in this process, queued on a lock that wakes the next at once
    (SQLite's own busy handler sleeps 1, 2, 5, 10... ms between tries)."""
    if db.session.get_bind().dialect.name != "sqlite":
        yield
        return
    with _SQLITE_WRITES:
        yield


@contextmanager
def pipelined() -> Iterator[None]:
    """PostgreSQL: the statements inside are sent without waiting for each one's answer, all
    answered in one round trip at the end. Only for statements whose results are not read
    (INSERTs, UPDATEs without RETURNING); a failure surfaces at the end, as a DBAPIError."""
    conn = db.session.connection()
    if conn.dialect.name != "postgresql":
        yield
        return
    raw = conn.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):  # another driver: one statement at a time
        yield
        return
    try:
        with raw.pipeline():
            yield
    except psycopg.Error as exc:
        broken = raw.broken or raw.closed
        if broken:
            conn.invalidate(exc)  # never hand a dead connection back to the pool
        raise DBAPIError.instance(
            None, None, exc, psycopg.Error, connection_invalidated=bool(broken)
        ) from exc


def begin_write() -> None:
    """End any read (SQLite cannot upgrade a stale snapshot), then begin as a writer."""
    if db.session().in_transaction():
        db.session.commit()
    write_session(db.session())


def retrying(fn: Callable[[], T], hard_stop: threading.Event, what: str) -> T:
    """Run fn until the database answers: rolled back and retried with backoff (not after a
    second SIGTERM, which must stop the daemon even while the database is away)."""
    delay = 0.5
    while True:
        try:
            return fn()
        except (OperationalError, DBAPIError) as exc:
            db.session.rollback()
            if hard_stop.is_set():
                raise
            line = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            log.warning("action=db_retry %s retry_in=%.1fs error=%s", what, delay, line)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
