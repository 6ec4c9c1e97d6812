"""actions/delivery.py's kept connections: a thread reuses its recent connection to a peer,
never sends a cookie a peer set, and never shares a connection with another thread; the direct
http.client path (actions/direct.py) and what it leaves to requests."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from multiflexi_web.actions import deadline, delivery, direct
from tests.action_peers import dripping_tcp, self_signed
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


def _closing_after_each_answer() -> type[BaseHTTPRequestHandler]:
    """Answers keep-alive (no Connection: close) yet closes the connection after each answer,
    as a peer's idle timeout does between two deliveries."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def test_a_kept_connection_the_peer_closed_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # Sent on the closed connection, the POST would fail after the peer may have read it.
    monkeypatch.setattr(delivery, "KEEP_IDLE", 3600.0)
    with serving(_closing_after_each_answer()) as url:
        for _ in range(3):
            _post(f"{url}/hook")
            time.sleep(0.05)  # the peer's close reaches this side (no delivery waits on it)


def test_a_long_answer_is_cut_and_its_connection_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "KEEP_IDLE", 3600.0)
    ports: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ports.append(self.client_address[1])
            body = "é".encode("latin-1") * (direct.BODY_LIMIT * 2)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=latin-1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client stops reading at its limit
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        for _ in range(2):
            _, outcome = delivery.send(
                "POST", f"{url}/h", ok=[200], secrets=[], timeout=5, idempotency_key="k", data=b""
            )
            assert outcome.ok and outcome.response is not None
            assert outcome.response.startswith("HTTP 200: éé")  # decoded by its charset
            assert len(outcome.response.encode()) <= delivery.RESPONSE_LIMIT
    assert len(set(ports)) == 2  # the unread rest was not left on a kept connection


def test_https_is_verified_against_the_configured_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            seen.append(dict(self.headers))
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with serving(Handler, tls) as url:
        assert url.startswith("https://")
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        _, refused = delivery.send(
            "POST", url, ok=[201], secrets=[], timeout=5, idempotency_key="k", json={"a": 1}
        )
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        _, sent = delivery.send(
            "POST", url, ok=[201], secrets=[], timeout=5, idempotency_key="k", json={"a": 1}
        )
    assert (refused.error or "").startswith("TLS:") and not refused.retryable
    assert sent.ok, sent
    assert len(seen) == 1
    headers = {k.lower(): v for k, v in seen[0].items()}
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == delivery.USER_AGENT
    assert headers["idempotency-key"] == "k"


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pw@127.0.0.1:9/x",  # credentials in the URL: requests turns them into auth
        "http://127.0.0.1:9/a path",  # requests re-quotes it
        "http://bücher.example/x",  # IDNA
        "ftp://127.0.0.1/x",
        "http://127.0.0.1:port/x",
    ],
)
def test_what_the_direct_path_cannot_send_goes_through_requests(url: str) -> None:
    assert direct.target(url) is None


@pytest.mark.parametrize("name", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
def test_a_configured_proxy_sends_through_requests(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for unset in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(unset, raising=False)
    assert direct.target("http://127.0.0.1:9/x") == direct.Target("http", "127.0.0.1", 9, "/x")
    monkeypatch.setenv(name, "http://127.0.0.1:3128")
    assert direct.target("http://127.0.0.1:9/x") is None


@pytest.mark.parametrize("value", ["ops\r\nX-Injected: 1", "tým ☃"])
def test_a_header_that_cannot_be_sent_is_a_config_error_and_sends_nothing(value: str) -> None:
    with keepalive_peer() as peer:
        _, outcome = delivery.send(
            "POST", peer.url, ok=[200], secrets=[value], timeout=5, idempotency_key="k",
            headers={"X-Team": value}, data=b"{}",
        )  # fmt: skip
    assert not outcome.ok and not outcome.retryable
    assert (outcome.error or "").startswith("bad request:")
    assert value not in (outcome.error or "")
    assert peer.seen == []


def test_a_configured_header_cannot_double_the_delivery_headers() -> None:
    seen: list[list[tuple[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(list(self.headers.items()))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        _, outcome = delivery.send(
            "POST", url, ok=[200], secrets=[], timeout=5, idempotency_key="run-key",
            headers={"idempotency-key": "tenant", "user-agent": "theirs/1"}, data=b"{}",
        )  # fmt: skip
    assert outcome.ok, outcome
    [headers] = seen
    keys = [v for k, v in headers if k.lower() == "idempotency-key"]
    agents = [v for k, v in headers if k.lower() == "user-agent"]
    assert keys == ["run-key"] and agents == ["theirs/1"]


@dataclass
class Drip:
    """How a peer drips its answer: in the headers or in the body, a byte per 0.1 s."""

    phase: str
    bytes_dripped: int = 0
    gone: threading.Event = field(default_factory=threading.Event)


@contextmanager
def dripping_peer(drip: Drip) -> Iterator[str]:
    """Answers each request a byte every 0.1 s, 60 of them (6 s) before the rest: each read
    gets a byte well within any timeout, and the whole answer comes only after 6 s."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            head = b"HTTP/1.1 200 OK\r\nContent-Length: 62\r\n"
            slow, fast = (b"X-Slow: " + b"x" * 60 + b"\r\n", b"\r\n" + b"ok" * 31)
            if drip.phase == "body":
                slow, fast = b"\r\n" + b"x" * 60, b"ok"
            try:
                self.wfile.write(head)
                for byte in slow:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    drip.bytes_dripped += 1
                    time.sleep(0.1)
                self.wfile.write(fast)
            except OSError:
                drip.gone.set()

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        yield url


@pytest.mark.parametrize("phase", ["headers", "body"])
@pytest.mark.parametrize("path", ["direct", "requests", "session"])
def test_a_dripping_peer_is_cut_off_at_the_attempts_timeout(phase: str, path: str) -> None:
    """Every read gets a byte in 0.1 s, far inside the 1 s timeout, and yet the attempt ends
    at 1 s as a whole: a peer cannot hold a delivery thread (or outlive its lease) by dripping.
    The same on the direct path, through requests (a path it has to re-quote) and in a
    session (Jenkins')."""
    drip = Drip(phase)
    with dripping_peer(drip) as url:
        target = f"{url}/a path" if path == "requests" else f"{url}/hook"
        session = delivery.new_session(url) if path == "session" else None
        answer, outcome = delivery.send(
            "POST", target, ok=[200], secrets=[], timeout=1, idempotency_key="k",
            data=b"{}", session=session,
        )  # fmt: skip
        assert answer is None and not outcome.ok and outcome.retryable
        # Without the deadline the answer arrives whole after 6 s and the outcome is ok. (On
        # a machine so loaded that a 0.1 s drip stalls past 1 s, a read's own timeout may end
        # it first: the same timeout error, without "no whole answer".)
        assert outcome.error is not None and outcome.error.startswith("timeout after 1s: ")
        assert drip.gone.wait(10), "the connection was left open"
        assert 0 < drip.bytes_dripped < 60


def test_a_shorter_deadline_is_kept_while_the_watchdog_waits_for_a_longer_one() -> None:
    """The watchdog is woken only for a deadline before the one it waits for (not once per
    request): a 1 s request made while another thread's 60 s one is under way is still cut
    off at 1 s, not when the 60 s are up."""
    held, release = threading.Event(), threading.Event()

    def long_request() -> None:
        with deadline.bounded(60):
            held.set()
            release.wait(30)

    other = threading.Thread(target=long_request)
    other.start()
    try:
        assert held.wait(10)
        drip = Drip("body")
        with dripping_peer(drip) as url:
            _, outcome = delivery.send(
                "POST", f"{url}/hook", ok=[200], secrets=[], timeout=1, idempotency_key="k",
                data=b"{}",
            )  # fmt: skip
            assert not outcome.ok and outcome.error is not None
            assert outcome.error.startswith("timeout after 1s: ")
            assert drip.gone.wait(10) and drip.bytes_dripped < 60
    finally:
        release.set()
        other.join(30)


@pytest.mark.parametrize("path", ["direct", "requests"])
def test_a_peer_dripping_its_tls_handshake_is_cut_off_at_the_attempts_timeout(path: str) -> None:
    """The server's first TLS record arrives a byte per 0.1 s (7 s in all) against a 1 s
    timeout: the handshake, before any request is sent, is bounded as a whole too (CPython's
    ssl module times a handshake as one operation, and the request's deadline is running)."""
    record = b"\x16\x03\x03\x00\x40" + b"\x00" * 64
    with dripping_tcp(record, read_first=True) as (port, cut):
        url = f"https://127.0.0.1:{port}/{'a path' if path == 'requests' else 'hook'}"
        answer, outcome = delivery.send(
            "POST", url, ok=[200], secrets=[], timeout=1, idempotency_key="k", data=b"{}"
        )
        assert cut.wait(10), "the connection was left open"
    assert answer is None and not outcome.ok and outcome.retryable
    assert outcome.error is not None and outcome.error.startswith("timeout after 1s: ")
