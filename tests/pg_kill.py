"""Killing one PostgreSQL connection from outside (pg_terminate_backend), as an operator would."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from sqlalchemy import Connection

from multiflexi_web.extensions import db


def backend_pid(conn: Connection | None = None) -> int:
    """The server process of a connection (default: the app session's)."""
    raw: Any = (conn or db.session.connection()).connection.driver_connection
    return int(raw.info.backend_pid)


def admin_url() -> str:
    """The app's database as a plain psycopg URL (for a second, independent connection)."""
    return db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def terminate(pid: int, url: str | None = None) -> None:
    """Terminate the backend from a second connection and wait until it is gone."""
    url = url or admin_url()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            if row is None:
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} still alive 10 s after pg_terminate_backend")
