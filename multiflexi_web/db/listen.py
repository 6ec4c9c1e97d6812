"""PostgreSQL LISTEN: wake a daemon's loop the moment a NOTIFY on its channel is committed."""

from __future__ import annotations

import logging
import threading

from multiflexi_web.errors import first_line

log = logging.getLogger("multiflexi.daemon")


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def start_listener(
    url: str, channel: str, wake: threading.Event, stop: threading.Event
) -> threading.Thread:
    """A thread that sets `wake` on every NOTIFY of `channel` until `stop` is set."""
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
