"""Daemon runtime pieces that need no daemon: systemd notify and the DB retry loop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.exc import OperationalError

from daemons.runtime import Runtime
from daemons.sdnotify import notify
from multiflexi_web.memory import DAEMON_ARENAS

ROOT = Path(__file__).resolve().parent.parent


def test_notify_sends_datagram(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify("READY=1")
        assert server.recv(64) == b"READY=1"


def test_notify_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_retry_db_waits_out_connection_errors(app: Flask) -> None:
    rt = Runtime("test", app)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("SELECT 1", {}, Exception("could not connect to server"))
        return "ok"

    assert rt.retry_db(flaky, max_wait=0.01) == "ok"
    assert len(calls) == 3


def test_retry_db_reraises_other_errors(app: Flask) -> None:
    rt = Runtime("test", app)

    def broken() -> None:
        raise OperationalError("SELECT x", {}, Exception("no such column: x"))

    with pytest.raises(OperationalError):
        rt.retry_db(broken)


def test_worker_registration_and_beat(app: Flask) -> None:
    from multiflexi_web.extensions import db
    from multiflexi_web.models import Worker

    rt = Runtime("test", app)
    wid = rt.register()
    before = db.session.get(Worker, wid)
    assert before is not None and before.status == "running"
    first_beat = before.heartbeat_at
    rt.stop.set()
    rt.beat()
    db.session.rollback()  # end the read snapshot (SQLite WAL) so the beat is visible
    after = db.session.get(Worker, wid)
    assert after is not None and after.status == "stopping" and after.heartbeat_at >= first_beat
    rt.unregister()
    db.session.rollback()  # end the read snapshot (SQLite WAL) so the beat is visible
    done = db.session.get(Worker, wid)
    assert done is not None and done.status == "stopped" and done.stopped_at is not None


# Six threads each take malloc memory at once, then glibc lists its arenas on stderr.
ARENAS_PROBE = """
import ctypes, threading
from multiflexi_web.memory import limit_malloc_arenas
print(limit_malloc_arenas())
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
together = threading.Barrier(6)
def take():
    together.wait()
    libc.malloc(200_000)
    together.wait()
threads = [threading.Thread(target=take) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
libc.malloc_stats()
"""


@pytest.mark.parametrize(("env", "applied"), [({}, True), ({"MALLOC_ARENA_MAX": "8"}, False)])
def test_daemon_caps_malloc_arenas(env: dict[str, str], applied: bool) -> None:
    base = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", ARENAS_PROBE],
        env=base | env | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    arenas = sum(line.startswith("Arena ") for line in out.stderr.splitlines())
    assert out.stdout.strip() == str(applied)
    # Capped: the main arena and one more; the operator's MALLOC_ARENA_MAX=8: one per thread.
    assert arenas <= DAEMON_ARENAS if applied else arenas > DAEMON_ARENAS
