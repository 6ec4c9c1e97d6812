"""Which database errors are transient, and the one retry loop that waits them out."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import has_app_context
from sqlalchemy import Connection
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from multiflexi_web.errors import first_line
from multiflexi_web.extensions import db

T = TypeVar("T")
log = logging.getLogger("multiflexi.db")
FIRST_WAIT = 0.5  # seconds before the second try; doubled each time up to max_wait
# PostgreSQL SQLSTATEs that a later try can succeed past: serialization failure, deadlock,
# too many connections, a server shutting down, crashed or starting up (class 08: connection).
TRANSIENT_STATES = frozenset({"40001", "40P01", "53300", "57P01", "57P02", "57P03"})
# The driver's text when it gives no SQLSTATE (lost or refused connections, SQLite's lock).
TRANSIENT_TEXT = (
    "connection",
    "server closed",
    "terminating",
    "could not connect",
    "could not serialize",
    "deadlock detected",
    "database is locked",
    "the database system is",
)


def is_transient(exc: BaseException) -> bool:
    """True for a database error that goes away by itself: the server unreachable or
    restarting, a serialization failure or deadlock, SQLite's file locked by another writer.
    A refused row (constraint, bad data) or a wrong statement is not."""
    if not isinstance(exc, DBAPIError) or isinstance(exc, IntegrityError | DataError):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None) or ""
    if state in TRANSIENT_STATES or state.startswith("08"):
        return True
    text = str(exc.orig).lower()
    return any(s in text for s in TRANSIENT_TEXT)


class Link:
    """When this process last saw the database fail (monotonic seconds): a reaper judges other
    workers only after it has itself been connected long enough to have seen them write."""

    def __init__(self) -> None:
        self.last_error = time.monotonic()  # a process starts as if it had just reconnected

    def failed(self) -> None:
        self.last_error = time.monotonic()

    def connected_for(self) -> float:
        return time.monotonic() - self.last_error


LINK = Link()  # one per process: any unit of work that fails resets it


def safe_rollback() -> None:
    """Roll the session back; if the connection died so that even that fails (killed during a
    pipeline, a commit or the rollback itself), throw the connection away instead: the next
    unit of work gets a fresh one from the pool."""
    try:
        db.session.rollback()
    except Exception as exc:  # any way a dead connection can fail: none may escape a retry
        log.info("action=rollback_failed error=%s", first_line(exc))
        _discard_connection()


def _discard_connection() -> None:
    session = db.session()
    try:
        for conn in _connections(session):
            conn.invalidate()
    except Exception as exc:
        log.info("action=invalidate_failed error=%s", first_line(exc))
    try:
        session.close()
    except Exception as exc:
        log.info("action=close_failed error=%s", first_line(exc))
        db.session.remove()


def _connections(session: Session) -> list[Connection]:
    """The connections the session's transaction holds (SQLAlchemy keeps them privately)."""
    trans = session.get_transaction()
    conns: dict[Any, tuple[Any, ...]] = getattr(trans, "_connections", {}) if trans else {}
    return [entry[0] for entry in conns.values() if isinstance(entry[0], Connection)]


def retry(
    fn: Callable[[], T],
    hard_stop: threading.Event,
    label: str,
    *,
    max_wait: float = 30.0,
    tries: int | None = None,
) -> T:
    """Run fn until it returns; after a transient database error roll back, log one line
    (`label` says whose work it is) and wait, FIRST_WAIT doubling up to max_wait, then again.

    Raised at once: any other error, the error of the last of `tries` (None: no limit), and the
    error that finds hard_stop set (a second SIGTERM, which ends the wait too)."""
    delay, attempt = FIRST_WAIT, 1
    while True:
        try:
            return fn()
        except DBAPIError as exc:
            if has_app_context():
                safe_rollback()
            if is_transient(exc):
                LINK.failed()
            if not is_transient(exc) or attempt == tries or hard_stop.is_set():
                raise
            log.warning("%s action=db_retry retry_in=%.1fs error=%s", label, delay, first_line(exc))
            if hard_stop.wait(delay):
                raise
            delay, attempt = min(delay * 2, max_wait), attempt + 1
