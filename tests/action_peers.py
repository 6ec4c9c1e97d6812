"""Action-kind test helpers: a hand-made ActionContext, and real peers on loopback (an HTTP
server that records requests, a Zabbix trapper, an SMTP server with a self-signed certificate)."""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import json
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from multiflexi_web.actions.base import ActionContext, AppRef
from tests.action_support import serving


def make_context(**overrides: Any) -> ActionContext:
    """A finished failed job of app "Invoice Sync" in company "acme"; override any field."""
    ctx = ActionContext(
        run_id=7,
        idempotency_key="action-run-7",
        attempt=1,
        job_id=42,
        status="failed",
        exit_code=3,
        exit_meaning="bank unreachable",
        company_id=5,
        company_slug="acme",
        company_name="ACME Ltd",
        zabbix_host="acme-host",
        app=AppRef(11, "Invoice Sync", None, "https://github.com/VitexSoftware/invoice-sync"),
        runtemplate_id=9,
        runtemplate_name="nightly sync",
        job_url="http://portal.test/job/42",
        artifact_urls={},
        stdout_tail="synced 12 invoices\nthen failed",
        stderr_tail="Error: bank unreachable",
        produced_files={},
        env={},
        config={},
        timeout=10.0,
        platform_version="0.1.0",
    )
    return replace(ctx, **overrides)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# A route answers (status, body, extra headers); a None status means "never answer".
Reply = tuple[int | None, str, dict[str, str]]


@dataclass
class HttpPeer:
    url: str
    routes: dict[tuple[str, str], Reply]
    requests: list[Recorded] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@contextmanager
def http_peer(routes: dict[tuple[str, str], Reply]) -> Iterator[HttpPeer]:
    """A real HTTP server on 127.0.0.1 answering (METHOD, path-without-query) from routes (404
    otherwise) and recording every request."""
    peer = HttpPeer("", routes)

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            peer.requests.append(Recorded(self.command, self.path, dict(self.headers), body))
            status, text, extra = peer.routes.get(
                (self.command, self.path.split("?")[0]), (404, "not found", {})
            )
            if status is None:
                peer.release.wait(30)
                return
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(text.encode())))
            self.end_headers()
            self.wfile.write(text.encode())

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        peer.url = url
        try:
            yield peer
        finally:
            peer.release.set()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Trapper:
    port: int
    answer: Callable[[dict[str, Any]], dict[str, Any]]
    received: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)


@contextmanager
def zabbix_trapper(answer: Callable[[dict[str, Any]], dict[str, Any]]) -> Iterator[Trapper]:
    """A TCP server speaking the Zabbix protocol: it checks the header and length, records
    (header, request) and answers with answer(request), framed the same way."""
    trapper = Trapper(0, answer)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            head = read_exact(self.request, 13)
            assert head[:5] == b"ZBXD\x01", head
            length, reserved = struct.unpack("<II", head[5:13])
            assert reserved == 0
            request = json.loads(read_exact(self.request, length))
            trapper.received.append((head, request))
            data = json.dumps(trapper.answer(request)).encode()
            self.request.sendall(b"ZBXD\x01" + struct.pack("<II", len(data), 0) + data)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    trapper.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield trapper
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "peer closed early"
        data += chunk
    return data


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(cert.pem, key.pem) for localhost / 127.0.0.1; the certificate is its own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


PASSWORD = "mail-SECRET-pw@1"


@dataclass
class Inbox:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    rcpt_reply: str | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        b"mailer",
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class MailPeer:
    port: int
    inbox: Inbox
    cert: Path


@contextmanager
def smtp_server(tmp_path: Path, mode: str, inbox: Inbox | None = None) -> Iterator[MailPeer]:
    """mode: "starttls" (required, login required after it), "tls" (implicit), "plain"."""
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    inbox = inbox or Inbox()
    port = closed_port()
    kwargs: dict[str, Any] = {"authenticator": authenticate}
    if mode == "starttls":
        kwargs |= {"tls_context": server_tls, "require_starttls": True, "auth_required": True}
    elif mode == "tls":
        kwargs |= {"ssl_context": server_tls, "auth_require_tls": False}
    else:
        kwargs |= {"auth_require_tls": False}
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield MailPeer(port, inbox, cert)
    finally:
        controller.stop()


@contextmanager
def dripping_tcp(answer: bytes, *, read_first: bool) -> Iterator[tuple[int, threading.Event]]:
    """A loopback TCP server that, per connection (after reading the request if
    `read_first`), sends `answer` a byte per 0.1 s: each read of the client gets a byte well
    within a second, the whole answer takes len(answer) / 10 seconds. Yields its port and an
    event set once a client cut the connection while it was still dripping."""
    cut = threading.Event()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                if read_first:
                    conn.recv(65536)
                for byte in answer:
                    conn.sendall(bytes([byte]))
                    time.sleep(0.1)
            except OSError:
                cut.set()

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1], cut
    finally:
        listener.close()
