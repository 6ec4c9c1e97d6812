"""Units of work of the executor: one SQLite writer at a time, PostgreSQL statements pipelined."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError

from multiflexi_web.extensions import db

_SQLITE_WRITES = threading.Lock()
# Longest wait between two tries of a job's unit of work while the database is away: a job that
# finished during an outage is recorded within this long after the database is back.
RETRY_MAX_WAIT = 10.0


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
    # psycopg is looked up, not imported: a daemon on SQLite never loads it (~24 MiB).
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(raw, psycopg.Connection):  # another driver
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
