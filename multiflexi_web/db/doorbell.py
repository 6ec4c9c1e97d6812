"""SQLite's stand-in for LISTEN/NOTIFY: a FIFO per listening daemon beside the database file.

A daemon that waits for new work (the executor for jobs, the eventor for events) makes
`<database>-wake/<channel>.<pid>.<n>.fifo` and blocks reading it; a process that commits new work
writes one byte to every FIFO of that channel. Only processes on this host that may open the
database's folder can ring. A missed ring costs nothing but latency: the daemons keep a slow
poll as the fallback.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import select
import stat
import threading
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger("multiflexi.daemon")
_PENDING = "doorbell"  # session.info key: channels to ring once the transaction commits
_SERIAL = itertools.count()


def folder(url: str) -> Path | None:
    """The doorbells' folder of a SQLite file database; None for anything else."""
    if not url.startswith("sqlite:///") or ":memory:" in url:
        return None
    return Path(url.removeprefix("sqlite:///") + "-wake")


def ring_on_commit(session: Session, channel: str) -> None:
    """Ring `channel` when this session's transaction commits (never for a rolled-back one)."""
    session.info.setdefault(_PENDING, set()).add(channel)


def install() -> None:
    """Session hooks that ring after a commit; once per process, SQLite apps only."""
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)


def _after_commit(session: Session) -> None:
    channels = session.info.pop(_PENDING, None)
    if channels:
        place = folder(str(session.get_bind().engine.url))
        if place is not None:
            for channel in channels:
                ring(place, channel)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def ring(place: Path, channel: str) -> None:
    """One byte to every live listener of `channel`; a FIFO whose reader is gone is removed."""
    try:
        names = os.listdir(place)
    except OSError:
        return  # nobody has listened here yet
    prefix = channel + "."
    for name in names:
        if name.startswith(prefix) and name.endswith(".fifo"):
            _poke(place / name)


def _poke(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # no reader: its daemon died without tidying up
            with contextlib.suppress(OSError):
                path.unlink()
        return
    try:
        os.write(fd, b"\0")
    except BlockingIOError:
        pass  # full: the listener has rings it has not read yet, one more adds nothing
    finally:
        os.close(fd)


def listen(
    url: str, channel: str, wake: threading.Event, stop: threading.Event
) -> threading.Thread | None:
    """A thread that sets `wake` on every ring of `channel` until `stop` is set; None (the
    caller polls) when the database is not a SQLite file or the FIFO cannot be made."""
    place = folder(url)
    if place is None:
        return None
    # pid and a serial: two listeners of one process (tests, an in-process drain) never share.
    path = place / f"{channel}.{os.getpid()}.{next(_SERIAL)}.fifo"
    try:
        fd = _open_fifo(path)
    except OSError as exc:
        log.warning("action=doorbell_failed path=%s error=%s", path, exc)
        return None
    thread = threading.Thread(
        target=_wait_rings, args=(fd, path, wake, stop), name="doorbell", daemon=True
    )
    thread.start()
    return thread


def _open_fifo(path: Path) -> int:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by an earlier process with this pid
    os.mkfifo(path, 0o600)
    # Read-write: the FIFO always has a writer (this one), so reads block instead of seeing EOF
    # between two rings; rings find a reader for as long as this process lives.
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a FIFO", str(path))
    return fd


def _wait_rings(fd: int, path: Path, wake: threading.Event, stop: threading.Event) -> None:
    wake.set()  # anything committed before the FIFO existed (as LISTEN does on PostgreSQL)
    try:
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], 1.0)  # 1 s: notices `stop` soon enough
            if ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(fd, 4096)  # every ring so far, one wake for all of them
                wake.set()
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
