"""Daemons wake when new work is committed: NOTIFY on PostgreSQL, a doorbell FIFO on SQLite."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from multiflexi_web.db import doorbell
from multiflexi_web.db.listen import start_listener
from multiflexi_web.extensions import db
from multiflexi_web.services.jobs import transitions as jobs
from tests.executor_support import shell_rt

WAIT = 60.0  # an upper bound for a loaded machine; each wait returns as soon as the event is set


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_committed_job_wakes_every_listener(app: Flask, db_url: str, stop: threading.Event) -> None:
    rt = shell_rt("true")
    wakes = [threading.Event(), threading.Event()]  # two in one process: an in-process drain
    for wake in wakes:
        start_listener(db_url, jobs.NOTIFY_CHANNEL, wake, stop)
        assert wake.wait(WAIT)  # listening: it wakes once at start for what came before
        wake.clear()
    jobs.enqueue(rt, schedule_type="adhoc-cli")
    db.session.commit()
    # Only the listeners set these events (no poll here): the commit itself woke them.
    assert all(wake.wait(WAIT) for wake in wakes)


def test_a_submitted_job_wakes_every_listener(
    app: Flask, db_url: str, stop: threading.Event
) -> None:
    rt = shell_rt("true")
    db.session.commit()
    wake = threading.Event()
    start_listener(db_url, jobs.NOTIFY_CHANNEL, wake, stop)
    assert wake.wait(WAIT)
    wake.clear()
    jobs.submit(rt.id, schedule_type="adhoc-cli")  # its own commit: nobody else commits here
    assert wake.wait(WAIT)


@pytest.fixture
def fifo(app: Flask, db_url: str) -> Iterator[int]:
    """A doorbell FIFO read by the test itself (SQLite), so each ring can be counted."""
    place = doorbell.folder(db_url)
    if place is None:
        pytest.skip("doorbells are SQLite's; PostgreSQL has NOTIFY")
    place.mkdir(exist_ok=True)
    path = place / f"{jobs.NOTIFY_CHANNEL}.{os.getpid()}.fifo"
    os.mkfifo(path, 0o600)
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    yield fd
    os.close(fd)


def rings(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


def test_a_rolled_back_enqueue_rings_nobody(app: Flask, fifo: int) -> None:
    rt = shell_rt("true")
    jobs.enqueue(rt, schedule_type="adhoc-cli")
    db.session.rollback()
    assert rings(fifo) == b""
    jobs.enqueue(rt, schedule_type="adhoc-cli")
    jobs.enqueue(rt, schedule_type="adhoc-cli")
    db.session.commit()
    assert rings(fifo) == b"\0"  # once per commit, however many jobs it holds


def test_a_doorbell_without_a_reader_is_removed(app: Flask, db_url: str, fifo: int) -> None:
    place = doorbell.folder(db_url)
    assert place is not None
    dead = place / f"{jobs.NOTIFY_CHANNEL}.999999999.fifo"  # its daemon died untidily
    os.mkfifo(dead, 0o600)
    jobs.enqueue(shell_rt("true"), schedule_type="adhoc-cli")
    db.session.commit()
    assert not dead.exists()
    assert rings(fifo) == b"\0"  # the live one still rang


def test_doorbells_are_for_sqlite_files_only(tmp_path: Path) -> None:
    assert doorbell.folder(f"sqlite:///{tmp_path}/x.db") == Path(f"{tmp_path}/x.db-wake")
    assert doorbell.folder("sqlite:///:memory:") is None
    assert doorbell.folder("postgresql+psycopg://u@h/db") is None
