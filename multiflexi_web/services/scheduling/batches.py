"""A whole scheduler tick: the due templates in committed batches, in lanes on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from flask import Flask, current_app
from sqlalchemy import text

from multiflexi_web.db.engine import end_read, write_session
from multiflexi_web.extensions import db
from multiflexi_web.models import utcnow
from multiflexi_web.services import settings
from multiflexi_web.services.scheduling import tick as scheduling

DEFAULT_BATCH = 10_000
# Two writers keep both of a small server's cores busy: one fills a batch while the other's
# statement runs in PostgreSQL.
DEFAULT_LANES = 2


@dataclass
class TickResult(scheduling.BatchResult):
    batches: int = 0
    seconds: float = 0.0

    def add_tick(self, other: TickResult) -> None:
        self.add(other)
        self.batches += other.batches


def tick(
    now: datetime | None = None,
    *,
    batch: int = DEFAULT_BATCH,
    bulk: bool | None = None,
    lanes: int = 1,
    should_stop: Callable[[], bool] = lambda: False,
) -> TickResult:
    """Enqueue every slot due at `now`, one committed transaction per batch (needs an app context).

    On PostgreSQL `lanes` threads drain the due templates side by side (SKIP LOCKED splits them
    as it does between scheduler processes). A stop request is honoured between batches; the
    rest stays due for the next tick.
    """
    now = now or utcnow()
    started = time.perf_counter()
    total = TickResult()
    due = scheduling.anything_due(now)
    # End the read (idle ticks hold no snapshot, writers begin afresh) with a COMMIT: a
    # rollback made psycopg forget the tick's prepared statements (db/engine.py end_read).
    end_read()
    if not due:
        return _done(total, started)
    if lanes > 1 and db.session.get_bind().dialect.name == "postgresql":
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        with ThreadPoolExecutor(lanes, thread_name_prefix="lane") as pool:
            runs = [
                pool.submit(_drain_in, app, now, batch, bulk, should_stop) for _ in range(lanes)
            ]
            for run in runs:
                total.add_tick(run.result())
    else:
        total.add_tick(_drain(now, batch, bulk, should_stop))
    return _done(total, started)


def _drain_in(
    app: Flask, now: datetime, batch: int, bulk: bool | None, should_stop: Callable[[], bool]
) -> TickResult:
    with app.app_context():
        return _drain(now, batch, bulk, should_stop)


def _drain(
    now: datetime, batch: int, bulk: bool | None, should_stop: Callable[[], bool]
) -> TickResult:
    """Batches until fewer than `batch` templates were due (or a stop was asked for)."""
    conf = settings()
    total = TickResult()
    while True:
        _begin_batch()
        res = scheduling.schedule_due(
            now, limit=batch, default_tz=conf.timezone, max_catchup=conf.max_catchup, bulk=bulk
        )
        db.session.commit()
        total.add(res)
        total.batches += 1
        if res.templates < batch or should_stop():
            return total


def _begin_batch() -> None:
    write_session(db.session())  # BEGIN IMMEDIATE on SQLite: one writer at a time
    if db.session.get_bind().dialect.name == "postgresql":
        # A large INSERT ... SELECT crosses the JIT threshold; compiling costs more than it saves.
        db.session.execute(text("SET LOCAL jit = off"))
        # A batch lost in a crash is simply due again at the next tick, so it need not wait for
        # its WAL flush; any later synchronous commit (an executor's claim) flushes it anyway.
        db.session.execute(text("SET LOCAL synchronous_commit = off"))


def _done(result: TickResult, started: float) -> TickResult:
    result.seconds = time.perf_counter() - started
    return result
