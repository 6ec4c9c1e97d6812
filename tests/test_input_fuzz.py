"""Fuzzed forms and JSON inputs: bad input gets a clear 4xx answer, never a 500."""

from __future__ import annotations

import io
import json
from typing import Any

from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from multiflexi_web.extensions import db
from multiflexi_web.models import EventSource, RunTemplate
from multiflexi_web.services.events.catalog import create_source
from tests.factories import (
    login,
    make_app,
    make_company,
    make_event_rule,
    make_prototype,
    make_runtemplate,
    make_user,
)

# Inputs that broke parsers before: deep nesting, numbers past int()'s digit limit or any SQL
# integer, non-ASCII digits, NUL, non-finite numbers.
EVIL_TEXTS = [
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 5_000 + "1" + "}" * 5_000,
    "[" * 900 + "]" * 900,
    "1" * 5_000,
    "-" + "9" * 4_400,
    "9" * 30,
    "1e999",
    "NaN",
    '{"a": "\\u0000"}',
    "²",
    "١٢٣",
    "",
    " ",
    "0x10",
    "-0",
]
NUMBERS = st.one_of(
    st.integers().map(str),
    st.sampled_from(EVIL_TEXTS),
    st.text(max_size=30),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
JSON_TEXTS = st.one_of(
    JSON_VALUES.map(json.dumps), st.sampled_from(EVIL_TEXTS), st.text(max_size=200)
)
LINES = st.lists(
    st.one_of(
        st.sampled_from(["$.a == 1", "$.a exists", "$.a in 1, 2", "$" + ".a" * 40 + " exists"]),
        st.builds(lambda p, v: f"{p} == {v}", st.text(max_size=30), JSON_TEXTS),
        st.builds(lambda op, v: f"$.a {op} {v}", st.sampled_from(["==", "in"]), JSON_TEXTS),
        st.text(max_size=60),
    ),
    max_size=5,
).map("\n".join)


def _admin(client: FlaskClient) -> None:
    login(client, make_user(is_admin=True))


def _source() -> tuple[EventSource, RunTemplate]:
    company = make_company()
    source = create_source("fuzz", "webhook", company_id=company.id)
    rt = make_runtemplate(company)
    make_event_rule(source, rt)
    db.session.commit()
    return source, rt


def test_rule_tester_payloads(client: FlaskClient) -> None:
    _admin(client)
    source, _ = _source()

    @given(payload=JSON_TEXTS)
    def check(payload: str) -> None:
        resp = client.post(f"/events/sources/{source.id}/test", data={"payload": payload})
        assert resp.status_code in (200, 400), resp.text[:500]

    check()


def test_rule_form(client: FlaskClient) -> None:
    _admin(client)
    source, rt = _source()

    @given(conditions=LINES, env=LINES, priority=NUMBERS, runtemplate=NUMBERS)
    def check(conditions: str, env: str, priority: str, runtemplate: str) -> None:
        form = {
            "runtemplate": runtemplate if runtemplate.strip() else str(rt.id),
            "name": "r",
            "priority": priority,
            "conditions": conditions,
            "env_mapping": env,
            "operation": "any",
        }
        resp = client.post(f"/events/sources/{source.id}/rules/new", data=form)
        assert resp.status_code in (302, 400), resp.text[:500]

    check()


def test_webhook_bodies(client: FlaskClient) -> None:
    source, _ = _source()
    signed = create_source("fuzz-signed", "webhook", secret="k", company_id=source.company_id)
    db.session.commit()
    urls = st.sampled_from([f"/webhook/{source.token}", f"/webhook/{signed.token}"])

    # Header values without control characters: the test client itself refuses those.
    stamps = st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"))

    @given(
        url=urls,
        body=st.one_of(JSON_TEXTS.map(str.encode), st.binary(max_size=300)),
        header=st.sampled_from(["X-MultiFlexi-Signature", "X-Hub-Signature-256"]),
        stamp=st.one_of(stamps, stamps.map("sha256=".__add__), stamps.map("t=1,v1=".__add__)),
    )
    def check(url: str, body: bytes, header: str, stamp: str) -> None:
        headers = {header: stamp}
        resp = client.post(url, data=body, headers=headers, content_type="application/json")
        assert resp.status_code in (202, 400, 401, 413), resp.text[:500]

    check()


MINIMAL_APP = {
    "uuid": "7c9e1a3f-2b4d-4e6f-8a1b-3c5d7e9f1a2b",
    "name": "Fuzzed",
    "description": "An app",
    "executable": "/bin/true",
    "environment": {},
}


def test_app_import(client: FlaskClient) -> None:
    _admin(client)
    key = st.sampled_from([*MINIMAL_APP, "artifacts", "exitCodes", "environment", "timeout"])

    @given(changes=st.dictionaries(key, JSON_VALUES, max_size=3), raw=st.none() | JSON_TEXTS)
    def check(changes: dict[str, Any], raw: str | None) -> None:
        data = raw.encode() if raw is not None else json.dumps({**MINIMAL_APP, **changes}).encode()
        files = {"files": (io.BytesIO(data), "fuzz.multiflexi.app.json")}
        resp = client.post("/applications/import", data=files, content_type="multipart/form-data")
        assert resp.status_code in (200, 400), resp.text[:500]

    check()


def test_runtemplate_form(client: FlaskClient) -> None:
    _admin(client)
    company, app = make_company(), make_app()
    db.session.commit()
    url = f"/runtemplates/new?company={company.id}&app={app.id}"

    @given(
        timeout=NUMBERS,
        delay=NUMBERS,
        attempts=NUMBERS,
        gap=NUMBERS,
        name=st.text(max_size=300),
        interval=st.sampled_from(["n", "d", "c", "x", ""]),
    )
    def check(timeout: str, delay: str, attempts: str, gap: str, name: str, interval: str) -> None:
        form = {
            "name": name or "x",
            "interval": interval,
            "cron": "0 2 * * *",
            "delay": delay,
            "executor": "native",
            "timeout": timeout,
            "max_attempts": attempts,
            "retry_min_gap": gap,
            "retry_backoff": "fixed",
        }
        resp = client.post(url, data=form, content_type="multipart/form-data")
        assert resp.status_code in (302, 400), resp.text[:500]

    check()


def test_company_form(client: FlaskClient) -> None:
    _admin(client)

    @given(name=st.text(max_size=300), slug=st.text(max_size=80), email=st.text(max_size=300))
    def check(name: str, slug: str, email: str) -> None:
        form = {"name": name, "slug": slug, "email": email}
        resp = client.post("/companies/new", data=form)
        assert resp.status_code in (302, 400), resp.text[:500]

    check()


def test_credential_form(client: FlaskClient) -> None:
    _admin(client)
    company, proto = make_company(), make_prototype()
    db.session.commit()

    @given(proto_id=NUMBERS, name=st.text(max_size=300), login_=st.text(), password=st.text())
    def check(proto_id: str, name: str, login_: str, password: str) -> None:
        form = {
            "prototype_id": proto_id if proto_id.strip() else str(proto.id),
            "name": name,
            "LOGIN": login_,
            "PASSWORD": password,
        }
        resp = client.post(f"/companies/{company.id}/credentials/new", data=form)
        assert resp.status_code in (302, 400), resp.text[:500]

    check()


URLS = [
    "/companies/{}/edit",
    "/credentials/{}",
    "/runtemplates/{}/edit",
    "/jobs/{}",
    "/events/{}",
    "/events/sources/{}",
    "/applications/{}",
]


def test_ids_in_urls(client: FlaskClient) -> None:
    """Ids past any column type (SQLite overflow, PostgreSQL out-of-range) are no page."""
    _admin(client)
    ids = st.one_of(st.integers(min_value=0, max_value=10**30), st.sampled_from([2**31, 2**63]))

    @given(url=st.sampled_from(URLS), object_id=ids)
    def check(url: str, object_id: int) -> None:
        resp = client.get(url.format(object_id))
        assert resp.status_code in (400, 404), resp.text[:500]

    check()
