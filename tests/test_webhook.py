"""POST /webhook/<token>: signatures, size limit, replays, malformed JSON, unknown tokens."""

from __future__ import annotations

import hashlib
import hmac
import io
import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventSource, EventStatus
from multiflexi_web.services.events.catalog import create_source
from tests.factories import make_company

SECRET = "s3cret-hmac-key"


def _source(secret: str | None = None, **kw: object) -> EventSource:
    source = create_source("hook", "webhook", secret=secret, company_id=make_company().id, **kw)  # type: ignore[arg-type]
    db.session.commit()
    return source


def _sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _events() -> list[Event]:
    # The webhook commits on a connection of its own: read in a new transaction (SQLite).
    db.session.rollback()
    return list(db.session.scalars(select(Event).order_by(Event.id)))


def test_unsigned_webhook_is_stored_and_answered_202(client: FlaskClient) -> None:
    source = _source()
    resp = client.post(f"/webhook/{source.token}", json={"a": {"b": 1}})
    assert resp.status_code == 202
    event_id = resp.get_json()["event_id"]
    [event] = _events()
    assert event.id == event_id and event.payload == {"a": {"b": 1}}
    assert event.status == EventStatus.NEW.value and event.error is None
    assert event.raw_body == b'{"a": {"b": 1}}' or json.loads(event.raw_body or b"") == {
        "a": {"b": 1}
    }


def test_webhook_needs_no_login_and_no_csrf(app: Flask) -> None:
    app.config["WTF_CSRF_ENABLED"] = True  # as in production
    source = _source()
    resp = app.test_client().post(
        f"/webhook/{source.token}", data=b"{}", content_type="application/json"
    )
    assert resp.status_code == 202


def test_signed_webhook_is_accepted_and_the_secret_is_stored_encrypted(client: FlaskClient) -> None:
    source = _source(SECRET)
    assert source.secret and SECRET not in source.secret
    body = b'{"ok": true}'
    resp = client.post(
        f"/webhook/{source.token}", data=body, headers={"X-Hub-Signature-256": _sign(body)}
    )
    assert resp.status_code == 202
    [event] = _events()
    assert "X-Hub-Signature-256" not in event.headers  # signatures are not kept


def test_bad_or_missing_signature_is_401_and_stores_nothing(client: FlaskClient) -> None:
    source = _source(SECRET)
    body = b'{"ok": true}'
    wrong = client.post(
        f"/webhook/{source.token}", data=body, headers={"X-Hub-Signature-256": _sign(body, "other")}
    )
    missing = client.post(f"/webhook/{source.token}", data=body)
    tampered = client.post(
        f"/webhook/{source.token}",
        data=b'{"ok": false}',
        headers={"X-Hub-Signature-256": _sign(body)},
    )
    assert (wrong.status_code, missing.status_code, tampered.status_code) == (401, 401, 401)
    assert _events() == []


def test_oversized_body_is_413(app: Flask, client: FlaskClient) -> None:
    source = _source()
    limit = app.config["MULTIFLEXI"].webhook_max_bytes
    assert limit == 1024 * 1024
    big = b'{"x": "' + b"a" * limit + b'"}'
    assert client.post(f"/webhook/{source.token}", data=big).status_code == 413
    just = b'{"x": "' + b"a" * (limit - 10) + b'"}'
    assert client.post(f"/webhook/{source.token}", data=just).status_code == 202
    assert len(_events()) == 1


def test_oversized_body_without_content_length_is_413(client: FlaskClient) -> None:
    source = _source()
    # A chunked request as a server hands it over: no Content-Length, a terminated input stream.
    resp = client.post(
        f"/webhook/{source.token}",
        input_stream=io.BytesIO(b"a" * (1024 * 1024 + 1)),
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert resp.status_code == 413
    assert _events() == []


def test_replayed_delivery_id_is_a_no_op(client: FlaskClient) -> None:
    source = _source()
    first = client.post(f"/webhook/{source.token}", json={"n": 1}, headers={"X-Delivery-Id": "d-1"})
    again = client.post(f"/webhook/{source.token}", json={"n": 2}, headers={"X-Delivery-Id": "d-1"})
    github = client.post(
        f"/webhook/{source.token}", json={"n": 3}, headers={"X-GitHub-Delivery": "d-1"}
    )
    other = client.post(f"/webhook/{source.token}", json={"n": 4}, headers={"X-Delivery-Id": "d-2"})
    assert {r.status_code for r in (first, again, github, other)} == {202}
    first_id = first.get_json()["event_id"]
    assert again.get_json()["event_id"] == first_id == github.get_json()["event_id"]
    assert [e.payload for e in _events()] == [{"n": 1}, {"n": 4}]


def test_malformed_json_is_refused_and_kept_with_its_raw_body_and_an_error(
    client: FlaskClient,
) -> None:
    source = _source()
    resp = client.post(
        f"/webhook/{source.token}", data=b"{not json", content_type="application/json"
    )
    assert resp.status_code == 400
    [event] = _events()
    assert resp.get_json() == {"error": event.error, "event_id": event.id}
    assert event.raw_body == b"{not json" and event.payload is None
    assert event.error and "not valid JSON" in event.error
    assert event.status == EventStatus.FAILED.value  # never fires a rule


@pytest.mark.parametrize(
    "body",
    [b'{"a": NaN}', b'{"a": 1e999}', b'{"a": "x\\u0000y"}', b"\xff\xfe", b"[" * 100_000],
    ids=["nan", "infinite", "nul", "not-utf8", "too-deep"],
)
def test_json_the_databases_cannot_store_is_kept_raw(client: FlaskClient, body: bytes) -> None:
    source = _source()
    assert client.post(f"/webhook/{source.token}", data=body).status_code == 400
    [event] = _events()
    assert event.payload is None and event.raw_body == body and event.error


def test_wrong_token_is_404_and_says_nothing(client: FlaskClient) -> None:
    enabled = _source()
    disabled = create_source("off", "webhook", enabled=False)
    directory = create_source("dir", "directory", {"path": "/tmp"})
    directory.token = "dir-token"
    db.session.commit()
    answers = [
        client.post("/webhook/nope", json={}),
        client.post(f"/webhook/{disabled.token}", json={}),
        client.post("/webhook/dir-token", json={}),
    ]
    assert {r.status_code for r in answers} == {404}
    assert {r.data for r in answers} == {answers[0].data}
    assert enabled.token not in answers[0].get_data(as_text=True)
    assert db.session.scalar(select(func.count(Event.id))) == 0


def test_form_encoded_webhooks_are_read(client: FlaskClient) -> None:
    source = _source()
    github = client.post(f"/webhook/{source.token}", data={"payload": '{"action": "opened"}'})
    fields = client.post(f"/webhook/{source.token}", data={"a": "1", "b": "x"})
    assert github.status_code == fields.status_code == 202
    first, second = _events()
    assert first.payload == {"action": "opened"} and first.raw_body.startswith(b"payload=")  # type: ignore[union-attr]
    assert second.payload == {"a": "1", "b": "x"}
