"""How a webhook source reads a request body: JSON, form fields, or whichever the body is.

A source's `config.body` says what it expects: `auto` (the default: JSON whatever the
Content-Type, form fields only when the type says so and the body is not JSON-shaped), `json`
(JSON only) or `form` (form fields only). `curl -d` labels every body as a form, so JSON must be
recognised by its shape, not its label. A body that cannot be read as expected is an error that
names the reason, the Content-Type and what the source expects: the sender is told (400) and the
event is kept, failed, for the portal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import parse_qs

from multiflexi_web.services.events.store import Incoming, decode_message

BODY_FORMATS = {
    "auto": "JSON, or form fields when sent as a form",
    "json": "JSON",
    "form": "form fields (application/x-www-form-urlencoded)",
}
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Reading:
    """A body as the source read it: the item to store, and how it was read (for people)."""

    item: Incoming
    read_as: str


def expected_format(config: Mapping[str, object] | None) -> str:
    value = (config or {}).get("body", "auto")
    return value if isinstance(value, str) and value in BODY_FORMATS else "auto"


def content_type_of(headers: Mapping[str, str]) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get("content-type", "").split(";")[0].strip().lower()


def read_body(
    body: bytes,
    headers: Mapping[str, str],
    expects: str,
    delivery_id: str | None = None,
) -> Reading:
    """The body read the way the source expects; item.error says why it could not be."""
    ctype = content_type_of(headers)
    json_shaped = body.lstrip()[:1] in (b"{", b"[")
    as_form = expects == "form" or (expects == "auto" and ctype == FORM_TYPE and not json_shaped)
    if as_form:
        return _read_form(body, headers, ctype, delivery_id)
    item = decode_message(body, headers=headers, delivery_id=delivery_id)
    if item.error:
        item = replace(item, error=f"{item.error} ({_context(ctype, expects)})")
    return Reading(item, "JSON")


def _read_form(
    body: bytes, headers: Mapping[str, str], ctype: str, delivery_id: str | None
) -> Reading:
    if ctype == "application/json" or body.lstrip()[:1] in (b"{", b"["):
        error = f"body is JSON, not form fields ({_context(ctype, 'form')})"
        return Reading(Incoming(None, body, headers, delivery_id, error), "form fields")
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    if list(fields) == ["payload"]:
        # GitHub's form delivery: the JSON document is the one `payload` field.
        item = decode_message(fields["payload"][0].encode(), headers=headers)
        item = replace(item, raw_body=body, delivery_id=delivery_id)
        if item.error:
            item = replace(item, error=f"form field payload: {item.error}")
        return Reading(item, "JSON in the form field payload")
    flat = {k: v[0] if len(v) == 1 else v for k, v in fields.items()}
    item = decode_message(json.dumps(flat).encode(), headers=headers, delivery_id=delivery_id)
    return Reading(replace(item, raw_body=body), "form fields")


def _context(ctype: str, expects: str) -> str:
    return f"Content-Type: {ctype or 'none'}; this source expects {BODY_FORMATS[expects]}"
