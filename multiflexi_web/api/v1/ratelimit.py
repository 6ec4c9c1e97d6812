"""Per-token request limits (MULTIFLEXI_API_RATE): fixed windows counted where every portal
worker sees the same count.

On PostgreSQL the counters are rows of the main database (`api_rate_window`): every worker on
every host shares them, at the price of one small upsert per API request in its own short
transaction. On SQLite they live in a host-local SQLite file beside the job work folders, not
in the main database: a write there per request would queue API reads behind the daemons'
writes, and a SQLite installation is one host anyway. Losing that file (a reboot) only forgets
the current window. `FixedWindow` counts in-process (one worker alone); tests and the fallback
use it.
"""

from __future__ import annotations

import math
import random
import threading
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, create_engine, delete, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from multiflexi_web.db.engine import ensure_wal
from multiflexi_web.models import ApiRateWindow

# Beyond this many keys, windows that have ended are dropped (memory stays bounded).
PRUNE_AT = 10_000
# One request in this many also deletes ended windows (the table stays a few rows per token).
PRUNE_ONE_IN = 200
LOCAL_FILE = "api-rate.sqlite"


class RateCounter(Protocol):
    limit: int
    period: int

    def hit(self, key: str, now: float) -> tuple[int, int]:
        """Count a request: (requests left in this window, seconds to wait; 0 when allowed)."""


def _verdict(limit: int, period: int, count: int, now: float) -> tuple[int, int]:
    """`count`: this request's number in its window (1 for the first)."""
    if count > limit:
        window = int(now // period)
        return 0, max(1, math.ceil((window + 1) * period - now))
    return limit - count, 0


class FixedWindow:
    """`limit` requests per `period` seconds per key, counted in this process; thread-safe."""

    def __init__(self, limit: int, period: int) -> None:
        self.limit, self.period = limit, period
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}

    def hit(self, key: str, now: float) -> tuple[int, int]:
        window = int(now // self.period)
        with self._lock:
            seen_window, count = self._counts.get(key, (window, 0))
            if seen_window != window:
                count = 0
            if count >= self.limit:
                return _verdict(self.limit, self.period, count + 1, now)
            self._counts[key] = (window, count + 1)
            if len(self._counts) > PRUNE_AT:
                self._prune(window)
            return _verdict(self.limit, self.period, count + 1, now)

    def _prune(self, window: int) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[0] == window}


class SqlWindow:
    """`limit` requests per `period` seconds per key, counted in a table shared by processes."""

    def __init__(self, engine: Engine, limit: int, period: int) -> None:
        self.engine, self.limit, self.period = engine, limit, period
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        table = ApiRateWindow.__table__
        insert = dialect.insert(table)
        self._upsert = insert.on_conflict_do_update(
            index_elements=[table.c.key, table.c.window],
            set_={"count": table.c.count + 1},
        ).returning(table.c.count)
        self._prune = delete(ApiRateWindow)

    def hit(self, key: str, now: float) -> tuple[int, int]:
        window = int(now // self.period)
        # Its own transaction: a refused request (429) must still have been counted.
        with self.engine.begin() as conn:
            count = conn.execute(self._upsert, {"key": key, "window": window, "count": 1})
            number = int(count.scalar_one())
            if random.randrange(PRUNE_ONE_IN) == 0:  # noqa: S311 - spreads work, not security
                conn.execute(self._prune.where(ApiRateWindow.window < window))
        return _verdict(self.limit, self.period, number, now)


def local_engine(folder: str) -> Engine:
    """The host-local counter file (SQLite installations): created on first use, private."""
    path = Path(folder) / LOCAL_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 5})

    @event.listens_for(engine, "connect")
    def _pragmas(conn, _record):  # type: ignore[no-untyped-def]
        # Counters may be lost in a crash (the window starts over); they must never be slow.
        ensure_wal(conn, timeout=5)
        conn.execute("PRAGMA synchronous=OFF")

    # The table alone: the metadata's create events install the main database's triggers.
    # Every worker process of a new installation gets here at once: one creates it.
    try:
        ApiRateWindow.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
    except OperationalError as exc:
        if "already exists" not in str(exc):
            raise
    path.chmod(0o600)
    return engine


def counter_for(engine: Engine, folder: str, limit: int, period: int) -> RateCounter:
    """Where this installation counts: the main database on PostgreSQL, else the host file."""
    if engine.dialect.name == "postgresql":
        return SqlWindow(engine, limit, period)
    return SqlWindow(local_engine(folder), limit, period)


__all__ = ["FixedWindow", "RateCounter", "SqlWindow", "counter_for"]
