"""Upstream's webhook-acceptor database: poll `changes_cache` by `inversion`, as MultiFlexi does."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from multiflexi_web.services.events.store import Incoming
from multiflexi_web.sources.base import (
    KindInfo,
    Sink,
    SourceConfigError,
    SourceSpec,
    keep_running,
)

IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
BATCH = 200


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
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    return value


def row_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The row's columns; a JSON `context` column is merged in, as upstream does."""
    payload = {k: jsonable(v) for k, v in row.items()}
    context = payload.get("context")
    if isinstance(context, str) and context.strip():
        try:
            extra = json.loads(context)
        except json.JSONDecodeError:
            extra = None
        if isinstance(extra, dict):
            payload = {**extra, **payload}
    return payload


def poll_once(spec: SourceSpec, sink: Sink, engine: Engine | None = None) -> int:
    """Store every change after the source's cursor, in order; returns how many were stored."""
    engine = engine or engine_for(spec)
    table, count = table_name(spec), 0
    while not sink.stop.is_set():
        with engine.connect() as conn:
            rows = (
                conn.execute(
                    text(f"SELECT * FROM {table} WHERE inversion > :c ORDER BY inversion LIMIT :n"),  # noqa: S608 - identifier checked
                    {"c": sink.cursor(), "n": BATCH},
                )
                .mappings()
                .all()
            )
        for row in rows:
            inversion = int(row["inversion"])
            item = Incoming(row_payload(dict(row)), delivery_id=str(inversion))
            sink.store(item, cursor=inversion)
            _forget(engine, spec, table, inversion)
            count += 1
        if len(rows) < BATCH:
            return count
    return count


def _forget(engine: Engine, spec: SourceSpec, table: str, inversion: int) -> None:
    # Upstream deletes a change once handled; the cursor alone would also suffice.
    if spec.config.get("delete_processed", True):
        with engine.begin() as conn:
            conn.execute(text(f"DELETE FROM {table} WHERE inversion = :i"), {"i": inversion})  # noqa: S608


def _poll_once(spec: SourceSpec, sink: Sink) -> None:
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
