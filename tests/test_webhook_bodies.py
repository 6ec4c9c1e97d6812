"""How a webhook source reads bodies (auto, json, form), and how an unreadable one is told."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Company, Event, EventSource, EventStatus
from multiflexi_web.services.events.catalog import (
    EventSourceError,
    RuleSpec,
    create_rule,
    create_source,
)
from multiflexi_web.services.events.process import process_batch
from tests.factories import login, make_company, make_runtemplate, make_user

FORM = "application/x-www-form-urlencoded"
BODY = b'{"action":"published","ref":"v1.2"}'


def _source(body: str | None = None) -> EventSource:
    config = {"body": body} if body else {}
    source = create_source("hook", "webhook", config, company_id=make_company().id)
    db.session.commit()
    return source


def _events() -> list[Event]:
    # The webhook commits on a connection of its own: read in a new transaction (SQLite).
    db.session.rollback()
    return list(db.session.scalars(select(Event).order_by(Event.id)))


@pytest.mark.parametrize("ctype", [FORM, "text/plain", "application/json", None])
def test_auto_reads_json_whatever_the_content_type(client: FlaskClient, ctype: str | None) -> None:
    source = _source()
    resp = client.post(f"/webhook/{source.token}", data=BODY, content_type=ctype)
    assert resp.status_code == 202, resp.get_json()
    [event] = _events()
    assert event.payload == {"action": "published", "ref": "v1.2"} and event.error is None


def test_truncated_json_is_refused_with_the_reason_and_shown_in_the_portal(
    client: FlaskClient,
) -> None:
    source = _source()
    # As `curl -d` sends it: labelled a form, cut short.
    resp = client.post(f"/webhook/{source.token}", data=BODY[:20], content_type=FORM)
    assert resp.status_code == 400
    answer = resp.get_json()
    assert "not valid JSON" in answer["error"] and f"Content-Type: {FORM}" in answer["error"]
    [event] = _events()
    assert event.id == answer["event_id"] and event.status == EventStatus.FAILED.value
    assert event.raw_body == BODY[:20] and event.error == answer["error"]
    login(client, make_user(is_admin=True))
    detail = client.get(f"/events/{event.id}").get_data(as_text=True)
    assert "Error" in detail and "not valid JSON" in detail and "Try this body" in detail
    listing = client.get(f"/events/sources/{source.id}").get_data(as_text=True)
    assert "not valid JSON" in listing


def test_a_refused_delivery_can_be_sent_again_corrected_under_the_same_id(
    client: FlaskClient,
) -> None:
    source = _source()
    headers = {"X-Delivery-Id": "d-7"}
    bad = client.post(f"/webhook/{source.token}", data=b"{", headers=headers)
    good = client.post(f"/webhook/{source.token}", data=BODY, headers=headers)
    again = client.post(f"/webhook/{source.token}", data=BODY, headers=headers)
    assert (bad.status_code, good.status_code, again.status_code) == (400, 202, 202)
    assert again.get_json() == {"event_id": good.get_json()["event_id"], "duplicate": True}
    failed, stored = _events()
    assert failed.delivery_id is None and stored.delivery_id == "d-7"


def test_json_source_refuses_form_fields_and_form_source_refuses_json(
    client: FlaskClient,
) -> None:
    json_only, form_only = _source("json"), create_source("form", "webhook", {"body": "form"})
    db.session.commit()
    fields = client.post(f"/webhook/{json_only.token}", data={"a": "1"})
    assert fields.status_code == 400
    assert "this source expects JSON" in fields.get_json()["error"]
    as_json = client.post(f"/webhook/{form_only.token}", data=BODY, content_type=FORM)
    assert as_json.status_code == 400 and "not form fields" in as_json.get_json()["error"]
    ok = client.post(f"/webhook/{form_only.token}", data={"a": "1"})
    assert ok.status_code == 202 and _events()[-1].payload == {"a": "1"}
    with pytest.raises(EventSourceError, match="config body"):
        create_source("bad", "webhook", {"body": "xml"})


def test_an_event_no_rule_matched_says_so(client: FlaskClient) -> None:
    source = _source()
    company = db.session.get(Company, source.company_id)
    assert company is not None
    rule = RuleSpec(make_runtemplate(company).id, conditions=[{"path": "$.x", "op": "exists"}])
    create_rule(source, rule)
    db.session.commit()
    client.post(f"/webhook/{source.token}", data=BODY)
    db.session.rollback()  # the webhook committed on its own connection: a new transaction
    process_batch()
    db.session.commit()
    [event] = _events()
    assert event.status == EventStatus.PROCESSED.value
    assert event.error is not None and "no rule matched (1 enabled rule" in event.error
    login(client, make_user(is_admin=True))
    detail = client.get(f"/events/{event.id}").get_data(as_text=True)
    assert "Note" in detail and "no rule matched" in detail


def test_rule_tester_reads_the_body_as_the_source_does_and_names_the_runtemplate(
    client: FlaskClient,
) -> None:
    login(client, make_user(is_admin=True))
    company = make_company(name="Acme Ltd")
    rt = make_runtemplate(company, name="publish-release")
    source = create_source("hook", "webhook", company_id=company.id)
    create_rule(source, RuleSpec(rt.id, conditions=[{"path": "$.action", "value": "published"}]))
    db.session.commit()
    url = f"/events/sources/{source.id}/test"
    hit = client.post(url, data={"payload": BODY.decode(), "content_type": FORM})
    page = hit.get_data(as_text=True)
    assert hit.status_code == 200 and "Read as JSON" in page and FORM in page
    assert "publish-release" in page and "Acme Ltd" in page and f"/runtemplates/{rt.id}" in page
    cut = client.post(url, data={"payload": BODY[:20].decode(), "content_type": FORM})
    assert cut.status_code == 400 and "not valid JSON" in cut.get_data(as_text=True)
    fields = client.post(
        url, data={"payload": "payload=" + json.dumps({"action": "x"}), "content_type": FORM}
    )
    assert "Read as JSON in the form field payload" in fields.get_data(as_text=True)
