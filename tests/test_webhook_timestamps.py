"""Webhook signatures with a signed timestamp: tolerance, replays, required per source."""

from __future__ import annotations

import hashlib
import hmac
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.serving import make_server

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventSource, WebhookSignature
from multiflexi_web.services.events.catalog import (
    EventSourceError,
    create_source,
    set_signing,
)
from tests.factories import login, make_company, make_user

SECRET = "s3cret"
BODY = b'{"action":"published","ref":"v1.2"}'
README = Path(__file__).resolve().parent.parent / "README.md"


def _source(secret: str | None = SECRET, *, require: bool = False, tolerance: int = 300) -> str:
    source = create_source("hook", "webhook", secret=secret, company_id=make_company().id)
    set_signing(source, require_timestamp=require, tolerance=tolerance)
    db.session.commit()
    return f"/webhook/{source.token}"


def _stamped(body: bytes = BODY, t: int | None = None, secret: str = SECRET) -> dict[str, str]:
    t = int(time.time()) if t is None else t
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-MultiFlexi-Signature": f"t={t},v1={sig}"}


def _legacy(body: bytes = BODY) -> dict[str, str]:
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={sig}"}


def _event_count() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Event)) or 0


def test_stamped_signature_is_accepted_and_not_kept(client: FlaskClient) -> None:
    url = _source()
    resp = client.post(url, data=BODY, headers=_stamped())
    assert resp.status_code == 202, resp.get_json()
    db.session.rollback()  # the webhook committed on its own connection: a new transaction
    event = db.session.get(Event, resp.get_json()["event_id"])
    assert event is not None
    assert not {k.lower() for k in event.headers} & {"x-multiflexi-signature"}


def test_replay_is_refused_whatever_the_delivery_id(client: FlaskClient) -> None:
    url = _source()
    t0 = int(time.time())
    headers = _stamped(t=t0)
    first = client.post(url, data=BODY, headers={**headers, "X-Delivery-Id": "d-1"})
    assert first.status_code == 202
    for delivery in ({}, {"X-Delivery-Id": "d-2"}, {"X-Delivery-Id": "d-1"}):
        again = client.post(url, data=BODY, headers={**headers, **delivery})
        assert again.status_code == 409, delivery
        assert "received before" in again.get_json()["error"]
    assert _event_count() == 1
    # The sender's retry, signed again with a new time, is a new request (delivery id dedups).
    retry = client.post(url, data=BODY, headers=_stamped(t=t0 - 1))
    assert retry.status_code == 202 and _event_count() == 2


def test_time_outside_the_tolerance_is_refused(client: FlaskClient) -> None:
    url = _source(tolerance=60)
    for t in (int(time.time()) - 120, int(time.time()) + 120):
        resp = client.post(url, data=BODY, headers=_stamped(t=t))
        assert resp.status_code == 401
        assert "more than 60 s from the receiver's clock" in resp.get_json()["error"]
    assert _event_count() == 0


def test_wrong_or_malformed_stamped_signatures_are_refused(client: FlaskClient) -> None:
    url = _source()
    bad = {
        "wrong key": _stamped(secret="other"),
        "other body": _stamped(body=b"{}"),
        "no t": {"X-MultiFlexi-Signature": "v1=" + "0" * 64},
        "no v1": {"X-MultiFlexi-Signature": f"t={int(time.time())}"},
        "huge t": {"X-MultiFlexi-Signature": "t=" + "9" * 5000 + ",v1=00"},
        "garbage": {"X-MultiFlexi-Signature": "\x7f" * 3000},
        "non-ASCII v1": {"X-MultiFlexi-Signature": f"t={int(time.time())},v1=\xe9"},
    }
    for name, headers in bad.items():
        resp = client.post(url, data=BODY, headers=headers)
        assert resp.status_code == 401, name
        assert "X-MultiFlexi-Signature" in resp.get_json()["error"], name
    assert _event_count() == 0


def test_non_ascii_body_only_signature_is_refused(client: FlaskClient) -> None:
    resp = client.post(_source(), data=BODY, headers={"X-Hub-Signature-256": "sha256=\xe9"})
    assert resp.status_code == 401


def test_required_timestamp_refuses_the_body_only_signature(client: FlaskClient) -> None:
    required, optional = _source(require=True), _source_named("other")
    refused = client.post(required, data=BODY, headers=_legacy())
    assert refused.status_code == 401
    assert "X-MultiFlexi-Signature" in refused.get_json()["error"]
    assert client.post(required, data=BODY, headers=_stamped()).status_code == 202
    assert client.post(optional, data=BODY, headers=_legacy()).status_code == 202
    assert _event_count() == 2


def _source_named(name: str) -> str:
    source = create_source(name, "webhook", secret=SECRET, company_id=make_company().id)
    db.session.commit()
    return f"/webhook/{source.token}"


def test_signing_settings_are_checked(app: Flask) -> None:
    source = create_source("plain", "webhook", company_id=make_company().id)
    with pytest.raises(EventSourceError, match="set a secret first"):
        set_signing(source, require_timestamp=True, tolerance=300)
    for tolerance in (0, 86_401, 10**30):
        with pytest.raises(EventSourceError, match="signature_tolerance"):
            set_signing(source, require_timestamp=False, tolerance=tolerance)
    folder = create_source("dir", "directory", {"path": "/tmp"}, secret=SECRET)
    with pytest.raises(EventSourceError, match="only webhook"):
        set_signing(folder, require_timestamp=True, tolerance=300)


def test_source_form_takes_the_flag_and_refuses_a_huge_tolerance(client: FlaskClient) -> None:
    login(client, make_user(is_admin=True))
    form = {"name": "formhook", "kind": "webhook", "config": "{}", "secret": SECRET}
    bad = client.post("/events/sources/new", data={**form, "signature_tolerance": "9" * 30})
    assert bad.status_code == 400 and "signature_tolerance" in bad.text
    ok = client.post(
        "/events/sources/new",
        data={**form, "require_timestamp": "1", "signature_tolerance": "120", "enabled": "1"},
    )
    assert ok.status_code == 302, ok.text
    source = db.session.scalar(select(EventSource).where(EventSource.name == "formhook"))
    assert source is not None
    assert (source.require_timestamp, source.signature_tolerance) == (True, 120)
    page = client.get(f"/events/sources/{source.id}").text
    assert "with a signed time required (X-MultiFlexi-Signature, within 120 s" in page


def test_remembered_signatures_are_pruned_after_the_window(client: FlaskClient) -> None:
    url = _source()
    source = db.session.scalar(select(EventSource).where(EventSource.name == "hook"))
    assert source is not None
    past = datetime.now(UTC) - timedelta(seconds=1)
    db.session.add(WebhookSignature(source_id=source.id, signature="0" * 64, expires_at=past))
    db.session.commit()
    assert client.post(url, data=BODY, headers=_stamped()).status_code == 202
    db.session.rollback()
    assert [r.signature for r in db.session.scalars(select(WebhookSignature))] != ["0" * 64]
    assert len(list(db.session.scalars(select(WebhookSignature)))) == 1


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(10)


def test_readme_example_works_against_a_real_server(app: Flask, server: str) -> None:
    """The README's openssl/curl lines, as written, through a real HTTP server."""
    url = _source(require=True)
    block = re.search(
        r"```sh\n(echo s3cret \| multiflexi event-source create billing.*?)```",
        README.read_text(),
        re.S,
    )
    assert block is not None, "the README's timestamped webhook example"
    script = block.group(1).split("\nbody=", 1)[1]
    script = "body=" + script.replace("http://127.0.0.1:8000/webhook/<token>", server + url)
    script = script.replace("curl -X", "curl -sS -o /dev/null -w '%{http_code}\\n' -X")
    first = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    again = subprocess.run(
        ["sh", "-c", script.replace("t=$(date +%s)", f"t={_t_of()}")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.stdout.strip() == "202", first.stderr
    assert again.stdout.strip() == "409", again.stderr
    assert _event_count() == 1


def _t_of() -> int:
    """The signed time of the one remembered signature (to send the same request again)."""
    db.session.rollback()
    [row] = db.session.scalars(select(WebhookSignature))
    return int(row.expires_at.timestamp()) - 301
