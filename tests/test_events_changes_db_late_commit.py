"""The changes-db source stores a change committed late, after a change with a higher
inversion was already read (concurrent inserts on the upstream database), and stores each
change once: with delete_processed every remaining row is read, without it a window below the
cursor is read again."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from sqlalchemy import create_engine, select, text

from multiflexi_web.extensions import db
from multiflexi_web.models import Event
from multiflexi_web.services.events.catalog import create_source, spec_of
from multiflexi_web.services.events.sink import DbSink
from multiflexi_web.sources import changes_db
from tests.conftest import PG_ADMIN_URL


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'multiflexi.db'}"


@pytest.fixture
def upstream_url():
    name = f"mf_late_up_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        pytest.skip("PostgreSQL not available")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("delete_processed", [True, False])
def test_a_change_committed_late_with_a_lower_inversion_is_not_skipped(
    app: Flask, upstream_url: str, delete_processed: bool
) -> None:
    engine = create_engine(upstream_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE changes_cache (inversion SERIAL PRIMARY KEY, evidence TEXT,"
                " operation TEXT, recordid INTEGER)"
            )
        )
    config = {"url": upstream_url, "delete_processed": delete_processed}
    source = create_source("abra", "changes-db", config)
    db.session.commit()
    sink = DbSink(app, source.id, threading.Event())

    # The webhook acceptor writes two changes in two concurrent transactions: the first takes
    # inversion 1 but commits after the second (inversion 2) has committed.
    slow = engine.connect()
    slow_tx = slow.begin()
    slow.execute(
        text("INSERT INTO changes_cache (evidence, operation, recordid) VALUES ('a','create',1)")
    )
    with engine.begin() as fast:
        fast.execute(
            text(
                "INSERT INTO changes_cache (evidence, operation, recordid) VALUES ('a','create',2)"
            )
        )
    assert changes_db.poll_once(spec_of(source), sink) == 1  # sees inversion 2 only
    slow_tx.commit()
    slow.close()
    changes_db.poll_once(spec_of(source), sink)
    changes_db.poll_once(spec_of(source), sink)  # both rows read again when kept: no repeat

    db.session.rollback()
    records = sorted(e.payload["recordid"] for e in db.session.scalars(select(Event)))
    with engine.connect() as conn:
        left = conn.execute(text("SELECT inversion FROM changes_cache")).scalars().all()
    engine.dispose()
    assert records == [1, 2], f"events for records {records}; rows left: {left}"
    assert len(left) == (0 if delete_processed else 2)
