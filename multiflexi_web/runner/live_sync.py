"""Live syncs off the job threads: one thread per executor writes running jobs' output and
heartbeats (and reads their cancel flags).

Why not on the job's own thread: that thread also watches the job's process. While it waited for
a sync's commit (a busy database, a slow disk, an outage), a job that ended went unnoticed, and
unjournaled: an executor killed then had a finished job reaped as lost and run again. With the
syncs here, a job thread only ever waits for its process, so the exit entry follows the exit
within the same pass of its loop (docs/architecture.md, "Finishes are never dropped").

Each job has at most one sync under way (JobRun keeps the later output until it is done), so a
sync never overtakes an earlier one of the same job. One thread is enough: a sync is a single
short transaction and only jobs running longer than SYNC_FIRST make them.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from flask import Flask

log = logging.getLogger("multiflexi.executor")
CLOSE_WAIT = 5.0  # how long a stopping executor waits for the syncs already queued


class LiveSync:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, work: Callable[[], None]) -> bool:
        """Queue one job's sync; False once closed (the caller then syncs on its own thread)."""
        with self._lock:
            if self._closed:
                return False
            if self._thread is None:  # started by the first long job: short ones never sync
                self._thread = threading.Thread(target=self._loop, name="live-sync", daemon=True)
                self._thread.start()
            self._queue.put(work)
        return True

    def close(self, timeout: float = CLOSE_WAIT) -> None:
        """Run what is queued, then end the thread (a daemon: a hung sync cannot hold the exit)."""
        with self._lock:
            self._closed = True
            thread = self._thread
            self._queue.put(None)
        if thread is not None:
            thread.join(timeout)

    def _loop(self) -> None:
        with self.app.app_context():  # its own session, kept for the thread's life
            while (work := self._queue.get()) is not None:
                try:
                    work()
                except Exception:  # a sync catches its own: this is a bug, not an outage
                    log.exception("action=live_sync_error")
