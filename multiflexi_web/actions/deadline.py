"""A deadline for a whole request: the socket is shut down when it passes.

A socket timeout bounds each read, not a request: a peer that drips its answer (a byte every
few seconds) kept a delivery thread for as long as it went on, and with enough such peers one
tenant held every delivery thread of an executor. One watchdog thread per process keeps the
deadlines of the requests under way; at a deadline it shuts the request's socket down, the
blocked read ends, and the request fails as timed out.

The socket is shut down, never closed: its owner is still using the file descriptor, and a
closed one could be reused by another thread's new socket meanwhile.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_CURRENT = threading.local()  # this thread's Deadline while a request is bounded


class Deadline:
    """One bounded request: the sockets it uses are shut down once it is over time."""

    def __init__(self, at: float) -> None:
        self.at = at  # monotonic
        self.fired = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        """`sock` carries this request (a new connection, or a kept one reused)."""
        if sock is None:
            return
        with self._lock:
            self._socks.append(sock)
            if self.fired:
                _shut(sock)

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._socks:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, not SSLSocket's: that one also drops the TLS object the
    # reading thread is using, whose next access then fails with a ValueError instead of an
    # end of stream.
    with contextlib.suppress(OSError):  # closed or never connected: nothing to stop
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._count = itertools.count()
        self._thread: threading.Thread | None = None
        self._wakes_at = math.inf  # when the thread looks at the heap next, by itself

    def arm(self, deadline: Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline.at, next(self._count), deadline))
            if self._thread is None or not self._thread.is_alive():  # a fork leaves none
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            elif deadline.at < self._wakes_at:
                # Only a deadline before the thread's next look needs it woken. Requests made
                # one after another each end after the last one's deadline was set: woken per
                # request, it was a thread switch per delivery (~0.06 ms of CPU a POST).
                self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._heap:
                    self._wakes_at = math.inf
                    self._cond.wait()
                    continue
                at, _, deadline = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._wakes_at = at
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                deadline.fire()

    def disarm(self, deadline: Deadline) -> None:
        with self._cond:
            for i, entry in enumerate(self._heap):
                if entry[2] is deadline:
                    self._heap[i] = self._heap[-1]
                    self._heap.pop()
                    if i < len(self._heap):
                        heapq.heapify(self._heap)
                    return


_WATCHDOG = _Watchdog()


@contextmanager
def bounded(seconds: float) -> Iterator[Deadline]:
    """Bound the requests this thread makes inside the block to `seconds` as a whole: the
    sockets attached meanwhile (attach(), or a guarded urllib3 connection) are shut down when
    the time is up. Check `fired` to tell that end from another failure."""
    deadline = Deadline(time.monotonic() + seconds)
    _WATCHDOG.arm(deadline)
    _CURRENT.deadline = deadline
    try:
        yield deadline
    finally:
        _CURRENT.deadline = None
        _WATCHDOG.disarm(deadline)


def attach(sock: socket.socket | None) -> None:
    """`sock` carries a request of this thread: bounded by its deadline, if one is running."""
    deadline: Deadline | None = getattr(_CURRENT, "deadline", None)
    if deadline is not None:
        deadline.attach(sock)
