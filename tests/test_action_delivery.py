"""actions/delivery.py's kept connections: a thread reuses its recent connection to a peer,
never sends a cookie a peer set, and never shares a connection with another thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from multiflexi_web.actions import delivery
from tests.action_support import serving


@dataclass
class KeepAlivePeer:
    url: str = ""
    seen: list[tuple[int, str | None]] = field(default_factory=list)  # (client port, Cookie)

    def ports(self) -> set[int]:
        return {port for port, _ in self.seen}


@contextmanager
def keepalive_peer() -> Iterator[KeepAlivePeer]:
    """An HTTP/1.1 server that keeps connections open and sets a cookie on every answer."""
    peer = KeepAlivePeer()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            peer.seen.append((self.client_address[1], self.headers.get("Cookie")))
            self.send_response(200)
            self.send_header("Set-Cookie", "sid=from-the-peer; Path=/")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        peer.url = f"{url}/hook"
        yield peer


def _post(url: str) -> None:
    _, outcome = delivery.send(
        "POST", url, ok=[200], secrets=[], timeout=5, idempotency_key="k", data=b"{}"
    )
    assert outcome.ok, outcome


def _in_new_thread(url: str) -> None:
    thread = threading.Thread(target=_post, args=(url,))
    thread.start()
    thread.join(30)


def test_a_thread_reuses_its_connection_and_never_sends_a_peers_cookie(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(delivery, "KEEP_IDLE", 3600.0)
    with keepalive_peer() as peer:
        for _ in range(3):
            _post(peer.url)
    assert len(peer.ports()) == 1
    assert [cookie for _, cookie in peer.seen] == [None, None, None]


def test_a_connection_idle_too_long_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "KEEP_IDLE", -1.0)  # every kept connection counts as idle
    with keepalive_peer() as peer:
        for _ in range(3):
            _post(peer.url)
    assert len(peer.ports()) == 3


def test_threads_never_share_a_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "KEEP_IDLE", 3600.0)
    with keepalive_peer() as peer:
        _in_new_thread(peer.url)
        _in_new_thread(peer.url)
    assert len(peer.seen) == 2 and len(peer.ports()) == 2


def test_the_environments_proxy_is_used_and_netrc_is_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # Proxy settings are read once per kept session (not per request); ~/.netrc never adds
    # the daemon user's credentials to a delivery.
    (tmp_path / ".netrc").write_text("machine example.invalid login daemon password hunter2\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    seen: list[tuple[str, str | None]] = []

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Proxy) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        _in_new_thread("http://example.invalid/hook")
    assert seen == [("http://example.invalid/hook", None)]
