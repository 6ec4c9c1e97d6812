"""Webhook intake: find the source by token, check the HMAC signature, store the request.

Two signatures: `X-Hub-Signature-256: sha256=<hmac(body)>` (GitHub's; replayable, only the
delivery id dedups) and `X-MultiFlexi-Signature: t=<unix>,v1=<hmac(f"{t}.{body}")>` (Stripe's
and Slack's scheme): the signed time must be within the source's tolerance and each signature is
accepted once. Dropping or changing the delivery id cannot replay it: the signature is what is
remembered (webhook_signature, kept until the signed time leaves the window).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from multiflexi_web.db.engine import write_session
from multiflexi_web.db.listen import announce
from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventSource, WebhookSignature, utcnow
from multiflexi_web.security.secrets import cipher
from multiflexi_web.services.events.bodies import expected_format, read_body
from multiflexi_web.services.events.store import store_event

SIGNATURE_HEADER = "X-Hub-Signature-256"
STAMPED_HEADER = "X-MultiFlexi-Signature"
DELIVERY_HEADERS = ("X-Delivery-Id", "X-GitHub-Delivery")
NOTIFY_CHANNEL = "multiflexi_events"


def webhook_source(token: str) -> EventSource | None:
    """The enabled webhook source with this token, or None (the caller answers 404)."""
    return db.session.scalar(
        select(EventSource).where(
            EventSource.token == token,
            EventSource.kind == "webhook",
            EventSource.enabled.is_(True),
        )
    )


def signature_ok(source: EventSource, body: bytes, header: str | None) -> bool:
    """True without a secret; with one, `sha256=<hex HMAC of the raw body>` must match."""
    if not source.secret:
        return True
    given = (header or "").removeprefix("sha256=").strip().lower()
    # compare_digest refuses non-ASCII text (TypeError): such a header is simply wrong.
    if not header or not header.startswith("sha256=") or not given.isascii():
        return False
    expected = hmac.new(cipher().decrypt(source.secret).encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


@dataclass(frozen=True)
class Verdict:
    """A request's signature check: an error for a 401, or the stamped signature to remember."""

    error: str | None = None
    stamped: str | None = None
    signed_at: int = 0


def check_signature(
    source: EventSource, body: bytes, headers: Mapping[str, str], now: float | None = None
) -> Verdict:
    """The stamped signature when sent (or required), else the body-only one."""
    lowered = {k.lower(): v for k, v in headers.items()}
    stamped = lowered.get(STAMPED_HEADER.lower())
    if source.secret and (stamped or source.require_timestamp):
        return _check_stamped(source, body, stamped or "", time.time() if now is None else now)
    if signature_ok(source, body, lowered.get(SIGNATURE_HEADER.lower())):
        return Verdict()
    return Verdict(f"missing or wrong {SIGNATURE_HEADER} signature")


def _check_stamped(source: EventSource, body: bytes, header: str, now: float) -> Verdict:
    parts = [p.strip().partition("=") for p in header[:1024].split(",")]
    stamps = [v for k, _, v in parts if k == "t" and v.isascii() and v.isdigit() and len(v) < 12]
    given = [v.lower() for k, _, v in parts if k == "v1" and v.isascii()]
    if not stamps or not given:
        return Verdict(f"missing or malformed {STAMPED_HEADER}: send t=<unix time>,v1=<hex>")
    t = int(stamps[0])
    if abs(now - t) > source.signature_tolerance:
        return Verdict(
            f"{STAMPED_HEADER} t={t}: more than {source.signature_tolerance} s from the "
            "receiver's clock (a replay, or the sender's clock is wrong)"
        )
    key = cipher().decrypt(source.secret or "").encode()
    expected = hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, v) for v in given):
        return Verdict(f"wrong {STAMPED_HEADER} signature")
    return Verdict(stamped=expected, signed_at=t)


def first_sighting(source: EventSource, verdict: Verdict) -> bool:
    """Remember a stamped signature (in the caller's transaction); False when seen before."""
    if verdict.stamped is None:
        return True
    session = db.session()
    now = utcnow()
    session.execute(delete(WebhookSignature).where(WebhookSignature.expires_at < now))
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    expires = datetime.fromtimestamp(verdict.signed_at + source.signature_tolerance + 1, UTC)
    stmt = insert(WebhookSignature).values(
        source_id=source.id, signature=verdict.stamped, expires_at=max(expires, now)
    )
    added = session.execute(stmt.on_conflict_do_nothing().returning(WebhookSignature.id))
    return added.first() is not None


def delivery_id(headers: Mapping[str, str]) -> str | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in DELIVERY_HEADERS:
        value = lowered.get(name.lower())
        if value:
            return value
    return None


def receive(source: EventSource, body: bytes, headers: Mapping[str, str]) -> tuple[Event, bool]:
    """Store the request as an event (flushed); False when the delivery id was seen before.

    A body the source cannot read is stored failed, without its delivery id: the sender is told
    (400) and may send the corrected body again under the same id.
    """
    write_session(db.session())
    reading = read_body(body, headers, expected_format(source.config), delivery_id(headers))
    item = reading.item
    if item.raw_body is not body:
        item = replace(item, raw_body=body)
    if item.error:
        item = replace(item, delivery_id=None)
    event, created = store_event(source, item)
    if created:
        announce(NOTIFY_CHANNEL)  # eventors hear of it when the event is committed
    return event, created
