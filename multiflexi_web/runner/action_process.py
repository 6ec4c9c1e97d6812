"""The action dispatcher in a child process of the executor, at a lower CPU priority.

Why a process: deliveries share nothing with job handling but the database, yet as threads of
the executor they share its interpreter lock. On a CPU-bound host every delivery's Python
(building the request, recording the attempt) then delays the job threads' own, and one WebHook
per job halved the executor's throughput (`bench/actions.py --parts overhead`: 0.53 of the
figure without actions, on PostgreSQL). A child forked at start-up, niced below the executor
(MULTIFLEXI_ACTION_NICE), has its own interpreter and takes the CPU the jobs leave: under
saturation deliveries lag behind and catch up, never the jobs; the kernel's fair scheduler still
gives the child its share, so deliveries never starve.

It is forked before the executor starts any thread or opens any connection, so it inherits
nothing half-locked; it shares the parent's memory copy-on-write. One pipe runs parent to child,
written in order by one thread of the executor (so no finisher ever waits on it): the lease
owner (the executor's worker id) once the executor is registered, then one byte per nudge (the
finisher queued pending runs: deliver now), `h` and a length-prefixed pickle of the runs its
finishes queued claimed for the child, with what their deliveries read (runner/actions.py
Handed), `d` to deliver everything due before stopping (`--drain`), and end-of-file to stop.
The child is part of the executor: it is killed when the executor dies however it dies (its
runs are left to their leases, as a thread's would be), and if the child dies first,
deliveries go on in a thread of the executor (logged as an error), which also takes the
handed runs the child never read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle  # nosec B403 - frames from the parent process only, over a private pipe
import select
import signal
import struct
import sys
import threading
from collections import deque
from types import FrameType
from typing import BinaryIO

from flask import Flask
from sqlalchemy.orm import configure_mappers

from multiflexi_web.extensions import db
from multiflexi_web.runner import guard
from multiflexi_web.runner.actions import Dispatcher, Handed, receive_handed, track
from multiflexi_web.security.process import die_with_parent
from multiflexi_web.services.actions.settings import ActionSettings

log = logging.getLogger("multiflexi.actions")
NUDGE, DRAIN, HANDED = b"n", b"d", b"h"
# Writes waiting for the child, at most, while finishes still hand runs over: a child that does
# not read (stopped, or far behind) must not grow the executor's memory; past this the
# finishes queue their runs pending, for any dispatcher to claim.
QUEUED_MAX = 256
_LENGTH = struct.Struct(">I")


class ActionProcess:
    """The executor's handle on its delivery child (or, once that died, its fallback thread)."""

    def __init__(
        self, app: Flask, settings: ActionSettings, pid: int, pipe: int, stopping: threading.Event
    ) -> None:
        self.app, self.s, self.pid, self.pipe = app, settings, pid, pipe
        self.stopping = stopping  # the executor's stop: the child stops too (same signal)
        self.owner_id: int | None = None
        self.exited = threading.Event()
        self.status: int | None = None
        self._closing = False
        self._fallback: Dispatcher | None = None
        self._lock = threading.Lock()
        # What the writer thread sends, in order (None: close the pipe), each with the handed
        # runs it carries; those never written when the child died go to the fallback.
        self._out: deque[tuple[bytes | None, list[Handed]]] = deque()
        self._orphans: list[Handed] = []
        self._nudge_queued = False
        self._writing = False  # the writer thread is writing outside the lock
        self._ready = threading.Condition(self._lock)
        os.set_blocking(pipe, False)  # a finisher never waits on the child: see _send
        self._writer = threading.Thread(target=self._write, name="actions-pipe", daemon=True)

    @classmethod
    def fork(cls, app: Flask, settings: ActionSettings, stopping: threading.Event) -> ActionProcess:
        """Fork the child now: call before any thread starts or connection opens."""
        if threading.active_count() > 1:  # a fork would inherit locks other threads hold
            raise RuntimeError("the action process must be forked before any thread starts")
        # Mapped classes configured once, here: else each process configures them on its first
        # query (~55 ms of CPU), and the child's copy is private memory instead of shared pages.
        configure_mappers()
        parent = os.getpid()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; tests see it through its deliveries
            os.close(write)
            code = 1
            try:
                code = _child(app, settings, read, parent)
            except BaseException as exc:
                log.exception("action=dispatch_process_failed error=%r", exc)
            finally:
                logging.shutdown()
                os._exit(code)
        os.close(read)
        handle = cls(app, settings, pid, write, stopping)
        threading.Thread(target=handle._watch, name="actions-child", daemon=True).start()
        handle._writer.start()
        track(handle)
        return handle

    def start(self, owner_id: int) -> None:
        """The executor is registered: the child may claim runs under its worker id, and
        the executor's finishes queue runs claimed for it (receive_handed)."""
        with self._lock:
            self.owner_id = owner_id
            self._send(f"{owner_id}\n".encode())
            self._take_over()
        receive_handed(self)
        log.info("action=dispatch_process_started pid=%s nice=+%s", self.pid, self.s.nice)

    def owner(self) -> int | None:
        """The worker id runs may be queued claimed by: while the child (or its fallback)
        takes them."""
        with self._lock:
            if self._closing or (self.exited.is_set() and self._fallback is None):
                return None
            if self._fallback is None and len(self._out) >= QUEUED_MAX:
                return None  # the child is not reading: runs wait in the database meanwhile
            return self.owner_id

    def hand_over(self, items: list[Handed]) -> None:
        with self._lock:
            fallback = self._fallback
            if fallback is None and not self._closing and not self.exited.is_set():
                frame = pickle.dumps(items, pickle.HIGHEST_PROTOCOL)
                self._send(HANDED + _LENGTH.pack(len(frame)) + frame, items)
                return
        if fallback is not None:
            fallback.hand_over(items)
        # else: stopping; the runs are any dispatcher's once their leases lapse

    def nudge(self) -> None:
        with self._lock:
            fallback = self._fallback
            live = fallback is None and not self._closing and not self.exited.is_set()
            if live and not self._nudge_queued:  # one queued nudge says it all
                self._send(NUDGE)
        if fallback is not None:
            fallback.nudge()

    def close(self, *, drain: bool = False, hard: bool = False) -> None:
        """Stop the child (after it delivered everything due, with `drain`) and wait for it;
        `hard`: kill it at once (its runs are retried once their leases expire)."""
        receive_handed(None)
        with self._lock:
            self._closing = True
            fallback = self._fallback
            if hard:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
            elif drain:
                self._send(DRAIN)
            self._out.append((None, []))  # the writer closes the pipe once the rest is written
            self._ready.notify()
        # In-flight deliveries end within their attempt timeout; then it is killed.
        if not self.exited.wait(self.s.timeout + 30):
            log.error("action=dispatch_process_killed pid=%s reason=stop timed out", self.pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.exited.wait()
        if fallback is not None:
            if drain:
                fallback.drain()
            fallback.close()

    def _send(self, data: bytes, items: list[Handed] | None = None) -> None:
        """Write now if nothing waits before it and the pipe takes it whole (the common case:
        no thread switch), else queue it, or its rest, for the writer thread (lock held)."""
        if not self._out and not self._writing:
            try:
                data = data[os.write(self.pipe, data) :]
            except BlockingIOError:
                pass
            except OSError as exc:  # it died: the fallback takes these runs
                log.debug("action=dispatch_process_unreachable error=%r", exc)
                self._orphans += items or []
                self._take_over()
                return
            if not data:
                return
        self._out.append((data, items or []))
        self._nudge_queued = self._nudge_queued or data == NUDGE
        self._ready.notify()

    def _write(self) -> None:
        """The writer thread: what _send could not write at once, in order, waiting for room
        in the pipe (the child reads it on a thread of its own); the pipe is closed at the
        end."""
        waiter = select.poll()
        waiter.register(self.pipe, select.POLLOUT)
        while True:
            with self._lock:
                while not self._out:
                    self._ready.wait()
                data, items = self._out.popleft()
                self._writing = data is not None
                if data == NUDGE:
                    self._nudge_queued = False
            if data is None:
                break
            try:
                view = memoryview(data)
                while view:
                    try:
                        view = view[os.write(self.pipe, view) :]
                    except BlockingIOError:
                        waiter.poll()
            except OSError as exc:  # it died: the runs never written whole go to the fallback
                log.debug("action=dispatch_process_unreachable error=%r", exc)
                with self._lock:
                    self._orphans += items + [h for _, queued in self._out for h in queued]
                    self._out.clear()
                    self._writing = False
                    self._take_over()
                break
            with self._lock:
                self._writing = False
        with contextlib.suppress(OSError):
            os.close(self.pipe)

    def _watch(self) -> None:
        _, status = os.waitpid(self.pid, 0)
        with self._lock:
            self.status = os.waitstatus_to_exitcode(status)
            self.exited.set()
            self._take_over()

    def _take_over(self) -> None:
        """The child died while the executor goes on: deliver in a thread from now on."""
        if not self.exited.is_set() or self._closing or self.stopping.is_set():
            return
        if self.owner_id is None:
            return  # start() takes over once the executor is registered
        if self._fallback is None:
            log.error(
                "action=dispatch_process_lost pid=%s exit=%s fallback=thread",
                self.pid, self.status,
            )  # fmt: skip
            self._fallback = Dispatcher(self.app, self.owner_id, self.s, threading.Event())
            self._fallback.start()
        if self._orphans:
            self._fallback.hand_over(self._orphans)
            self._orphans = []


def _child(app: Flask, settings: ActionSettings, pipe: int, parent: int) -> int:
    die_with_parent(signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above took effect
        return 1
    os.nice(settings.nice)
    stopped = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopped.set()  # the executor's stop: finish what is in flight, claim nothing more

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with app.app_context():
        db.engine.dispose(close=False)  # never share a pooled connection with the parent
    owner = _read_owner(pipe)
    if owner is None:  # the executor ended before it registered
        return 0
    guard.start_on_first_use()  # a CustomCommand dies with this process, however it dies
    dispatcher = Dispatcher(app, owner, settings, threading.Event()).start()
    drain = threading.Event()
    reader = threading.Thread(
        target=_read_commands, args=(pipe, dispatcher, drain, stopped), daemon=True
    )
    reader.start()
    stopped.wait()
    if drain.is_set():
        dispatcher.drain()
    dispatcher.close()
    guard.stop()
    sys.stderr.flush()
    return 0


def _read_owner(pipe: int) -> int | None:
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(pipe, 1)
        if not chunk:
            return None
        line += chunk
    return int(line)


def _read_commands(
    pipe: int, dispatcher: Dispatcher, drain: threading.Event, stopped: threading.Event
) -> None:
    with open(pipe, "rb", buffering=65536, closefd=False) as stream:
        while command := stream.read(1):
            if command == HANDED:
                (size,) = _LENGTH.unpack(_exactly(stream, _LENGTH.size))
                dispatcher.hand_over(pickle.loads(_exactly(stream, size)))  # noqa: S301
            elif command == DRAIN:
                drain.set()
            elif command == NUDGE:
                dispatcher.nudge()
    stopped.set()  # end of file: the executor stops (or died, and this process with it)


def _exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:  # the executor died mid-frame: this process dies with it
        raise EOFError("the executor's pipe ended inside a frame")
    return data
