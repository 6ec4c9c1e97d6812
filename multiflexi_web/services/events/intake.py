"""Webhook intake: find the source by token, check the HMAC signature, store the request."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import parse_qs

from sqlalchemy import select, text

from multiflexi_web.db.engine import write_session
from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventSource
from multiflexi_web.security.secrets import cipher
from multiflexi_web.services.events.store import decode_message, store_event

SIGNATURE_HEADER = "X-Hub-Signature-256"
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
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(cipher().decrypt(source.secret).encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def delivery_id(headers: Mapping[str, str]) -> str | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in DELIVERY_HEADERS:
        value = lowered.get(name.lower())
        if value:
            return value
    return None


def form_payload(body: bytes, headers: Mapping[str, str]) -> bytes:
    """A form-encoded webhook (GitHub's `payload=<json>`, or plain fields) as JSON bytes."""
    content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return body
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    if list(fields) == ["payload"]:
        return fields["payload"][0].encode()
    return json.dumps({k: v[0] if len(v) == 1 else v for k, v in fields.items()}).encode()


def receive(source: EventSource, body: bytes, headers: Mapping[str, str]) -> tuple[Event, bool]:
    """Store the request as an event (flushed); False when the delivery id was seen before."""
    write_session(db.session())
    item = decode_message(
        form_payload(body, headers), headers=headers, delivery_id=delivery_id(headers)
    )
    if item.raw_body is not body:
        item = replace(item, raw_body=body)
    event, created = store_event(source, item)
    if created and db.session.get_bind().dialect.name == "postgresql":
        # Transactional: eventors listening hear it when the event is committed.
        db.session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
    return event, created
