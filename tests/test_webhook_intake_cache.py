"""The webhook's cached sources and own PostgreSQL pool: a change applies to the next request,
a change racing a request is caught by the INSERT itself, a dropped connection costs nothing."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventSource
from multiflexi_web.services.events.catalog import create_source, update_source
from multiflexi_web.services.events.connection import intake_engine
from tests.pg_kill import admin_url, terminate

OLD, NEW = "old-secret", "new-secret"
BODY = b'{"n": 1}'


def _sig(secret: str, body: bytes = BODY) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


def _source() -> EventSource:
    source = create_source("hook", "webhook", secret=OLD)
    db.session.commit()
    return source


def _post(client: FlaskClient, source: EventSource, secret: str, delivery: str) -> int:
    headers = {**_sig(secret), "X-Delivery-Id": delivery}
    status = client.post(f"/webhook/{source.token}", data=BODY, headers=headers).status_code
    # The webhook committed on a connection of its own: the test's next read or write starts a
    # new transaction (SQLite would refuse to upgrade the read snapshot taken before it).
    db.session.rollback()
    return status


def _events() -> int:
    db.session.rollback()  # a fresh snapshot (SQLite)
    return db.session.scalar(select(func.count(Event.id))) or 0


def test_a_disabled_source_answers_404_on_the_next_request(client: FlaskClient) -> None:
    source = _source()
    assert _post(client, source, OLD, "a") == 202  # the source is now cached
    update_source(source, name="hook", config={}, enabled=False)
    db.session.commit()
    assert _post(client, source, OLD, "b") == 404
    assert _events() == 1


def test_a_new_secret_applies_on_the_next_request(client: FlaskClient) -> None:
    source = _source()
    assert _post(client, source, OLD, "a") == 202
    update_source(source, name="hook", config={}, enabled=True, secret=NEW)
    db.session.commit()
    assert _post(client, source, OLD, "b") == 401
    assert _post(client, source, NEW, "c") == 202
    assert _events() == 2


def test_a_request_refused_by_cached_settings_is_checked_against_current_ones(
    client: FlaskClient,
) -> None:
    """Neither a new secret nor re-enabling may be refused with what the cache remembers."""
    source = _source()
    assert _post(client, source, OLD, "a") == 202
    update_source(source, name="hook", config={}, enabled=True, secret=NEW)
    db.session.commit()
    assert _post(client, source, NEW, "b") == 202  # the first request after the change
    update_source(source, name="hook", config={}, enabled=False)
    db.session.commit()
    assert _post(client, source, NEW, "c") == 404  # now cached as unknown
    update_source(source, name="hook", config={}, enabled=True)
    db.session.commit()
    assert _post(client, source, NEW, "d") == 202
    assert _events() == 3


def test_a_source_disabled_between_lookup_and_insert_stores_nothing(
    client: FlaskClient, db_url: str
) -> None:
    """The race the cache could lose: the source is read (cached), then disabled by someone
    else before the event's INSERT runs. The INSERT checks the configuration epoch itself.
    (The change is made as the request's transaction begins: the cached source is then served
    without any read, so the INSERT is the first statement to see the change.)"""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite: the request holds the write lock, no one can change it meanwhile")
    source = _source()
    assert _post(client, source, OLD, "a") == 202
    engine = intake_engine()
    assert engine is not None
    url, source_id = admin_url(), source.id

    def disable_first(conn: Any) -> None:
        if not fired:
            fired.append(True)
            with psycopg.connect(url, autocommit=True) as other:
                other.execute("UPDATE event_source SET enabled = false WHERE id = %s", (source_id,))

    fired: list[bool] = []
    event.listen(engine, "begin", disable_first)
    try:
        assert _post(client, source, OLD, "b") == 404
    finally:
        event.remove(engine, "begin", disable_first)
    assert fired
    assert _events() == 1


def test_a_dropped_pooled_connection_costs_the_sender_nothing(
    client: FlaskClient, db_url: str
) -> None:
    """No pre-ping on the webhook's pool: a connection the server dropped is found dead by the
    first statement, and the request runs again on a fresh one (stored once)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to drop the connection")
    source = _source()
    assert _post(client, source, OLD, "a") == 202
    engine = intake_engine()
    assert engine is not None
    with engine.connect() as conn:  # the one pooled connection the next request will get
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        conn.rollback()
    assert isinstance(pid, int)
    terminate(pid)
    assert _post(client, source, OLD, "b") == 202
    assert _events() == 2
    with psycopg.connect(admin_url()) as check:
        assert check.execute("SELECT count(*) FROM event").fetchone() == (2,)
