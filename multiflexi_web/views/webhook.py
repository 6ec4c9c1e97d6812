"""POST /webhook/<token>: no login, no CSRF; stored as an event, 202 (400 with the reason when
the body cannot be read as the source expects; that event is kept, failed).

The hot path of event intake: no ORM session, no user, no audit row. One Core connection, the
source from a cache checked against config_epoch by the INSERT itself (services/events/intake.py):
on PostgreSQL a request is BEGIN, one INSERT (with its NOTIFY), COMMIT.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from sqlalchemy.exc import DBAPIError
from werkzeug.wrappers import Response

from multiflexi_web.db import doorbell
from multiflexi_web.portal_extensions import csrf
from multiflexi_web.services import settings
from multiflexi_web.services.events.connection import intake_engine
from multiflexi_web.services.events.intake import (
    NOTIFY_CHANNEL,
    Stored,
    WebhookSource,
    check_signature,
    current_epoch,
    first_sighting,
    source_cache,
    store,
)
from multiflexi_web.services.events.units import (
    ConnectionUnit,
    Received,
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
    request_ = Received(token, _read_body(limit), dict(request.headers), limit)
    engine = intake_engine()
    for attempt in (1, 2):
        conn = engine.connect()
        unit = ConnectionUnit(conn)
        try:
            conn.begin()
            return _unit(unit, request_)
        except DBAPIError as exc:
            # Found dead (PostgreSQL: no pre-ping on this pool) before any COMMIT: nothing was
            # stored, run again on a fresh connection.
            if attempt == 2 or not exc.connection_invalidated or unit.committed:
                raise
        finally:
            conn.close()
    raise AssertionError("unreachable")  # pragma: no cover


def _unit(unit: ConnectionUnit, req: Received) -> Response:
    """Look up, verify and store one request in the unit's transaction.

    A cached source is confirmed current by the INSERT itself (intake.store); a refusal made
    with a cached one is confirmed by reading the epoch before it is sent: a source enabled or
    re-keyed a moment ago must not be refused with its old settings.
    """
    cache = source_cache()
    source, epoch, fresh = cache.get(unit.conn, req.token)
    for _ in range(3):  # a configuration change between reading the source and storing
        refusal = _refusal(unit, source, req)
        if refusal is None:
            assert source is not None and req.body is not None  # noqa: S101 - _refusal checked
            stored = store(unit.conn, source, epoch, req.body, req.headers)
            if not stored.stale:
                unit.commit()
                if stored.created:
                    _ring_eventors(unit)
                return _stored_answer(stored)
        elif fresh or current_epoch(unit.conn) == epoch:
            if refusal.status_code == 409:
                unit.commit()  # expired signatures deleted on the way
            return refusal
        unit.rollback()  # a signature remembered under the old settings goes too
        source, epoch = cache.reload(unit.conn, req.token)
        fresh = True
    return _answer(503, error="the source's settings keep changing; try again")


def _ring_eventors(unit: ConnectionUnit) -> None:
    """SQLite: wake the eventors now the event is committed (PostgreSQL's NOTIFY rode on the
    INSERT). A missed ring costs latency only: they poll as well."""
    place = doorbell.folder(str(unit.conn.engine.url))
    if place is not None:
        doorbell.ring(place, NOTIFY_CHANNEL)


def _refusal(unit: ConnectionUnit, source: WebhookSource | None, req: Received) -> Response | None:
    if source is None:
        # The same answer for an unknown, disabled or non-webhook token: nothing to learn.
        return _answer(404, error="not found")
    if req.body is None:
        return _answer(413, error=f"body larger than {req.limit} bytes")
    verdict = check_signature(source, req.body, req.headers)
    if verdict.error:
        return _answer(401, error=verdict.error)
    if not first_sighting(unit.conn, source, verdict):
        return _answer(409, error="this signed request was received before (a replay)")
    return None


def _stored_answer(stored: Stored) -> Response:
    if stored.error:
        # The sender can fix this one: say why (the failed event is in the portal too).
        return _answer(400, error=stored.error, event_id=stored.event_id)
    if not stored.created:
        return _answer(202, event_id=stored.event_id, duplicate=True)
    return _answer(202, event_id=stored.event_id)
