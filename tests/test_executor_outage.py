"""A database that goes away while jobs run: the executor retries and loses or repeats nothing."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.engine import make_url

from tests.executor_support import (
    job,
    log_text,
    output_of,
    schedule,
    shell_rt,
    show_logs,
    start_daemon,
    stop,
    wait_for,
)
from tests.sockets import hard_close

pytestmark = pytest.mark.slow


class Proxy:
    """A TCP forwarder to the database that can be cut (every connection dropped, none accepted)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            hard_close(s)

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for s in self.conns:
                hard_close(s)
            self.conns.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture(autouse=True)
def _logs_on_failure(tmp_path: Path) -> Iterator[None]:
    yield
    show_logs(tmp_path)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_database_outage_delays_but_never_loses_or_repeats(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    url = make_url(db_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    via_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    ran = tmp_path / "ran.txt"
    rt = shell_rt(f'echo "$MULTIFLEXI_JOB_ID" >> {ran}; sleep 2; echo done', overlap_policy="allow")
    [first] = schedule(rt)
    proc = start_daemon(via_proxy, tmp_path)
    try:
        # Its process wrote its id: the executor got the claim's reply and started it. The
        # status alone is "running" from the claim's commit on, and a cut between that commit
        # and its reply rightly leaves the job an orphan, reaped lost and retried (seen under
        # load), which is not what this test is about.
        wait_for(
            lambda: ran.exists() and str(first) in ran.read_text().split(), 20, "job 1 started"
        )
        proxy.cut()
        [second] = schedule(rt)  # enqueued while the executor cannot see the database
        time.sleep(5)
        assert job(first).status == "running"  # finished meanwhile, but not recorded yet
        proxy.restore()
        wait_for(
            lambda: job(first).status == job(second).status == "succeeded",
            40,
            "both jobs recorded after the outage",
            every=0.2,
        )
    finally:
        stop(proc)
        proxy.close()
    assert output_of(first) == b"done\n" and output_of(second) == b"done\n"
    assert sorted(int(x) for x in ran.read_text().split()) == [first, second]  # each ran once
    assert job(first).attempt == 1 and "db_retry" in log_text(tmp_path)
