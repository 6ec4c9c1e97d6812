"""The webhook view's database connection: on PostgreSQL its own pool without pre-ping.

The portal's pool pings every connection it hands out (pool_pre_ping): on PostgreSQL that is
two round trips (BEGIN, SELECT 1) before a webhook's one INSERT, and measured 0.5-0.6 of the
bare-endpoint floor instead of 0.76-0.78 without it (bench/events.py). The webhook instead runs
on a pool of its own without the ping and, as the daemons do, retries its unit of work once on a
fresh connection when the first one turns out dead: a dropped connection fails on its first
statement, before anything is committed, so running again cannot store an event twice.

SQLite keeps the session's connection: a ping is a function call there, and the request shares
its transaction with whatever else the app context holds (tests read their writes through it).
"""

from __future__ import annotations

from flask import Flask, current_app
from sqlalchemy import Engine, create_engine

from multiflexi_web.db.engine import engine_options

_KEY = "multiflexi.webhook_engine"


def intake_engine() -> Engine | None:
    """The running app's webhook pool (created on first use, so after gunicorn's fork);
    None on SQLite (the view uses the session)."""
    engine = current_app.extensions.get(_KEY)
    if engine is not None:
        assert isinstance(engine, Engine)  # noqa: S101 - only this module sets it
        return engine
    url: str = current_app.config["SQLALCHEMY_DATABASE_URI"]
    if not url.startswith("postgresql"):
        return None
    options = engine_options(url, pre_ping=False, application_name="multiflexi-webhook")
    engine = current_app.extensions.setdefault(_KEY, create_engine(url, **options))
    assert isinstance(engine, Engine)  # noqa: S101 - only this module sets it
    return engine


def dispose(app: Flask) -> None:
    """Close the pool's connections (an app that goes away before its process: tests)."""
    engine = app.extensions.pop(_KEY, None)
    if isinstance(engine, Engine):
        engine.dispose()
