"""The database side of a consumer: store-and-commit, cursor, last error of the source."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.exc import DataError, IntegrityError

from multiflexi_web.db.engine import write_session
from multiflexi_web.errors import first_line
from multiflexi_web.extensions import db
from multiflexi_web.metrics import instruments as metrics
from multiflexi_web.models import EventSource, utcnow
from multiflexi_web.services.events.store import (
    Incoming,
    refused,
    storable,
    store_event,
    with_identity,
)

T = TypeVar("T")
# Runtime.retry_db in the daemon: waits out a database outage instead of losing the message.
Retry = Callable[[Callable[[], Any]], Any]
# What storing the same message again would raise again: the message is kept failed instead of
# raised, or it would come first again after every restart and block its source for good.
PERMANENT_ERRORS = (DataError, IntegrityError, RecursionError, ValueError)


def no_retry(fn: Callable[[], T]) -> T:
    return fn()


class DbSink:
    """Implements sources.base.Sink for one source; each call is its own unit of work."""

    def __init__(
        self,
        app: Flask,
        source_id: int,
        stop: threading.Event,
        *,
        retry: Retry = no_retry,
        wake: threading.Event | None = None,
        log: Callable[..., None] | None = None,
    ) -> None:
        self.app, self.source_id, self.stop = app, source_id, stop
        self._retry, self._wake, self._log = retry, wake, log
        # True at start: an error a previous run left on the source is cleared once healthy.
        self._error_shown = True

    def store(self, item: Incoming, cursor: int | None = None) -> int | None:
        """Store the event and commit; returns its id (the first one's for a repeated delivery),
        or None when the source is disabled: the caller leaves the message with its broker."""
        # The identity is made here, once: every retry below stores under the same one.
        item = with_identity(storable(item))
        try:
            event_id: int | None = self._retry(lambda: self._store(item, cursor))
        except PERMANENT_ERRORS as exc:
            why = f"cannot be stored: {type(exc).__name__}: {first_line(exc)}"
            if self._log is not None:
                self._log("event_refused", source=self.source_id, error=why)
            kept = with_identity(refused(item, why))
            event_id = self._retry(lambda: self._store(kept, cursor))
        if self._wake is not None and event_id is not None:
            self._wake.set()
        return event_id

    def _store(self, item: Incoming, cursor: int | None) -> int | None:
        with self.app.app_context():
            write_session(db.session())
            source = db.session.get(EventSource, self.source_id)
            if source is None:
                raise LookupError(f"event source {self.source_id}: deleted")
            if not source.enabled:
                # Disabled since the consumer started (it learns so at the eventor's next sync).
                if self._log is not None:
                    self._log("event_declined", source=self.source_id, reason="source disabled")
                return None
            event, created = store_event(source, item)
            if cursor is not None and cursor > source.last_processed_id:
                source.last_processed_id = cursor
            db.session.commit()
            if created:
                metrics.EVENTS_RECEIVED.labels(str(source.id)).inc()
            if self._log is not None and created:
                self._log("event_stored", source=self.source_id, event=event.id)
            return event.id

    def cursor(self) -> int:
        def read() -> int:
            with self.app.app_context():
                value = db.session.scalar(
                    select(EventSource.last_processed_id).where(EventSource.id == self.source_id)
                )
                return int(value or 0)

        result: int = self._retry(read)
        return result

    def failed(self, message: str) -> None:
        if self._log is not None:
            self._log("source_error", source=self.source_id, error=message)
        self._retry(lambda: self._set_error(message))
        self._error_shown = True

    def healthy(self) -> None:
        if self._error_shown:
            self._retry(lambda: self._set_error(None))
            self._error_shown = False

    def _set_error(self, message: str | None) -> None:
        with self.app.app_context():
            stmt = update(EventSource).where(EventSource.id == self.source_id)
            if message is None:
                stmt = stmt.where(EventSource.last_error.is_not(None)).values(last_error=None)
            else:
                stmt = stmt.values(last_error=message[:2000], last_error_at=utcnow())
            db.session.execute(stmt)
            db.session.commit()
