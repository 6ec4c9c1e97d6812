"""Deliveries over a kept `http.client` connection: the path of every action request that needs
nothing of `requests` (delivery.py decides).

Why not `requests` for all: on a POST to a keep-alive peer it spent ~0.42 ms of CPU against
http.client's ~0.09 (its request preparation, urllib3's pool and response wrapper, a charset
guess on every answer without one), and a delivery's CPU is taken from the jobs of the same
host. What `requests` adds that a delivery can need (a proxy, a cookie session, query
parameters, credentials in the URL, a URL it has to re-quote) keeps going through it.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from multiflexi_web.actions import deadline, destinations

# Read of an answer's body; the rest is not read (the connection is then dropped, not kept):
# the recorded response is cut to 4 KiB anyway, and a peer streaming without end must not hold
# a delivery thread.
BODY_LIMIT = 64 * 1024
_SAFE = frozenset(map(chr, range(0x21, 0x7F)))  # printable ASCII: nothing to re-quote
_KEPT = threading.local()  # origin -> Kept, per thread
_TLS: dict[str, ssl.SSLContext] = {}
_TLS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent on the request line

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


@dataclass(frozen=True)
class Reply:
    """The part of an answer delivery.py reads (the names a requests.Response has)."""

    status_code: int
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Kept:
    conn: http.client.HTTPConnection
    used: float


def target(url: str) -> Target | None:
    """Where `url` goes if this module can send to it: http(s), a plain ASCII host and path, no
    credentials and no proxy configured for its scheme; else None (requests sends it)."""
    if not _SAFE.issuperset(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    if _proxied(parts.scheme):
        return None  # requests applies it (and NO_PROXY)
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname, port or default, _path(parts))


def _proxied(scheme: str) -> bool:
    """A proxy is configured for `scheme` (or all schemes): the variables urllib and requests
    read, looked up by name (urllib's getproxies_environment() walks the whole environment, 6%
    of a delivery process's CPU when called per request)."""
    return any(
        os.environ.get(name) or os.environ.get(name.upper())
        for name in (f"{scheme}_proxy", "all_proxy")
    )


def _path(parts: SplitResult) -> str:
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def request(
    method: str,
    to: Target,
    *,
    body: bytes | None,
    headers: Mapping[str, str],
    timeout: float,
    keep_idle: float,
) -> Reply:
    """One request on this thread's connection to the target's origin (kept from an earlier
    request if used within `keep_idle` seconds and still open), `timeout` bounding each
    network operation and the request as a whole (deadline.py). Raises OSError (timeouts,
    refused or reset connections, TLS) and http.client.HTTPException (a broken answer)."""
    conn = _connection(to, timeout, keep_idle)
    try:
        with deadline.bounded(timeout) as bound:
            try:
                if conn.sock is None:
                    conn.connect()
                deadline.attach(conn.sock)
                conn.request(method, to.target, body=body, headers=dict(headers))
                answer = conn.getresponse()
                raw = answer.read(BODY_LIMIT)
                keep = answer.isclosed() and not answer.will_close
            except (OSError, http.client.HTTPException) as exc:
                if bound.fired:  # the socket shut down under the read
                    raise TimeoutError(f"no whole answer within {timeout:g}s") from exc
                raise
            if bound.fired:  # http.client takes an end of stream for the end of some reads
                raise TimeoutError(f"no whole answer within {timeout:g}s")
    except BaseException:
        conn.close()
        _held().pop(to.origin, None)
        raise
    if keep:
        _held()[to.origin] = Kept(conn, time.monotonic())
    else:
        conn.close()
        _held().pop(to.origin, None)
    text = decoded(raw, answer.headers.get_content_charset())
    return Reply(answer.status, text, dict(answer.headers.items()))


def decoded(raw: bytes, charset: str | None) -> str:
    """An answer's text in its declared charset, else UTF-8; what does not decode replaced."""
    try:
        return raw.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace")


def _held() -> dict[tuple[str, str, int], Kept]:
    held: dict[tuple[str, str, int], Kept] = _KEPT.__dict__.setdefault("held", {})
    return held


def _connection(to: Target, timeout: float, keep_idle: float) -> http.client.HTTPConnection:
    held, now = _held(), time.monotonic()
    for origin, old in list(held.items()):
        if now - old.used > keep_idle or _dropped(old.conn):
            old.conn.close()
            del held[origin]
    kept = held.pop(to.origin, None)  # in use: not found by another request of this thread
    if kept is not None:
        kept.conn.timeout = timeout
        if kept.conn.sock is not None:
            kept.conn.sock.settimeout(timeout)
        return kept.conn
    conn: http.client.HTTPConnection
    if to.scheme == "https":
        conn = http.client.HTTPSConnection(to.host, to.port, timeout=timeout, context=_tls())
    else:
        conn = http.client.HTTPConnection(to.host, to.port, timeout=timeout)
    # Connected only to an address actions may reach (TLS still checks the name).
    conn._create_connection = _reachable  # type: ignore[attr-defined]
    return conn


def _reachable(
    address: tuple[str, int], timeout: float | None, source_address: Any = None
) -> socket.socket:
    return destinations.connect(address[0], address[1], timeout)


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """The peer closed the idle connection (or sent what nobody asked for): readable now.
    Sending a POST on it would fail after the peer may or may not have read it."""
    sock: socket.socket | None = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _tls() -> ssl.SSLContext:
    """The verifying context requests would use: REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE if set,
    else certifi's bundle; one per bundle (loading one costs milliseconds)."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not bundle:
        import certifi  # requests' own dependency, and its default

        bundle = certifi.where()
    with _TLS_LOCK:
        if bundle not in _TLS:
            folder = os.path.isdir(bundle)  # requests takes a c_rehash'ed folder too
            _TLS[bundle] = ssl.create_default_context(
                cafile=None if folder else bundle, capath=bundle if folder else None
            )
        return _TLS[bundle]
