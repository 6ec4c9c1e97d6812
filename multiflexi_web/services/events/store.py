"""Storing received events, once per (source, delivery id)."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventSource, EventStatus
from multiflexi_web.models.bounds import JSON_DEPTH
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
    check_value(payload, "payload")  # depth, NUL, lone surrogates: one walk, as for consumers
    return payload


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def storable(item: Incoming) -> Incoming:
    """The item itself when both databases can store it; else what `refused` keeps of it.

    decode_message checks a body; a consumer also hands over payloads built from other things
    (a stream entry's fields, a row of another database, a file's name), headers and ids, and
    PostgreSQL refuses a NUL or NaN with an error that would come back on every redelivery.
    """
    try:
        check_value(item.payload, "payload")
        check_value(dict(item.headers), "headers")
        if item.delivery_id is not None:
            check_value(item.delivery_id, "delivery id")
    except (ValueError, RecursionError) as exc:
        return refused(item, f"cannot be stored: {exc}")
    return item


def check_value(value: Any, name: str) -> None:
    """ValueError unless `value` is JSON both databases store: text without NUL that encodes
    as UTF-8, finite numbers, text keys, at most JSON_DEPTH levels (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            _check_text(node, name)
        elif isinstance(node, float) and not math.isfinite(node):
            raise ValueError(f"{name}: number {node} is out of range")
        elif isinstance(node, dict | list | tuple):
            if depth > JSON_DEPTH:
                raise ValueError(f"{name}: nested deeper than {JSON_DEPTH} levels")
            if isinstance(node, dict):
                if not all(isinstance(k, str) for k in node):
                    raise ValueError(f"{name}: an object key is not text")
                stack.extend((k, depth) for k in node)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
        elif node is not None and not isinstance(node, bool | int | float):
            raise ValueError(f"{name}: a {type(node).__name__} is not a JSON value")


def _check_text(text: str, name: str) -> None:
    if "\x00" in text:
        raise ValueError(f"{name}: a string contains \\u0000, which cannot be stored")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{name}: a string is not valid Unicode (a lone surrogate)") from None


def refused(item: Incoming, error: str) -> Incoming:
    """A failed item that can be stored in place of one that cannot: status failed (it fires no
    rule), its payload and headers escaped into what both databases take, the body as it came.

    Its delivery id stays when that is itself storable: a broker delivers the same message again
    after a lost acknowledgement, and a directory rescan finds the same file, so the id is what
    keeps the failure from being stored once per delivery. (The webhook drops the id of an
    unreadable body because the sender, told 400, may send it again corrected; nobody is told
    here.)
    """
    delivery = item.delivery_id
    if delivery is not None:
        try:
            check_value(delivery, "delivery id")
        except ValueError:
            error = f"{error} (delivery id {_escape(delivery)[:255]})"
            delivery = None
    headers = {_escape(k): _escape(v) for k, v in item.headers.items()}
    return Incoming(_escaped(item.payload), item.raw_body, headers, delivery, error[:2000])


def _escaped(value: Any, depth: int = 1) -> Any:
    """A copy of `value` that passes check_value: NUL and lone surrogates written as escapes,
    NaN and other non-JSON values as their repr, what nests too deep cut off (so the recursion
    stops at JSON_DEPTH, whatever the value's depth)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        # json.dumps refuses an int of more than 4300 digits.
        return value if value.bit_length() < 10_000 else "(a number too long to keep)"
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if not isinstance(value, dict | list | tuple):
        return _escape(value)
    if depth > JSON_DEPTH:
        return f"(nested deeper than {JSON_DEPTH} levels: not kept)"
    if isinstance(value, dict):
        return {_escape(k): _escaped(v, depth + 1) for k, v in value.items()}
    return [_escaped(v, depth + 1) for v in value]


def _escape(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")


def with_identity(item: Incoming) -> Incoming:
    """The item with a delivery id: its own, or a new random one.

    Made once per received message, before the first try: a try run again after a COMMIT whose
    answer was lost (it may have committed) then finds the event instead of storing it twice,
    as the webhook's single INSERT … ON CONFLICT does with its request.
    """
    if (item.delivery_id or "").strip():
        return item
    return replace(item, delivery_id=str(uuid.uuid4()))


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
