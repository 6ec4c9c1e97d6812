"""Engine set-up per dialect: SQLite pragmas and explicit BEGIN modes, PostgreSQL pool options."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from multiflexi_web.db import doorbell
from multiflexi_web.extensions import db

# SQLite: the driver's implicit BEGIN is switched off so that we choose the lock mode. A unit of
# work that will write asks for IMMEDIATE up front (see write_session) so it never fails halfway
# with "database is locked" when upgrading a read lock under WAL.
SQLITE_BEGIN_OPTION = "sqlite_begin"
# SQLite keeps its WAL file at the largest size it ever reached: a burst of writes while some
# long read (an export, a report) held its snapshot leaves gigabytes on disk for good. With
# this limit the file is cut back to it each time the WAL starts over after a checkpoint.
WAL_SIZE_LIMIT = 64 * 1024 * 1024


# libpq's TCP keepalives: a connection whose server vanished (a partition, a host gone) fails
# after ~1 min instead of the kernel's default two hours of a read that never returns.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def engine_options(
    url: str,
    *,
    pre_ping: bool = True,
    application_name: str | None = None,
    idle_tx_timeout: float = 0.0,
) -> dict[str, Any]:
    """Pool settings. Daemons pass pre_ping=False: a test query on every checkout is a round
    trip per transaction, and their units of work already retry on a dead connection (the
    failed statement invalidates the pool, the retry gets a fresh connection). They also name
    their connections (pg_stat_activity.application_name) so an operator sees whose they are.

    `idle_tx_timeout` (seconds, PostgreSQL): the server ends a session left idle inside a
    transaction that long. A daemon's transactions last milliseconds; one cut off from the
    server mid-transaction (a partition) otherwise kept its row locks until TCP noticed, hours
    later, and every executor rescuing its jobs waited on them."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    options: dict[str, Any] = {
        "pool_pre_ping": pre_ping,
        "pool_size": 5,
        "max_overflow": 10,
        "pool_recycle": 1800,
    }
    connect: dict[str, Any] = dict(KEEPALIVES)
    if application_name:
        connect["application_name"] = application_name
    if idle_tx_timeout > 0:
        ms = max(1, round(idle_tx_timeout * 1000))
        connect["options"] = f"-c idle_in_transaction_session_timeout={ms}"
    options["connect_args"] = connect
    return options


def ensure_wal(dbapi_conn: sqlite3.Connection, timeout: float = 30.0) -> None:
    """Put the file in WAL mode (kept in the file: later connections only read it).

    Switching needs the file to itself, and SQLite answers "database is locked" at once rather
    than waiting out the busy timeout when another connection is switching it or creating it
    (two gunicorn workers or daemons opening a new file together): wait and look again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            [mode] = dbapi_conn.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                dbapi_conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def install_sqlite_hooks(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return
    doorbell.install()  # commits of new work ring the daemons' doorbells

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        ensure_wal(dbapi_conn)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute(f"PRAGMA journal_size_limit={int(WAL_SIZE_LIMIT)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def write_session(session: Session) -> Session:
    """Start the session's transaction as a writer (BEGIN IMMEDIATE on SQLite; no-op elsewhere).

    Call before the first query of a unit of work that will write.
    """
    if session.in_transaction():
        return session
    session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
    return session


def begin_write() -> None:
    """Begin the current unit of work as a writer. A read transaction already open (on the
    portal, the login check's) is committed first: on SQLite, upgrading it later fails at once
    if a daemon wrote meanwhile, so an IMMEDIATE one is begun instead (no-op on PostgreSQL)."""
    end_read()
    write_session(db.session())


def end_read() -> None:
    """End the current read-only transaction with a COMMIT, not a ROLLBACK: psycopg forgets
    every statement it prepared on a connection when a transaction there is rolled back (one
    might have changed the schema they were planned for), and a daemon's hot statements then
    went back to being planned on every run. An executor's job threads left their context read
    open until their job ended and rolled it back: ~6% of jobs, enough that the claim and the
    outbox INSERT were planned for most of their runs (~0.4 and ~0.6 ms of PostgreSQL's CPU
    each, pg_stat_statements). It also keeps a job's connection out of the pool while it runs."""
    if db.session().in_transaction():
        db.session.commit()
