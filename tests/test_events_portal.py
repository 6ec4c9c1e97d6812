"""Portal pages for event sources, rules, the rule tester and received events."""

from __future__ import annotations

import json
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventRule, EventSource, Role
from multiflexi_web.services.events.catalog import RuleSpec, create_rule, create_source
from multiflexi_web.services.events.process import process_batch
from tests.factories import add_member, login, make_company, make_runtemplate, make_user


def test_admin_creates_a_webhook_source_and_sees_its_url(client: FlaskClient) -> None:
    login(client, make_user(is_admin=True))
    company = make_company()
    resp = client.post(
        "/events/sources/new",
        data={
            "name": "github",
            "kind": "webhook",
            "company": str(company.id),
            "config": "{}",
            "secret": "hmac-key",
            "enabled": "1",
        },
    )
    assert resp.status_code == 302
    source = db.session.scalars(select(EventSource)).one()
    assert source.company_id == company.id and source.secret and "hmac-key" not in source.secret
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert f"/webhook/{source.token}" in page and "HMAC-SHA256 required" in page
    assert "hmac-key" not in page


def test_bad_config_is_shown_next_to_the_form(client: FlaskClient) -> None:
    login(client, make_user(is_admin=True))
    resp = client.post(
        "/events/sources/new",
        data={"name": "q", "kind": "amqp", "config": '{"queue": ""}', "enabled": "1"},
    )
    assert resp.status_code == 400
    assert "required for a source of kind amqp" in resp.get_data(as_text=True)
    not_json = client.post(
        "/events/sources/new", data={"name": "q", "kind": "amqp", "config": "{x"}
    )
    assert not_json.status_code == 400 and "not valid JSON" in not_json.get_data(as_text=True)


def test_rules_crud_and_tester(client: FlaskClient) -> None:
    login(client, make_user(is_admin=True))
    company = make_company()
    rt = make_runtemplate(company, name="import-invoices")
    source = create_source("abra", "changes-db", {"url": "sqlite:///x.db"}, company_id=company.id)
    db.session.commit()
    resp = client.post(
        f"/events/sources/{source.id}/rules/new",
        data={
            "name": "invoices",
            "runtemplate": str(rt.id),
            "priority": "3",
            "conditions": "$.kod exists\n$.state in new, open",
            "evidence": "faktura-vydana",
            "operation": "create",
            "env_mapping": "DOC=$.kod",
            "enabled": "1",
        },
    )
    assert resp.status_code == 302, resp.get_data(as_text=True)
    rule = db.session.scalars(select(EventRule)).one()
    assert rule.conditions == [
        {"path": "$.kod", "op": "exists"},
        {"path": "$.state", "op": "in", "value": ["new", "open"]},
    ]
    assert (rule.evidence, rule.operation, rule.env_mapping) == (
        "faktura-vydana",
        "create",
        {"DOC": "$.kod"},
    )
    edit_form = client.get(f"/events/rules/{rule.id}/edit").get_data(as_text=True)
    assert "$.state in new, open" in edit_form

    payload = {
        "evidence": "faktura-vydana",
        "operation": "create",
        "kod": "FV1",
        "state": "new",
        "inversion": 4,
        "recordid": 9,
    }
    hit = client.post(
        f"/events/sources/{source.id}/test",
        data={"payload": json.dumps(payload)},
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)
    assert "DOC=FV1" in hit and "EVENT_INVERSION=4" in hit and "EVENT_RECORD_ID=9" in hit
    miss = client.post(
        f"/events/sources/{source.id}/test",
        data={"payload": json.dumps({**payload, "operation": "delete"})},
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)
    assert "No rule matches" in miss
    bad = client.post(f"/events/sources/{source.id}/test", data={"payload": "{nope"})
    assert bad.status_code == 400 and "not valid JSON" in bad.get_data(as_text=True)

    bad_rule = client.post(
        f"/events/rules/{rule.id}/edit",
        data={"runtemplate": str(rt.id), "priority": "1", "conditions": "what is this"},
    )
    assert bad_rule.status_code == 400 and "conditions line 1" in bad_rule.get_data(as_text=True)
    assert client.post(f"/events/rules/{rule.id}/delete").status_code == 302
    assert db.session.scalars(select(EventRule)).all() == []


def test_events_page_shows_matches_jobs_and_unmatched_events(client: FlaskClient) -> None:
    login(client, make_user(is_admin=True))
    rt = make_runtemplate(make_company())
    source = create_source("hook", "webhook")
    create_rule(source, RuleSpec(rt.id, conditions=[{"path": "$.go", "value": True}]))
    db.session.add_all(
        [
            Event(source_id=source.id, payload={"go": True}),
            Event(source_id=source.id, payload={"go": False}),
        ]
    )
    db.session.commit()
    [hit, miss] = process_batch()
    db.session.commit()
    page = client.get("/events/").get_data(as_text=True)
    assert f"/jobs/{hit.job_ids[0]}" in page and f"#{miss.event_id}" in page and "none" in page
    detail = client.get(f"/events/{hit.event_id}").get_data(as_text=True)
    assert f"/jobs/{hit.job_ids[0]}" in detail and "&#34;go&#34;: true" in detail


def test_company_members_see_only_their_sources_and_viewers_cannot_edit(
    client: FlaskClient,
) -> None:
    mine, other = make_company(), make_company()
    viewer = make_user()
    add_member(viewer, mine, Role.VIEWER)
    visible = create_source("mine", "webhook", company_id=mine.id)
    hidden = create_source("theirs", "webhook", company_id=other.id)
    global_ = create_source("global", "webhook")
    db.session.commit()
    login(client, viewer)
    index = client.get("/events/").get_data(as_text=True)
    assert "mine" in index and "theirs" not in index and "global" not in index
    assert client.get(f"/events/sources/{hidden.id}").status_code == 404
    assert client.get(f"/events/sources/{global_.id}").status_code == 404
    page = client.get(f"/events/sources/{visible.id}").get_data(as_text=True)
    assert visible.token and visible.token not in page  # the URL is for administrators
    assert client.get(f"/events/sources/{visible.id}/edit").status_code == 403
    assert client.post(f"/events/sources/{visible.id}/delete").status_code == 403
    assert client.get("/events/sources/new").status_code == 403


def test_a_company_admin_sets_up_only_sources_without_host_reach(client: FlaskClient) -> None:
    # A directory source lists the platform host's folders with the platform's rights (other
    # companies' artifacts included), and a queue source connects from its host to a queue
    # other companies may share: a global administrator's to set up (SPEC §15).
    mine = make_company()
    boss = make_user()
    add_member(boss, mine, Role.ADMIN)
    db.session.commit()
    login(client, boss)
    form = client.get("/events/sources/new").get_data(as_text=True)
    assert '<option value="webhook"' in form and '<option value="directory"' not in form
    for kind, config in (
        ("directory", {"path": "/", "recursive": True}),
        ("redis", {"url": "redis://127.0.0.1:6379/0", "key": "erp-events"}),
        ("amqp", {"queue": "erp-events"}),
        ("mqtt", {"topic": "erp/#"}),
        ("changes-db", {"url": "sqlite:////var/lib/multiflexi/multiflexi.db"}),
    ):
        data = {"name": kind, "kind": kind, "company": str(mine.id), "config": json.dumps(config)}
        resp = client.post("/events/sources/new", data=data)
        assert resp.status_code == 400, kind
        assert "only a global administrator may set up this kind" in resp.get_data(as_text=True)
    assert db.session.scalars(select(EventSource)).all() == []
    made = client.post(
        "/events/sources/new",
        data={"name": "erp", "kind": "webhook", "company": str(mine.id), "config": "{}"},
    )
    assert made.status_code == 302


def test_a_company_admin_cannot_repoint_an_assigned_source_and_never_sees_its_password(
    client: FlaskClient, tmp_path: Path
) -> None:
    mine = make_company()
    boss = make_user()
    add_member(boss, mine, Role.ADMIN)
    inbox = create_source("inbox", "directory", {"path": str(tmp_path)}, company_id=mine.id)
    url = "amqp://erp:br0ker-Pass@127.0.0.1:5672/%2F"
    queue = create_source("queue", "amqp", {"url": url, "queue": "q"}, company_id=mine.id)
    db.session.commit()
    login(client, boss)
    form = client.get(f"/events/sources/{queue.id}/edit").get_data(as_text=True)
    assert "br0ker-Pass" not in form and "Only a global administrator may change" in form
    shown = json.loads(client.get(f"/events/sources/{queue.id}/edit").get_data(as_text=True)
                       .split('name="config"', 1)[1].split(">", 1)[1].split("</textarea>", 1)[0]
                       .replace("&#34;", '"').replace("&quot;", '"'))  # fmt: skip
    # The form sent back as shown (masked password): a rename is fine, the password is kept.
    renamed = client.post(
        f"/events/sources/{queue.id}/edit",
        data={"name": "queue-2", "config": json.dumps(shown), "enabled": "1"},
    )
    assert renamed.status_code == 302
    db.session.expire_all()
    assert (queue.name, queue.config["url"]) == ("queue-2", url)
    repointed = client.post(
        f"/events/sources/{inbox.id}/edit",
        data={"name": "inbox", "config": json.dumps({"path": "/"}), "enabled": "1"},
    )
    assert repointed.status_code == 400
    assert "only a global administrator may change a directory source" in repointed.get_data(
        as_text=True
    )
    db.session.expire_all()
    assert inbox.config["path"] == str(tmp_path)
    # A global administrator may.
    login(client, make_user(is_admin=True))
    moved = client.post(
        f"/events/sources/{inbox.id}/edit",
        data={"name": "inbox", "config": json.dumps({"path": "/srv"}), "enabled": "1"},
    )
    assert moved.status_code == 302
    db.session.expire_all()
    assert inbox.config["path"] == "/srv"


def test_a_company_admin_cannot_aim_a_rule_at_another_company(client: FlaskClient) -> None:
    mine, other = make_company(), make_company()
    admin = make_user()
    add_member(admin, mine, Role.ADMIN)
    own, foreign = make_runtemplate(mine), make_runtemplate(other)
    source = create_source("erp", "webhook", company_id=mine.id)
    db.session.commit()
    login(client, admin)
    form = {"name": "r", "priority": "0", "env_mapping": "", "conditions": "", "enabled": "1"}
    url = f"/events/sources/{source.id}/rules/new"
    page = client.get(url).get_data(as_text=True)
    assert f'value="{own.id}"' in page and f'value="{foreign.id}"' not in page
    resp = client.post(url, data={**form, "runtemplate": str(foreign.id)})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "not a RunTemplate of the company of source" in body
    assert client.post(url, data={**form, "runtemplate": ""}).status_code == 400
    assert db.session.scalars(select(EventRule)).all() == []
    assert client.post(url, data={**form, "runtemplate": str(own.id)}).status_code == 302
