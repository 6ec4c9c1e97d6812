"""The webhook view's database connections: a plain Core connection, never the ORM session.

Through the app's session a request paid for its bookkeeping (connection lookup, transaction
state, commit, teardown): on SQLite 0.55-0.66 of the bare-endpoint floor, 0.83-0.89 with a
connection of its own (bench/events.py, same run). On SQLite that connection comes from the
app's engine, begun IMMEDIATE (a writer from the start). On PostgreSQL the webhook has a pool of
its own without pre-ping: the portal's pool pings every connection it hands out, two round trips
(BEGIN, SELECT 1) before a webhook's one INSERT (0.51-0.63 of the floor with it, 0.76-0.78
without). Like the daemons, the view instead runs its unit of work again once on a fresh
connection when the first turns out dead: a dropped connection fails on its first statement,
before anything is committed, so running again cannot store an event twice.
"""

from __future__ import annotations

from flask import Flask, current_app
from sqlalchemy import Engine, create_engine

from multiflexi_web.db.engine import SQLITE_BEGIN_OPTION, engine_options
from multiflexi_web.extensions import db

_KEY = "multiflexi.webhook_engine"


def intake_engine() -> Engine:
    """The running app's webhook engine (created on first use, so after gunicorn's fork)."""
    engine = current_app.extensions.get(_KEY)
    if engine is None:
        url: str = current_app.config["SQLALCHEMY_DATABASE_URI"]
        if url.startswith("postgresql"):
            options = engine_options(url, pre_ping=False, application_name="multiflexi-webhook")
            engine = create_engine(url, **options)
        else:
            # The app's pool; every transaction on it begins IMMEDIATE.
            engine = db.engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        engine = current_app.extensions.setdefault(_KEY, engine)
    assert isinstance(engine, Engine)  # noqa: S101 - only this module sets it
    return engine


def dispose(app: Flask) -> None:
    """Close the webhook pool's connections (an app that goes away before its process: tests)."""
    engine = app.extensions.pop(_KEY, None)
    if isinstance(engine, Engine) and engine.dialect.name == "postgresql":
        engine.dispose()
