"""Which database errors are transient, and the one retry loop that waits them out."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from flask import has_app_context
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

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
                db.session.rollback()
            if not is_transient(exc) or attempt == tries or hard_stop.is_set():
                raise
            log.warning("%s action=db_retry retry_in=%.1fs error=%s", label, delay, first_line(exc))
            if hard_stop.wait(delay):
                raise
            delay, attempt = min(delay * 2, max_wait), attempt + 1
