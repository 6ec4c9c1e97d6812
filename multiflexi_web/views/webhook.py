"""POST /webhook/<token>: no login, no CSRF; stored as an event, 202 (400 with the reason when
the body cannot be read as the source expects; that event is kept, failed)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response

from multiflexi_web.db.engine import write_session
from multiflexi_web.extensions import db
from multiflexi_web.models import EventStatus
from multiflexi_web.portal_extensions import csrf
from multiflexi_web.services import settings
from multiflexi_web.services.events.intake import (
    check_signature,
    first_sighting,
    receive,
    webhook_source,
)

bp = Blueprint("webhook", __name__)
csrf.exempt(bp)
CHUNK = 64 * 1024


def _answer(status: int, **body: object) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def _read_body(limit: int) -> bytes | None:
    """The body, or None when it is larger than `limit` (Content-Length is not trusted alone)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, total = [], 0
    while chunk := request.stream.read(min(CHUNK, limit + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return None
    return b"".join(chunks)


@bp.post("/webhook/<token>")
def receive_webhook(token: str) -> Response:
    # The body is read before any database work: a slow client must not hold SQLite's lock.
    body = _read_body(settings().webhook_max_bytes)
    # A writer from the start: SQLite would otherwise fail upgrading a read lock under load.
    write_session(db.session())
    source = webhook_source(token)
    if source is None:
        # The same answer for an unknown, disabled or non-webhook token: nothing to learn.
        return _answer(404, error="not found")
    if body is None:
        return _answer(413, error=f"body larger than {settings().webhook_max_bytes} bytes")
    headers = dict(request.headers)
    verdict = check_signature(source, body, headers)
    if verdict.error:
        return _answer(401, error=verdict.error)
    if not first_sighting(source, verdict):
        db.session.commit()
        return _answer(409, error="this signed request was received before (a replay)")
    event, created = receive(source, body, headers)
    event_id = event.id  # read before the commit expires it
    db.session.commit()
    if event.error and event.status == EventStatus.FAILED.value:
        # The sender can fix this one: say why (the failed event is in the portal too).
        return _answer(400, error=event.error, event_id=event_id)
    if not created:
        return _answer(202, event_id=event_id, duplicate=True)
    return _answer(202, event_id=event_id)
