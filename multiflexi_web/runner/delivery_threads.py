"""The action dispatcher's delivery threads: a pool whose threads never hold up an exit.

ThreadPoolExecutor's threads are joined when the interpreter exits, and its shutdown waits for
every call without a bound. A delivery stuck where no timeout reaches (a plug-in blocked for
good) then kept an executor that delivers in its own process (after its delivery process died)
from ever stopping. Here the threads are daemons and shutdown() waits at most a given time:
a call still under way after it is abandoned, and its run is left to its lease, as a killed
process's would be (another executor, or this one restarted, retries it).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import ParamSpec

log = logging.getLogger("multiflexi.actions")
P = ParamSpec("P")


class DeliveryThreads:
    """Up to `size` daemon threads, started as calls need them (an idle executor keeps none
    beyond the first ones used), running submitted calls in order of submission."""

    def __init__(self, size: int, name: str) -> None:
        self.size, self.name = size, name
        self._calls: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a call
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name}: submit after shutdown")
            if self._idle:
                self._idle -= 1  # taken by this call
            elif len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            self._calls.put(functools.partial(fn, *args, **kwargs))

    def shutdown(self, timeout: float) -> list[str]:
        """Let the calls queued so far run, waiting at most `timeout` seconds for them; the
        names of the threads still in a call then (abandoned)."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._calls.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in threads if t.is_alive()]

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            try:
                call()
            except Exception:  # a call's own bug: this thread stays for the next ones
                log.exception("action=delivery_thread_failed")
            with self._lock:
                self._idle += 1
