"""Helpers for action tests: a real HTTP peer on loopback that records what it received."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models.action import ActionRun
from multiflexi_web.runner.actions import Dispatcher
from multiflexi_web.services.actions.settings import ActionSettings

FAST = ActionSettings(
    timeout=2.0, backoff=0.01, backoff_max=0.05, lease=30.0, threads=2, record_linger=0.0
)


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Peer:
    """Answers each POST with answer(n) -> (status, body); n counts from 0."""

    answer: Callable[[int], tuple[int, str]] = lambda n: (200, "ok")
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    hang: threading.Event | None = None  # set: never answer until it is set again

    def keys(self) -> list[str]:
        with self.lock:
            return [h.headers.get("Idempotency-Key", "") for h in self.hits]


@contextmanager
def http_peer(peer: Peer | None = None) -> Iterator[Peer]:
    peer = peer or Peer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with peer.lock:
                n = len(peer.hits)
                peer.hits.append(Hit(self.path, dict(self.headers.items()), body))
            if peer.hang is not None:
                peer.hang.wait(30)
            status, text = peer.answer(n)
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        peer.url = f"{url}/hook"
        try:
            yield peer
        finally:
            if peer.hang is not None:
                peer.hang.set()


@contextmanager
def serving(
    handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None
) -> Iterator[str]:
    """A threaded loopback HTTP server for `handler` (HTTPS with `tls`): its base URL while
    the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:  # a refused handshake fails that accept only (socketserver's OSError)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def open_runs() -> int:
    db.session.rollback()
    return (
        db.session.scalar(
            select(func.count()).where(ActionRun.status.in_(("pending", "retrying", "running")))
        )
        or 0
    )


def dispatch_all(
    app: Flask, settings: ActionSettings = FAST, owner: int = 0, deadline: float = 60
) -> int:
    """Deliver every run in this process, retries included, until none is open; claims made."""
    db.session.commit()
    d = Dispatcher(app, owner, settings, threading.Event())
    total, end = 0, time.monotonic() + deadline
    try:
        while time.monotonic() < end:
            n = d.tick()
            total += n
            if not n and not d.busy() and not open_runs():
                return total
            if not n:
                time.sleep(0.01)  # deliveries under way, or a retry's backoff still running
        raise AssertionError(f"action runs still open after {deadline}s")
    finally:
        assert d.pool.shutdown(60) == []
        db.session.rollback()
