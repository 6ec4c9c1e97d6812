"""A store run again after a COMMIT whose answer was lost (it had committed) finds the event
it stored instead of storing it twice: every received message has one delivery identity,
made before the first try."""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from multiflexi_web.db.retry import retry
from multiflexi_web.extensions import db
from multiflexi_web.models import Event, Job
from multiflexi_web.services.events.catalog import RuleSpec, create_rule, create_source
from multiflexi_web.services.events.process import process_batch
from multiflexi_web.services.events.sink import DbSink
from multiflexi_web.services.events.store import decode_message
from multiflexi_web.sources import redis_source  # noqa: F401 - the kind whose items these are
from tests.factories import make_company, make_runtemplate


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'multiflexi.db'}"


def test_a_commit_whose_answer_was_lost_is_not_stored_twice(app: Flask, monkeypatch) -> None:
    source = create_source("r", "redis", {"url": "redis://127.0.0.1:6379/0", "key": "k"})
    rt = make_runtemplate(make_company())
    create_rule(source, RuleSpec(rt.id, admin=True))
    db.session.commit()

    real_commit = db.session.commit
    lost = []

    def commit_then_lose_the_answer() -> None:
        real_commit()  # the server has committed ...
        if not lost:
            lost.append(1)  # ... and the connection dies before its answer arrives
            raise OperationalError(
                "COMMIT",
                {},
                Exception("server closed the connection unexpectedly"),
                connection_invalidated=True,
            )

    sink = DbSink(
        app,
        source.id,
        threading.Event(),
        retry=partial(retry, hard_stop=threading.Event(), label="test"),
    )
    monkeypatch.setattr(db.session, "commit", commit_then_lose_the_answer)
    # What redis_source._store_list_item hands the sink for one list item.
    sink.store(decode_message(b'{"order": 7}'))
    monkeypatch.undo()

    db.session.rollback()
    process_batch()
    db.session.commit()
    events = db.session.scalar(select(func.count(Event.id)))
    jobs = db.session.scalar(select(func.count(Job.id)))
    assert (events, jobs) == (1, 1), f"one message: {events} events, {jobs} jobs"
