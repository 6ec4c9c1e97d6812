"""POST /webhook/<token>: no login, no CSRF; stored as an event, 202 (400 with the reason when
the body cannot be read as the source expects; that event is kept, failed).

The hot path of event intake: no ORM session, no user, no audit row. One Core connection, the
source from a cache checked against config_epoch by the INSERT itself (services/events/intake.py):
on PostgreSQL a request is BEGIN, one INSERT (with its NOTIFY), COMMIT.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response

from multiflexi_web.db.engine import write_session
from multiflexi_web.extensions import csrf, db
from multiflexi_web.services import settings
from multiflexi_web.services.events.intake import (
    Stored,
    check_signature,
    first_sighting,
    source_cache,
    store,
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
    limit = settings().webhook_max_bytes
    body = _read_body(limit)
    headers = dict(request.headers)
    cache = source_cache()
    # A writer from the start: SQLite would otherwise fail upgrading a read lock under load.
    # The session's connection, used through Core only (no ORM objects to track or expire).
    session = write_session(db.session())
    conn = session.connection()
    source, epoch = cache.get(conn, token)
    for _ in range(3):  # a configuration change between reading the source and storing
        if source is None:
            # The same answer for an unknown, disabled or non-webhook token: nothing to learn.
            return _answer(404, error="not found")
        if body is None:
            return _answer(413, error=f"body larger than {limit} bytes")
        verdict = check_signature(source, body, headers)
        if verdict.error:
            return _answer(401, error=verdict.error)
        if not first_sighting(conn, source, verdict):
            session.commit()
            return _answer(409, error="this signed request was received before (a replay)")
        stored = store(conn, source, epoch, body, headers)
        if not stored.stale:
            session.commit()
            return _stored_answer(stored)
        session.rollback()  # the signature remembered under the old settings goes too
        conn = write_session(session).connection()
        source, epoch = cache.reload(conn, token)
    return _answer(503, error="the source's settings keep changing; try again")


def _stored_answer(stored: Stored) -> Response:
    if stored.error:
        # The sender can fix this one: say why (the failed event is in the portal too).
        return _answer(400, error=stored.error, event_id=stored.event_id)
    if not stored.created:
        return _answer(202, event_id=stored.event_id, duplicate=True)
    return _answer(202, event_id=stored.event_id)
