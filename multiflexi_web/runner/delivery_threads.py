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
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import ParamSpec

log = logging.getLogger("multiflexi.actions")
P = ParamSpec("P")


class _Worker:
    """A thread's slot: the call it is given, and the gate it waits at while idle."""

    __slots__ = ("call", "gate")

    def __init__(self, call: Callable[[], object]) -> None:
        self.call: Callable[[], object] | None = call
        self.gate = threading.Lock()
        self.gate.acquire()  # closed: released when a call (or the stop) is given


class DeliveryThreads:
    """Up to `size` daemon threads, started as calls need them (an idle executor keeps none
    beyond the first ones used), running submitted calls in order of submission.

    A call goes to the thread that became idle last: with a fast peer one or two threads do
    all the work, their connections to it kept open and their memory warm, instead of every
    thread waking in turn (the pool's CPU per WebHook fell by about a third on this 2-core
    machine, bench/dispatch_cpu.py --trickle)."""

    def __init__(self, size: int, name: str) -> None:
        self.size, self.name = size, name
        self._idle: list[_Worker] = []  # the one that became idle last at the end
        self._queued: deque[Callable[[], object]] = deque()  # waiting for a free thread
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> None:
        call = functools.partial(fn, *args, **kwargs)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name}: submit after shutdown")
            if self._idle:
                worker = self._idle.pop()
                worker.call = call
                worker.gate.release()
            elif len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._work,
                    args=(_Worker(call),),
                    name=f"{self.name}_{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._queued.append(call)

    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    def shutdown(self, timeout: float) -> list[str]:
        """Let the calls queued so far run, waiting at most `timeout` seconds for them; the
        names of the threads still in a call then (abandoned)."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.call = None
            worker.gate.release()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in threads if t.is_alive()]

    def _work(self, worker: _Worker) -> None:
        call = worker.call
        while call is not None:
            try:
                call()
            except Exception:  # a call's own bug: this thread stays for the next ones
                log.exception("action=delivery_thread_failed")
            with self._lock:
                if self._queued:
                    call = self._queued.popleft()
                    continue
                if self._closed:
                    return
                worker.call = None
                self._idle.append(worker)
            worker.gate.acquire()
            call = worker.call
