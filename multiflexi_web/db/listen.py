"""Waking a daemon the moment new work is committed: LISTEN/NOTIFY on PostgreSQL, doorbells
(db/doorbell.py) on SQLite."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import text

from multiflexi_web.db import doorbell
from multiflexi_web.errors import first_line
from multiflexi_web.extensions import db

log = logging.getLogger("multiflexi.daemon")


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def announce(channel: str) -> None:
    """In a unit of work that adds work for `channel`: its listeners wake once it commits
    (NOTIFY is transactional on PostgreSQL; on SQLite a doorbell rings after the commit)."""
    session = db.session()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {channel}"))
    else:
        doorbell.ring_on_commit(session, channel)


def start_listener(
    url: str, channel: str, wake: threading.Event, stop: threading.Event
) -> threading.Thread | None:
    """A thread that sets `wake` on every NOTIFY (or SQLite doorbell ring) of `channel` until
    `stop` is set; None when there is nothing to listen on (the caller's poll remains)."""
    if url.startswith("sqlite"):
        return doorbell.listen(url, channel, wake, stop)
    thread = threading.Thread(
        target=_listen, args=(libpq_url(url), channel, wake, stop), name="listen", daemon=True
    )
    thread.start()
    return thread


def _listen(url: str, channel: str, wake: threading.Event, stop: threading.Event) -> None:
    import psycopg  # here, not at the top: a daemon on SQLite never loads it (~24 MiB)

    while not stop.is_set():
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f"LISTEN {channel}")
                wake.set()  # anything committed while we were not listening
                while not stop.is_set():
                    for _ in conn.notifies(timeout=1.0, stop_after=1):
                        wake.set()
        except psycopg.Error as exc:
            log.warning("action=listen_failed channel=%s error=%s", channel, first_line(exc))
            stop.wait(2.0)  # the loop's own retry reports the outage too
