"""The one shape of an API write: call a service, audit with the caller, commit, answer JSON."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import jsonify
from werkzeug.wrappers import Response

from multiflexi_web.api.v1.auth import caller
from multiflexi_web.api.v1.errors import ApiError
from multiflexi_web.extensions import db
from multiflexi_web.services.audit import record
from multiflexi_web.views._change import Audit

T = TypeVar("T")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def api_change(
    change: Callable[[], T],
    audit: Callable[[T], Audit],
    answer: Callable[[T], dict[str, Any]],
    *,
    status: int = 200,
    refused: tuple[type[ValueError], ...] = (),
    refused_status: int = 422,
) -> Response:
    """Run `change`; a listed refusal rolls everything back and answers `refused_status`."""
    try:
        result = change()
    except refused as exc:
        db.session.rollback()
        raise ApiError(refused_status, str(exc), _field_of(str(exc))) from None
    entry = audit(result)
    c = caller()
    details = {**(entry.details or {}), "via": "api"}
    if c.token is not None:
        details.update(token_id=c.token.id, token_name=c.token.name)
    record(entry.action, entry.entity_type, entry.entity_id, entry.summary, details, c.actor)
    body = answer(result)
    db.session.commit()
    resp = jsonify(body)
    resp.status_code = status
    return resp


def _field_of(message: str) -> dict[str, Any]:
    """Service errors read "field: reason" or "field 'value': reason"; the head names the field
    (`config KEY` as config.KEY)."""
    head, sep, _ = message.partition(":")
    words = head.split()
    if not sep or not words or not _FIELD.match(words[0]) or len(head) >= 200:
        return {}
    if words[0] == "config" and len(words) > 1 and _FIELD.match(words[1]):
        return {"field": f"config.{words[1]}"}
    if len(words) == 1 or words[1][:1] in {"'", '"'}:
        return {"field": words[0]}
    return {}
