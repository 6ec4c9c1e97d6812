"""Several eventors consuming one MQTT source (each on its own host, with its own session)
make one event, and one job, per message: the source subscribes through a shared subscription,
so the broker gives each message to one of them."""

from __future__ import annotations

import threading
import time
import types
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from flask import Flask
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, Job
from multiflexi_web.services.events.catalog import RuleSpec, create_rule, create_source, spec_of
from multiflexi_web.services.events.process import process_batch
from multiflexi_web.services.events.sink import DbSink
from multiflexi_web.sources import mqtt
from tests.factories import make_company, make_runtemplate
from tests.services import need_port


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'multiflexi.db'}"


def _publish(topic: str, bodies: list[bytes]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        for body in bodies:
            client.publish(topic, body, qos=1).wait_for_publish(timeout=5)
    finally:
        client.loop_stop()
        client.disconnect()


def _forget(client_id: str) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect("127.0.0.1", 1883)
    client.disconnect()


def test_two_eventors_make_one_job_per_mqtt_message(app: Flask, monkeypatch) -> None:
    need_port("127.0.0.1", 1883, "Mosquitto")
    topic = f"mf-shared/{uuid.uuid4().hex[:8]}"
    source = create_source("m", "mqtt", {"host": "127.0.0.1", "topic": topic})
    rt = make_runtemplate(make_company())
    create_rule(source, RuleSpec(rt.id, admin=True))
    db.session.commit()
    spec = spec_of(source)
    # Each eventor thread stands for an eventor on its own host: gethostname() is the host's.
    monkeypatch.setattr(
        mqtt, "socket", types.SimpleNamespace(gethostname=lambda: threading.current_thread().name)
    )
    stops, threads = [], []
    for host in ("host-a", "host-b"):
        stop = threading.Event()
        sink = DbSink(app, source.id, stop)
        t = threading.Thread(target=mqtt.consume, args=(spec, sink), name=host, daemon=True)
        t.start()
        stops.append(stop)
        threads.append(t)
    try:
        time.sleep(1.5)  # both connected and subscribed
        _publish(topic, [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}'])
        time.sleep(2)
    finally:
        for s in stops:
            s.set()
        for t in threads:
            t.join(10)
        for host in ("host-a", "host-b"):
            _forget(f"multiflexi-{source.id}-{host}")
    db.session.rollback()
    process_batch()
    db.session.commit()
    events = db.session.scalar(select(func.count(Event.id)))
    jobs = db.session.scalar(select(func.count(Job.id)))
    assert (events, jobs) == (3, 3), f"3 messages made {events} events and {jobs} jobs"
