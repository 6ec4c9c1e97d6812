"""Upstream's webhook-acceptor database: poll `changes_cache` by `inversion`, as MultiFlexi does."""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from multiflexi_web.services.events.store import Incoming, parse_payload
from multiflexi_web.sources.base import (
    Declined,
    KindInfo,
    Sink,
    SourceConfigError,
    SourceSpec,
    keep_running,
    taken,
)

IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
BATCH = 200
# Inversions below the cursor a poll re-reads when rows are kept (delete_processed off): more
# than the changes the webhook acceptor can have in flight, uncommitted, at one time.
LOOKBACK = 1000


def engine_for(spec: SourceSpec) -> Engine:
    url = make_url(str(spec.config["url"]))
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if spec.secret:
        url = url.set(password=spec.secret)
    return create_engine(url, pool_pre_ping=True, pool_size=1, max_overflow=0)


def table_name(spec: SourceSpec) -> str:
    return _table(spec.config)


def _table(config: Mapping[str, Any]) -> str:
    name = str(config.get("table") or "changes_cache")
    if not IDENT_RE.match(name):
        raise SourceConfigError(f"config table {name!r}: must be a plain SQL identifier")
    return name


def check(config: Mapping[str, Any]) -> None:
    _table(config)
    try:
        make_url(str(config["url"]))
    except ArgumentError as exc:
        raise SourceConfigError(f"config url: not a database URL ({exc})") from None


def jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)  # NaN and Infinity (PostgreSQL 14+) too: _column refuses them
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    return value


def _column(name: str, value: Any, problems: list[str]) -> Any:
    """A column as JSON both databases store: PostgreSQL refuses a NUL and NaN, and the row
    would then be read again, and refused again, on every poll."""
    value = jsonable(value)
    if isinstance(value, str) and "\x00" in value:
        problems.append(f"column {name}: a NUL character, shown as U+FFFD")
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"column {name}: number {value} is out of range, shown as null")
        return None
    return value


def row_payload(row: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """The row's columns; a JSON `context` column is merged in, as upstream does. What had to be
    changed or left out to store it is added to `problems`."""
    payload = {k: _column(k, v, problems) for k, v in row.items()}
    context = payload.get("context")
    if isinstance(context, str) and context.strip():
        try:
            extra = parse_payload(context.encode("utf-8", errors="replace"))
        except json.JSONDecodeError:
            extra = None  # not JSON at all: kept as the plain column, as upstream does
        except (ValueError, RecursionError) as exc:
            # JSON, but too deep or with NUL/NaN: kept as text, and the event marked failed.
            problems.append(f"column context: not merged, {type(exc).__name__}: {exc}")
            extra = None
        if isinstance(extra, dict):
            payload = {**extra, **payload}
    return payload


def row_item(row: Mapping[str, Any]) -> Incoming:
    """The change as an event. A row with a value no event can hold becomes a failed event (it
    fires no rule) that keeps what could be kept, instead of raising on every poll and so
    stopping every later change of the source."""
    delivery = str(int(row["inversion"]))
    problems: list[str] = []
    try:
        # The round trip applies parse_payload's definition of a storable payload to the whole
        # (a PostgreSQL array or json column can nest); default=str for types JSON lacks (uuid).
        encoded = json.dumps(row_payload(row, problems), allow_nan=False, default=str)
        payload = parse_payload(encoded.encode("utf-8", errors="replace"))
    except (ValueError, RecursionError) as exc:
        payload = None
        problems.append(f"cannot be stored: {type(exc).__name__}: {exc}")
    if not problems and payload is not None:
        return Incoming(payload, delivery_id=delivery)
    raw = repr(dict(row)).encode("utf-8", errors="replace")  # the row as read, NUL escaped
    error = f"change {delivery}: " + "; ".join(problems)
    return Incoming(payload, raw, delivery_id=delivery, error=error.replace("\x00", "?"))


def poll_once(spec: SourceSpec, sink: Sink, engine: Engine | None = None) -> int:
    """Hand every change not yet handed over to the sink, in order; returns how many rows it
    handed over (a row seen before is stored once: its delivery id is its inversion)."""
    engine = engine or engine_for(spec)
    table, count = table_name(spec), 0
    after = _start(spec, sink)
    while not sink.stop.is_set():
        rows = _batch(engine, table, after)
        for row in rows:
            inversion = int(row["inversion"])
            # Declined (source disabled meanwhile): the row stays, before it is deleted.
            taken(sink.store(row_item(row), cursor=inversion))
            _forget(engine, spec, table, inversion)
            after, count = inversion, count + 1
        if len(rows) < BATCH:
            return count
    return count


def _start(spec: SourceSpec, sink: Sink) -> int | None:
    """Where a poll starts reading. Inversions are taken when a change is inserted but become
    visible when it commits, so a change can appear below one already read (two concurrent
    transactions, the first committing last): a poll never starts at the cursor itself."""
    if spec.config.get("delete_processed", True):
        return None  # every row left is unread or was stored but not yet deleted: read them all
    # Rows stay: re-read a window below the cursor for late commits, the dedup skips the rest.
    return sink.cursor() - LOOKBACK


def _batch(engine: Engine, table: str, after: int | None) -> list[dict[str, Any]]:
    where = "" if after is None else "WHERE inversion > :after "
    with engine.connect() as conn:
        result = conn.execute(
            text(f"SELECT * FROM {table} {where}ORDER BY inversion LIMIT :n"),  # noqa: S608 - identifier checked
            {"after": after, "n": BATCH},
        )
        return [dict(row) for row in result.mappings()]


def _forget(engine: Engine, spec: SourceSpec, table: str, inversion: int) -> None:
    # Upstream deletes a change once handled; it also keeps the unfiltered read of _start short.
    if spec.config.get("delete_processed", True):
        with engine.begin() as conn:
            conn.execute(text(f"DELETE FROM {table} WHERE inversion = :i"), {"i": inversion})  # noqa: S608


def _poll_once(spec: SourceSpec, sink: Sink) -> None:
    # A source disabled during the pass keeps its rows for when it is enabled again.
    with contextlib.suppress(Declined):
        poll_once(spec, sink)


def consume(spec: SourceSpec, sink: Sink) -> None:
    interval = float(spec.config.get("poll_interval", 10))

    def session() -> None:
        engine = engine_for(spec)
        try:
            while not sink.stop.is_set():
                poll_once(spec, sink, engine)
                sink.healthy()
                sink.stop.wait(interval)
        finally:
            engine.dispose()

    # ImportError: a URL whose database driver is not installed (mysql://...) shows as the error.
    recoverable = (SQLAlchemyError, OSError, ImportError)
    keep_running(sink, session, recoverable, f"changes-db {table_name(spec)}")


KIND = KindInfo(
    "Upstream webhook-acceptor database (changes_cache)",
    required=("url",),
    defaults={"table": "changes_cache", "poll_interval": 10, "delete_processed": True},
    consumer=consume,
    poll_once=_poll_once,
    check=check,
    admin_only=(
        "the eventor connects from the platform's host to the database you name, and deletes "
        "the rows it has read"
    ),
)
