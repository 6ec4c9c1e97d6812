"""Storing received events, once per (source, delivery id)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventSource, EventStatus

# Headers that carry credentials or signatures are not kept with the event.
SENSITIVE_HEADERS = frozenset(
    {"authorization", "cookie", "proxy-authorization", "x-hub-signature", "x-hub-signature-256"}
)


@dataclass(frozen=True)
class Incoming:
    """One received message, as a consumer or the webhook view hands it over."""

    payload: Any = None
    raw_body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delivery_id: str | None = None
    error: str | None = None


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
    try:
        with db.session.begin_nested():
            db.session.add(event)
    except IntegrityError:
        # A concurrent delivery of the same id won the unique constraint.
        known = find_delivery(source.id, delivery) if delivery else None
        if known is None:
            raise
        return known, False
    return event, True
