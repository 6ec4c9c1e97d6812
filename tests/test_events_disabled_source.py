"""A disabled source stops acting at once: its consumer's sink declines what it takes (the
message stays with the broker) and its events still waiting make no jobs."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
from flask import Flask
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventSource, Job
from multiflexi_web.services.events.catalog import RuleSpec, create_rule, create_source, spec_of
from multiflexi_web.services.events.process import process_batch
from multiflexi_web.services.events.sink import DbSink
from multiflexi_web.services.events.store import decode_message
from multiflexi_web.sources import redis_source
from tests.factories import make_company, make_runtemplate
from tests.services import need_port

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'multiflexi.db'}"


def test_a_disabled_source_makes_no_jobs(app: Flask) -> None:
    source = create_source("r", "redis", {"url": "redis://127.0.0.1:6379/0", "key": "k"})
    rt = make_runtemplate(make_company())
    create_rule(source, RuleSpec(rt.id, admin=True))
    db.session.commit()
    sink = DbSink(app, source.id, threading.Event())
    sink.store(decode_message(b'{"n": 1}'))  # waiting when the admin disables the source
    db.session.rollback()
    db.session.get(EventSource, source.id).enabled = False  # type: ignore[union-attr]
    db.session.commit()
    sink.store(decode_message(b'{"n": 2}'))  # the consumer thread, before the next sync()
    db.session.rollback()
    stored = db.session.scalar(select(func.count(Event.id)))
    process_batch()
    db.session.commit()
    jobs = db.session.scalar(select(func.count(Job.id)))
    assert (stored, jobs) == (1, 0), f"disabled: {stored} events stored, {jobs} jobs made"


def test_an_event_waiting_for_a_disabled_source_says_why_it_made_no_job(app: Flask) -> None:
    source = create_source("r", "redis", {"url": "redis://127.0.0.1:6379/0", "key": "k"})
    rt = make_runtemplate(make_company())
    create_rule(source, RuleSpec(rt.id, admin=True))
    db.session.commit()
    event_id = DbSink(app, source.id, threading.Event()).store(decode_message(b'{"n": 1}'))
    db.session.rollback()
    db.session.get(EventSource, source.id).enabled = False  # type: ignore[union-attr]
    db.session.commit()
    [outcome] = process_batch()
    db.session.commit()
    assert outcome.event_id == event_id and outcome.job_ids == ()
    assert "disabled" in (outcome.error or "")


def test_a_message_taken_after_the_disable_stays_with_the_broker(app: Flask) -> None:
    """The consumer learns of the disable only at the eventor's next sync; what it takes until
    then is declined and left unacknowledged (here: in the Redis processing list)."""
    need_port("127.0.0.1", 6379, "Redis")
    key = f"mf-test-disabled-{uuid.uuid4().hex[:8]}"
    source = create_source("rl", "redis", {"url": REDIS_URL, "key": key})
    source.enabled = False
    db.session.commit()
    client = redis.Redis.from_url(REDIS_URL)
    stop = threading.Event()
    thread = threading.Thread(
        target=redis_source.consume,
        args=(spec_of(source), DbSink(app, source.id, stop)),
        daemon=True,
    )
    try:
        client.rpush(key, b'{"n": 1}')
        thread.start()
        deadline = time.monotonic() + 5
        while client.llen(key) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        stop.set()
        thread.join(10)
        kept = [client.llen(k) for k in client.keys(f"{key}*")]
        db.session.rollback()
        assert db.session.scalar(select(func.count(Event.id))) == 0
        assert sum(kept) == 1, "the declined message was dropped"
    finally:
        stop.set()
        for k in client.keys(f"{key}*"):
            client.delete(k)
        client.close()
