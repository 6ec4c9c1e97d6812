"""A message the database cannot store as it is (a NUL, NaN, too deep, a bad header or id) is
kept as a failed event and acknowledged: it never crashes its consumer nor blocks the messages
behind it."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pika
import pytest
import redis
from flask import Flask
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DataError

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventSource
from multiflexi_web.services.events import sink as sink_module
from multiflexi_web.services.events.catalog import create_source, spec_of
from multiflexi_web.services.events.sink import DbSink
from multiflexi_web.services.events.store import Incoming, check_value, decode_message, storable
from multiflexi_web.sources import KINDS, changes_db
from tests.services import need_port

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.fixture
def db_url(pg_database: str) -> str:
    return pg_database


def _events(source_id: int) -> list[Event]:
    db.session.rollback()
    return list(db.session.scalars(select(Event).where(Event.source_id == source_id)))


def _run_for(app: Flask, source_id: int, spec, seconds: float) -> list[str]:
    """One consumer run (an eventor's thread) for a while; returns what it crashed with."""
    crashes: list[str] = []
    stop = threading.Event()

    def body() -> None:
        try:
            KINDS[spec.kind].consumer(spec, DbSink(app, source_id, stop))
        except Exception as exc:  # what Consumers._run logs as consumer_crashed
            crashes.append(type(exc).__name__)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.1)
    stop.set()
    thread.join(10)
    return crashes


def test_a_stream_entry_with_a_nul_byte_does_not_block_the_stream(app: Flask) -> None:
    need_port("127.0.0.1", 6379, "Redis")
    key = f"mf-audit-stream-{uuid.uuid4().hex[:8]}"
    source = create_source("rs", "redis", {"url": REDIS_URL, "key": key, "mode": "stream"})
    db.session.commit()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.xadd(key, {"blob": b"a\x00b"})  # fields without a payload field: stored as text
        client.xadd(key, {"payload": b'{"order": 2}'})
        crashes = []
        for _restart in range(3):  # Consumers.sync restarts a crashed consumer
            crashes += _run_for(app, source.id, spec_of(source), 3)
        orders = [e.payload.get("order") for e in _events(source.id)]
        assert 2 in orders, (
            f"the next entry was never stored; consumer crashed {crashes}, "
            f"pending {client.xpending(key, 'multiflexi')['pending']}"
        )
    finally:
        client.delete(key)
        client.close()


def _acceptor(tmp_path: Path, evidence: str, context: str | None) -> str:
    """An upstream acceptor's changes_cache: row 1 with these values, then a plain row 2."""
    upstream = f"sqlite:///{tmp_path / 'acceptor.db'}"
    engine = create_engine(upstream)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE changes_cache (inversion INTEGER PRIMARY KEY, evidence TEXT,"
                " operation TEXT, recordid INTEGER, context TEXT)"
            )
        )
        conn.execute(
            text("INSERT INTO changes_cache VALUES (1, :e, 'create', 1, :c)"),
            {"e": evidence, "c": context},
        )
        conn.execute(text("INSERT INTO changes_cache VALUES (2, 'banka', 'create', 2, NULL)"))
    engine.dispose()
    return upstream


def test_a_changes_row_with_a_nul_character_does_not_block_later_rows(
    app: Flask, tmp_path: Path
) -> None:
    upstream = _acceptor(tmp_path, "ban\x00ka", None)
    source = create_source("abra", "changes-db", {"url": upstream})
    db.session.commit()
    errors = []
    for _poll in range(3):  # keep_running backs off and polls again
        try:
            changes_db.poll_once(spec_of(source), DbSink(app, source.id, threading.Event()))
        except Exception as exc:
            errors.append(type(exc).__name__)
    records = [e.payload["recordid"] for e in _events(source.id)]
    assert 2 in records, f"row 2 never stored; every poll failed with {errors}"


def test_a_changes_row_with_a_deeply_nested_context_does_not_block_later_rows(
    app: Flask, tmp_path: Path
) -> None:
    """row_payload catches only JSONDecodeError: json.loads of a deep `context` raises
    RecursionError, which is not in changes_db's recoverable errors (any database)."""
    upstream = _acceptor(tmp_path, "banka", "[" * 200_000 + "]" * 200_000)
    source = create_source("abra", "changes-db", {"url": upstream})
    db.session.commit()
    crashes = []
    for _restart in range(3):
        crashes += _run_for(app, source.id, spec_of(source), 1.5)
    records = [e.payload["recordid"] for e in _events(source.id)]
    assert 2 in records, f"row 2 never stored; the consumer crashed with {crashes}"


def test_an_amqp_message_with_a_nul_in_its_id_and_headers_is_kept_failed(app: Flask) -> None:
    need_port("127.0.0.1", 5672, "RabbitMQ")
    queue = f"mf-test-poison-{uuid.uuid4().hex[:8]}"
    source = create_source("aq", "amqp", {"url": AMQP_URL, "queue": queue, "durable": False})
    db.session.commit()
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = conn.channel()
        channel.queue_declare(queue, durable=False)
        bad = pika.BasicProperties(message_id="m\x001", headers={"x-trace": "a\x00b"})
        channel.basic_publish("", queue, b'{"order": 1}', properties=bad)
        channel.basic_publish("", queue, b'{"order": 2}')
        crashes = _run_for(app, source.id, spec_of(source), 3)
        events = sorted(_events(source.id), key=lambda e: e.id)
        assert crashes == [] and [e.status for e in events] == ["failed", "new"]
        assert events[0].payload == {"order": 1} and "\\u0000" in events[0].headers["x-trace"]
        assert "cannot be stored" in (events[0].error or "")
        assert channel.queue_declare(queue, passive=True).method.message_count == 0
    finally:
        conn.channel().queue_delete(queue)
        conn.close()


def test_a_payload_the_database_refuses_is_kept_failed_not_raised(app: Flask, monkeypatch) -> None:
    """Whatever the checks miss: a permanent error of the INSERT is not raised to the consumer."""
    source = create_source("rq", "redis", {"url": REDIS_URL, "key": "k"})
    db.session.commit()
    real = sink_module.store_event

    def refuse_the_first(src: EventSource, item: Incoming) -> tuple[Event, bool]:
        if item.error is None:
            raise DataError("INSERT", {}, Exception("invalid input syntax"))
        return real(src, item)

    monkeypatch.setattr(sink_module, "store_event", refuse_the_first)
    event_id = DbSink(app, source.id, threading.Event()).store(decode_message(b'{"n": 1}'))
    [event] = _events(source.id)
    assert event.id == event_id and event.status == "failed" and event.payload == {"n": 1}
    assert "DataError" in (event.error or "")


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        (Incoming({"n": float("nan")}), "out of range"),
        (Incoming(_deep(200)), "nested deeper"),
        (Incoming({"k": "a\ud800"}), "not valid Unicode"),
        (Incoming({}, delivery_id="id\x00"), "\\u0000"),
    ],
)
def test_what_cannot_be_stored_becomes_a_storable_failed_item(item: Incoming, problem: str) -> None:
    kept = storable(item)
    assert kept.error is not None and problem in kept.error
    check_value(kept.payload, "payload")  # what replaces it passes the same checks
    check_value(kept.delivery_id, "delivery id")
