"""PostgreSQL LISTEN: wake the executor the moment a job is committed (enqueue sends NOTIFY)."""

from __future__ import annotations

import logging
import threading

import psycopg

from multiflexi_web.services.jobs.transitions import NOTIFY_CHANNEL

log = logging.getLogger("multiflexi.daemon")


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def start_listener(url: str, wake: threading.Event, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(
        target=_listen, args=(libpq_url(url), wake, stop), name="listen", daemon=True
    )
    thread.start()
    return thread


def _listen(url: str, wake: threading.Event, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                wake.set()  # anything committed while we were not listening
                while not stop.is_set():
                    for _ in conn.notifies(timeout=1.0, stop_after=1):
                        wake.set()
        except psycopg.Error as exc:
            log.warning("daemon=executor action=listen_failed error=%s", str(exc).splitlines()[0:1])
            stop.wait(2.0)
