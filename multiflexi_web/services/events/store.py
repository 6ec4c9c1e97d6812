"""Storing received events, once per (source, delivery id)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventSource, EventStatus
from multiflexi_web.models.bounds import check_json_depth
from multiflexi_web.services.events.rules import as_env_value, is_missing, select_path

# Headers that carry credentials or signatures are not kept with the event.
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "cookie",
        "proxy-authorization",
        "x-api-key",
        "x-auth-token",
        "x-gitlab-token",
        "x-hub-signature",
        "x-hub-signature-256",
        "x-multiflexi-signature",
    }
)


@dataclass(frozen=True)
class Incoming:
    """One received message, as a consumer or the webhook view hands it over."""

    payload: Any = None
    raw_body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delivery_id: str | None = None
    error: str | None = None


def decode_message(
    raw: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    delivery_id: str | None = None,
    id_path: str | None = None,
) -> Incoming:
    """Bytes from a broker or file to an Incoming: JSON payload, or the raw body with an error."""
    try:
        payload = parse_payload(raw)
    except (ValueError, RecursionError) as exc:
        return Incoming(None, raw, headers or {}, delivery_id, f"body is not valid JSON: {exc}")
    if id_path and delivery_id is None:
        found = select_path(payload, id_path)
        delivery_id = None if is_missing(found) or found is None else as_env_value(found)
    return Incoming(payload, raw, headers or {}, delivery_id)


def parse_payload(raw: bytes) -> Any:
    """Strict JSON that both databases can store: no NaN/Infinity, no NUL in strings, at most
    JSON_DEPTH levels; ValueError (or RecursionError) names what is wrong."""
    if not raw.strip():
        return {}
    payload = json.loads(raw.decode("utf-8"), parse_float=_finite, parse_constant=_no_constant)
    check_json_depth(payload, "payload")
    if "\\u0000" in raw.decode("utf-8") and _has_nul(payload):
        raise ValueError("a string contains \\u0000, which cannot be stored")
    return payload


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in SENSITIVE_HEADERS}


def find_delivery(source_id: int, delivery_id: str) -> Event | None:
    return db.session.scalar(
        select(Event).where(Event.source_id == source_id, Event.delivery_id == delivery_id)
    )


def store_event(source: EventSource, item: Incoming) -> tuple[Event, bool]:
    """Add the event (flushed); a known delivery id returns the first event and False."""
    delivery = (item.delivery_id or "").strip()[:255] or None
    if delivery is not None:
        known = find_delivery(source.id, delivery)
        if known is not None:
            return known, False
    event = Event(
        source_id=source.id,
        delivery_id=delivery,
        payload=item.payload,
        raw_body=item.raw_body,
        headers=kept_headers(item.headers),
        error=item.error,
        # An event that could not be read never fires a rule; it is kept to be seen.
        status=(EventStatus.FAILED if item.error else EventStatus.NEW).value,
    )
    if delivery is None:
        # No delivery id, no possible collision: skip the savepoint.
        db.session.add(event)
        db.session.flush()
        return event, True
    try:
        with db.session.begin_nested():
            db.session.add(event)
    except IntegrityError:
        # A concurrent delivery of the same id won the unique constraint.
        known = find_delivery(source.id, delivery)
        if known is None:
            raise
        return known, False
    return event, True
