"""Each consumed source kind against the real service: a message becomes an event, then a job."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pika
import pytest
import redis
from flask import Flask
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventSource, Job
from multiflexi_web.security.secrets import cipher
from multiflexi_web.services.events.catalog import RuleSpec, create_rule, create_source, spec_of
from multiflexi_web.services.events.process import process_batch
from multiflexi_web.services.events.sink import DbSink
from multiflexi_web.sources import KINDS
from tests.factories import make_company, make_runtemplate
from tests.services import need_port

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only here: the brokers are under test; both databases are covered elsewhere."""
    return f"sqlite:///{tmp_path / 'multiflexi.db'}"


def unique(prefix: str) -> str:
    return f"mf-test-{prefix}-{uuid.uuid4().hex[:10]}"


def with_rule(source: EventSource, **env: str) -> int:
    rt = make_runtemplate(make_company())
    create_rule(source, RuleSpec(rt.id, env_mapping=env, admin=True))
    db.session.commit()
    return rt.id


@contextmanager
def consuming(app: Flask, source: EventSource) -> Iterator[DbSink]:
    stop = threading.Event()
    spec = spec_of(source)
    sink = DbSink(app, source.id, stop)
    consumer = KINDS[spec.kind].consumer
    assert consumer is not None
    thread = threading.Thread(target=consumer, args=(spec, sink), daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        stop.set()
        thread.join(timeout=15)
        assert not thread.is_alive(), "consumer did not stop"


def events_of(source_id: int) -> list[Event]:
    db.session.rollback()  # a fresh snapshot
    return list(
        db.session.scalars(select(Event).where(Event.source_id == source_id).order_by(Event.id))
    )


def wait_events(source_id: int, count: int, timeout: float = 15) -> list[Event]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = events_of(source_id)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"expected {count} events, got {len(events_of(source_id))}")


def job_env(event: Event) -> dict[str, str]:
    process_batch()
    db.session.commit()
    job = db.session.scalar(select(Job).where(Job.event_id == event.id))
    assert job is not None and job.env_override is not None
    env: dict[str, str] = cipher().decrypt_json(job.env_override)
    return env


def test_redis_list_message_becomes_a_job(app: Flask) -> None:
    need_port("127.0.0.1", 6379, "Redis")
    key = unique("list")
    source = create_source("r", "redis", {"url": REDIS_URL, "key": key, "mode": "list"})
    with_rule(source, ORDER="$.order.id")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        with consuming(app, source):
            client.lpush(key, b'{"order": {"id": 77}}')
            [event] = wait_events(source.id, 1)
            wait_until(lambda: client.llen(key) == 0, 5, "list drained")
        assert job_env(event)["ORDER"] == "77"
        # Taken from the list, then (after the commit) from the processing list: nothing left.
        assert client.keys(f"{key}*") == []
    finally:
        client.delete(key, *client.keys(f"{key}:*"))
        client.close()


def test_redis_list_message_left_in_flight_by_a_crash_is_stored_on_restart(app: Flask) -> None:
    need_port("127.0.0.1", 6379, "Redis")
    key = unique("list")
    source = create_source(
        "r", "redis", {"url": REDIS_URL, "key": key, "mode": "list", "consumer": "me"}
    )
    db.session.commit()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        # What a consumer killed between BLMOVE and its commit leaves behind.
        client.lpush(f"{key}:processing:me", b'{"n": 1}')
        with consuming(app, source):
            [event] = wait_events(source.id, 1)
            wait_until(lambda: client.llen(f"{key}:processing:me") == 0, 5, "processing emptied")
        assert event.payload == {"n": 1}
    finally:
        client.delete(key, f"{key}:processing:me")
        client.close()


def test_redis_stream_entry_becomes_a_job_once(app: Flask) -> None:
    need_port("127.0.0.1", 6379, "Redis")
    key = unique("stream")
    source = create_source("rs", "redis", {"url": REDIS_URL, "key": key, "mode": "stream"})
    with_rule(source, SKU="$.sku")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        entry = client.xadd(key, {"payload": b'{"sku": "A-1"}'})
        with consuming(app, source):
            [event] = wait_events(source.id, 1)
        assert event.delivery_id == entry.decode()
        assert job_env(event)["SKU"] == "A-1"
        assert client.xpending(key, "multiflexi")["pending"] == 0  # acknowledged
    finally:
        client.delete(key)
        client.close()


def test_amqp_message_becomes_a_job_and_is_acknowledged(app: Flask) -> None:
    need_port("127.0.0.1", 5672, "RabbitMQ")
    queue = unique("q")
    source = create_source("a", "amqp", {"url": AMQP_URL, "queue": queue})
    with_rule(source, CUSTOMER="$.customer")
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = conn.channel()
    try:
        channel.queue_declare(queue, durable=True)
        props = pika.BasicProperties(message_id="m-1", delivery_mode=2)
        channel.basic_publish("", queue, b'{"customer": "ACME"}', props)
        with consuming(app, source):
            [event] = wait_events(source.id, 1)
        assert event.delivery_id == "m-1" and job_env(event)["CUSTOMER"] == "ACME"
        assert channel.queue_declare(queue, passive=True).method.message_count == 0
    finally:
        channel.queue_delete(queue)
        conn.close()


def mqtt_publish(topic: str, payloads: list[bytes], port: int = 1883) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub"))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for body in payloads:
            client.publish(topic, body, qos=1).wait_for_publish(timeout=5)
    finally:
        client.loop_stop()
        client.disconnect()


def forget_mqtt_session(client_id: str) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect("127.0.0.1", 1883)
    client.disconnect()


def test_mqtt_message_becomes_a_job(app: Flask) -> None:
    need_port("127.0.0.1", 1883, "Mosquitto")
    topic, client_id = unique("t"), unique("c")
    source = create_source(
        "m", "mqtt", {"host": "127.0.0.1", "topic": topic, "client_id": client_id}
    )
    with_rule(source, SENSOR="$.sensor", TEMP="$.t")
    try:
        with consuming(app, source) as sink:
            wait_until(lambda: not sink._error_shown, 10, "mqtt connected")
            time.sleep(0.3)  # the subscription follows the CONNACK
            mqtt_publish(topic, [b'{"sensor": "s1", "t": 21.5}'])
            [event] = wait_events(source.id, 1)
        assert event.headers == {"topic": topic}
        env = job_env(event)
        assert (env["SENSOR"], env["TEMP"]) == ("s1", "21.5")
    finally:
        forget_mqtt_session(client_id)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_file_written_in_pieces_becomes_one_event_when_complete(
    app: Flask, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = create_source("d", "directory", {"path": str(inbox), "settle_seconds": 0.5})
    with_rule(source)
    with consuming(app, source):
        with (inbox / "invoice.csv").open("wb") as fh:
            for piece in range(5):
                fh.write(b"line %d\n" % piece)
                fh.flush()
                time.sleep(0.3)  # longer gaps than nothing, shorter than the settle time
                assert events_of(source.id) == []
        (inbox / ".hidden.part").write_bytes(b"ignored")
        [event] = wait_events(source.id, 1)
        time.sleep(1.0)
        assert len(events_of(source.id)) == 1
    payload: dict[str, Any] = event.payload
    assert payload["name"] == "invoice.csv" and payload["size"] == 35
    assert job_env(event)["EVENT_FILE"] == str(inbox / "invoice.csv")
    # A restart rescans the folder: the file it already turned into an event stays one event.
    with consuming(app, source):
        time.sleep(1.5)
    assert len(events_of(source.id)) == 1


def test_files_that_arrived_while_no_eventor_ran_are_picked_up(app: Flask, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.json").write_text("{}")
    (inbox / "b.json").write_text("{}")
    source = create_source("d", "directory", {"path": str(inbox), "settle_seconds": 0.3})
    db.session.commit()
    with consuming(app, source):
        events = wait_events(source.id, 2)
    assert sorted(e.payload["name"] for e in events) == ["a.json", "b.json"]


def test_a_missing_directory_is_shown_as_the_source_error(app: Flask, tmp_path: Path) -> None:
    source = create_source("d", "directory", {"path": str(tmp_path / "nope")})
    db.session.commit()
    with consuming(app, source):
        wait_until(lambda: bool(_last_error(source.id)), 10, "last_error")
    assert "is not a directory" in (_last_error(source.id) or "")


def _last_error(source_id: int) -> str | None:
    db.session.rollback()
    return db.session.scalar(select(EventSource.last_error).where(EventSource.id == source_id))
