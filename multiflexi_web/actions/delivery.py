"""The one place an action makes an HTTP request and maps the answer to an Outcome, with the
plumbing every kind shares: settings with defaults, required keys, secret redaction, bounds."""

from __future__ import annotations

import http.client
import json as jsonlib
import os
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from http.cookiejar import DefaultCookiePolicy
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

from multiflexi_web import __version__
from multiflexi_web.actions import deadline, destinations, direct
from multiflexi_web.actions.base import ActionContext, ConfigField, Outcome
from multiflexi_web.security.secrets import MASK

if TYPE_CHECKING:
    import requests

RESPONSE_LIMIT = 4096
USER_AGENT = f"MultiFlexi/{__version__}"  # some APIs (GitHub's) refuse a request without one
DELIVERY_HEADER = "X-MultiFlexi-Delivery"
IDEMPOTENCY_HEADER = "Idempotency-Key"  # the common name; peers that honour one dedupe retries
# Peers answering these are overloaded or briefly unavailable; a later attempt may succeed.
RETRYABLE_STATUSES = frozenset({408, 425, 429})
# 5xx answers that say the peer can never take this request (a URL whose server does not
# accept a POST answers 501): trying again only spends the retry budget.
FINAL_5XX = frozenset({501, 505})
# A delivery thread keeps its connection to a peer for the next delivery to the same peer
# (over HTTPS a new connection cost ~2.5 ms more CPU than the request itself), but only while
# it was used less than this long ago: peers close idle keep-alive connections (gunicorn after
# 2 s, Apache and Node after 5 s), and a request sent as the peer closes fails.
KEEP_IDLE = 1.0
_HELD = threading.local()  # origin -> (session, when it was last used), per thread


def settings(fields: Iterable[ConfigField], ctx: ActionContext) -> dict[str, str]:
    """The field defaults overlaid with the context's config (blank values count as unset)."""
    values = {f.key: f.default for f in fields if f.default is not None}
    values.update({k: v for k, v in ctx.config.items() if v != ""})
    return values


def missing(fields: Iterable[ConfigField], values: Mapping[str, str], kind: str) -> Outcome | None:
    """A not-retryable failure naming the required keys that have no value, else None."""
    absent = [f.key for f in fields if f.required and not values.get(f.key)]
    if not absent:
        return None
    return Outcome(ok=False, error=f"{kind}: missing config {', '.join(absent)}")


def secret_values(fields: Iterable[ConfigField], values: Mapping[str, str]) -> list[str]:
    """The secret config values; for a secret URL (a webhook whose address is its key) also
    its path and last path segment, which peers and error messages echo on their own."""
    found: list[str] = []
    for f in fields:
        value = values.get(f.key)
        if f.secret and value:
            found.append(value)
            if f.type == "url":
                path = urlsplit(value).path
                # Short parts ("/", "hooks") are no key; redacting them would garble the text.
                parts = (path, path.rstrip("/").rpartition("/")[2])
                found += [part for part in parts if len(part) >= 8]
    return found


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret (and its URL-quoted form, as error messages quote URLs) by the
    mask shown everywhere else (security/secrets.py MASK)."""
    for secret in sorted(secrets, key=len, reverse=True):
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            text = text.replace(form, MASK)
    return text


def bounded(text: str, secrets: Iterable[str] = ()) -> str:
    """Redacted and cut to RESPONSE_LIMIT bytes of UTF-8."""
    raw = redact(text, secrets).encode()
    if len(raw) <= RESPONSE_LIMIT:
        return raw.decode()
    return raw[: RESPONSE_LIMIT - 3].decode(errors="ignore") + "..."


class Answer(Protocol):
    """What is read of a peer's answer: a requests.Response, or a direct.Reply."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def json(self) -> Any: ...


def http_outcome(response: Answer, ok: Iterable[int], secrets: list[str]) -> Outcome:
    """Map a peer's answer: an expected status is success, 5xx (but 501 and 505) and
    408/425/429 retryable, others not."""
    text = bounded(f"HTTP {response.status_code}: {response.text}", secrets)
    if response.status_code in set(ok):
        return Outcome(ok=True, response=text)
    code = response.status_code
    return Outcome(
        ok=False,
        response=text,
        error=text,
        retryable=(code >= 500 and code not in FINAL_5XX) or code in RETRYABLE_STATUSES,
    )


def failure(exc: requests.RequestException, timeout: float, secrets: list[str]) -> Outcome:
    """Timeouts and connection failures are retryable; a malformed URL or a certificate that
    does not verify is a config error."""
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        return Outcome(ok=False, error=bounded(f"TLS: {exc}", secrets))
    if isinstance(exc, requests.Timeout):
        return Outcome(
            ok=False, error=bounded(f"timeout after {timeout:g}s: {exc}", secrets), retryable=True
        )
    if isinstance(exc, requests.ConnectionError):
        return Outcome(
            ok=False, error=bounded(f"connection failed: {exc}", secrets), retryable=True
        )
    return Outcome(ok=False, error=bounded(f"bad request: {exc}", secrets))


def send(
    method: str,
    url: str,
    *,
    ok: Iterable[int],
    secrets: list[str],
    timeout: float,
    idempotency_key: str,
    session: requests.Session | None = None,
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> tuple[Answer | None, Outcome]:
    """One request with the action's timeout, no redirects, and the run's idempotency key in
    both delivery headers (the same on every retry); the response (None on failure) and its
    Outcome (bounded, secrets redacted, retryable per http_outcome / failure).

    A request with at most a body (`data` or `json`) to a URL direct.py can reach goes over
    its kept http.client connection; one with a session, a proxy or other requests arguments
    through requests."""
    sent = _merged(
        {"User-Agent": USER_AGENT, "Accept": "*/*"},
        headers or {},
        {IDEMPOTENCY_HEADER: idempotency_key, DELIVERY_HEADER: idempotency_key},
    )
    to = direct.target(url) if session is None and kwargs.keys() <= {"data", "json"} else None
    if to is not None:
        return _direct(method, to, sent, timeout, secrets, ok, **kwargs)
    # requests with urllib3, idna and charset_normalizer is ~5 MiB: the first delivery that
    # needs it pays it, not every executor (and every action kind module imports this one).
    import requests

    origin = _origin(url) if session is None else None
    client: Any = session or (_kept(origin) if origin else requests)
    try:
        with deadline.bounded(timeout) as bound:
            try:
                # Through a proxy the proxy connects: its target is checked here (a direct
                # connection is pinned to a checked address instead: guarded_session.py).
                if getattr(client, "proxies", None):
                    _check_target(url)
                reply = _requested(client, method, url, timeout, sent, **kwargs)
                if bound.fired:  # an end of stream may pass for the end of a read
                    raise requests.Timeout("shut down")
            except requests.RequestException as exc:
                if bound.fired:  # the socket shut down under a read: the time was up
                    exc = requests.Timeout(f"no whole answer within {timeout:g}s ({exc})")
                return None, failure(exc, timeout, secrets)
            except destinations.DestinationRefused as exc:  # configuration: never retried
                return None, Outcome(ok=False, error=bounded(str(exc), secrets))
    finally:
        if origin:
            _HELD.sessions[origin] = (client, time.monotonic())
    return reply, http_outcome(reply, ok, secrets)


def _check_target(url: str) -> None:
    """Refused when the URL's host is on a network actions may not reach (a name that does not
    resolve is left to the request, which reports it as requests does)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        destinations.check(parts.hostname, port)
    except (OSError, ValueError):
        return


def _requested(
    client: Any, method: str, url: str, timeout: float, headers: dict[str, str], **kwargs: Any
) -> direct.Reply:
    """The answer read up to direct.BODY_LIMIT, as the direct path reads it: a peer streaming
    without end holds neither memory nor the thread (the rest is not read; the connection is
    dropped, not kept)."""
    response = client.request(
        method, url, timeout=timeout, allow_redirects=False, headers=headers, stream=True,
        **kwargs,
    )  # fmt: skip
    with response:  # closed: a connection with an unread rest is dropped, not kept
        chunks, size = [], 0
        for chunk in response.iter_content(16 * 1024):  # requests' exceptions, decoded
            chunks.append(chunk)
            size += len(chunk)
            if size >= direct.BODY_LIMIT:
                break
    raw = b"".join(chunks)[: direct.BODY_LIMIT]
    return direct.Reply(
        response.status_code, direct.decoded(raw, response.encoding), response.headers
    )


def _merged(*layers: Mapping[str, str]) -> dict[str, str]:
    """Header layers, a later one's name replacing an earlier one's in any letter case: sent
    as given, `idempotency-key` beside ours would be a second, different Idempotency-Key."""
    merged: dict[str, tuple[str, str]] = {}
    for layer in layers:
        for name, value in layer.items():
            merged[name.lower()] = (name, value)
    return dict(merged.values())


def _direct(
    method: str,
    to: direct.Target,
    headers: dict[str, str],
    timeout: float,
    secrets: list[str],
    ok: Iterable[int],
    data: bytes | str | None = None,
    json: Any = None,
) -> tuple[Answer | None, Outcome]:
    if json is not None and data is None:
        data = jsonlib.dumps(json, allow_nan=False)  # as requests encodes it
        headers.setdefault("Content-Type", "application/json")
    body = data.encode() if isinstance(data, str) else data
    try:
        reply = direct.request(
            method, to, body=body, headers=headers, timeout=timeout, keep_idle=KEEP_IDLE
        )
    except destinations.DestinationRefused as exc:  # configuration: never retried
        return None, Outcome(ok=False, error=bounded(str(exc), secrets))
    except (OSError, http.client.HTTPException) as exc:
        return None, _direct_failure(exc, timeout, secrets)
    except ValueError as exc:  # a header name or value http.client refuses to send (a newline)
        return None, Outcome(ok=False, error=bounded(f"bad request: {exc}", secrets))
    return reply, http_outcome(reply, ok, secrets)


def _direct_failure(exc: BaseException, timeout: float, secrets: list[str]) -> Outcome:
    """The same verdicts as failure() gives requests' exceptions."""
    if isinstance(exc, TimeoutError):
        return Outcome(
            ok=False, error=bounded(f"timeout after {timeout:g}s: {exc}", secrets), retryable=True
        )
    # A certificate that does not verify or a handshake refused: a config error. A TLS
    # connection the peer closed is a connection failure like any other.
    if isinstance(exc, ssl.SSLError) and not isinstance(
        exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)
    ):
        return Outcome(ok=False, error=bounded(f"TLS: {exc}", secrets))
    return Outcome(ok=False, error=bounded(f"connection failed: {exc!r}", secrets), retryable=True)


def _origin(url: str) -> tuple[str, str] | None:
    """(scheme, host:port); None for a URL that does not parse (requests reports it)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return (parts.scheme, parts.netloc) if parts.netloc else None


def _kept(origin: tuple[str, str]) -> requests.Session:
    """This thread's session for the peer at `origin` (scheme, host:port), new unless it was
    used within KEEP_IDLE. It keeps no cookies: like a session made per request, a delivery
    never sends what an earlier one was told to set."""

    now = time.monotonic()
    held: dict[tuple[str, str], tuple[requests.Session, float]] = _HELD.__dict__.setdefault(
        "sessions", {}
    )
    for key, (old, used) in list(held.items()):
        if now - used > KEEP_IDLE:
            old.close()
            del held[key]
    if origin not in held:
        fresh = new_session(f"{origin[0]}://{origin[1]}/")
        fresh.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        held[origin] = (fresh, now)
    return held[origin][0]


def new_session(url: str) -> requests.Session:
    """A session for requests to `url`'s origin: its requests are bounded as a whole inside
    send() (deadline.py), and it takes from the environment only the proxy and CA settings.

    Those are read once per session: with trust_env requests read them again on every request
    (~0.2 ms of a ~0.9 ms POST). And not the rest of the environment: credentials in the daemon
    user's ~/.netrc, which a delivery has no business sending to a tenant's peer."""
    import requests  # loaded by send() already: see there

    from multiflexi_web.actions import guarded_session

    fresh = guarded_session.session()
    fresh.trust_env = False
    fresh.proxies = requests.utils.get_environ_proxies(url)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        fresh.verify = bundle
    return fresh
