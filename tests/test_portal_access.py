"""Walks the WHOLE url map as every role and checks login, roles and company isolation.

New routes are covered automatically; a route with a URL parameter this file does not know
fails `test_every_url_parameter_is_known` until PARAMS below learns how to fill it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.routing import Rule

from multiflexi_web.extensions import db
from multiflexi_web.models import Base, JobStatus, Role, User
from multiflexi_web.models.action import ActionConfig, ActionRun
from multiflexi_web.services.accounts import tokens
from multiflexi_web.views import PUBLIC_ENDPOINTS, PUBLIC_PREFIXES
from tests.factories import (
    add_member,
    isolate_requests,
    login,
    make_app,
    make_artifact,
    make_audit,
    make_company,
    make_credential,
    make_event,
    make_event_rule,
    make_event_source,
    make_job,
    make_prototype,
    make_runtemplate,
    make_user,
    make_worker,
)

# Routes outside the session-based portal: the REST API (token auth) has its own tests.
SKIPPED_PREFIXES = ("api.",)
# POST routes any logged-in user may use, with the reason; they must not change the database.
POST_FOR_EVERYONE = {
    "auth.logout": "ends one's own sessions (moves one's session epoch; not walked below)",
    "events.test_payload": "the rule tester only evaluates a payload against the rules",
}
# POST routes on one's own account, not on a company: any user may use them, and they change
# only that user's rows (tests/test_portal_tokens.py: others' tokens answer 404).
PERSONAL = {
    "tokens.create": "creates a personal API token for oneself",
    "tokens.revoke": "revokes one of one's own API tokens",
}
# Query-string parameters a route needs to reach its real work: {endpoint: {arg: PARAMS key}}.
QUERY_PARAMS = {
    "runtemplates.new": {"company": "company_id", "app": "app_id"},
    "runtemplates.credentials_step": {"company": "company_id", "app": "app_id"},
}
# URL parameters whose value belongs to one company: B's values must be invisible to A.
COMPANY_SCOPED = {
    "company_id",
    "rt_id",
    "runtemplate_id",
    "job_id",
    "artifact_id",
    "credential_id",
    "credtype_id",
    "source_id",
    "rule_id",
    "event_id",
    "env_id",
    "upload_id",
    "action_id",
    "run_id",
}
# Fixed values for parameters that are not row ids.
CONSTANTS: dict[str, Any] = {
    "stream": "stdout",
    "filename": "app.css",
    "mode": "failure",
    "kind": "WebHook",
}
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
# GET pages that rightly answer 404 for this fixture's objects, with the reason.
NOT_FOR_FIXTURE = {"job_artifacts.image": "the fixture's artifact is JSON, not an image"}
ROLES = ("viewer", "operator", "admin")


@dataclass
class World:
    """Two companies with one of everything each, a member of A per role, a global admin."""

    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)


def _scope(tag: str, world: World) -> None:
    company = make_company(f"Company {tag.upper()}", env={"GREETING": "hello"})
    members = {}
    for role in ROLES:
        members[role] = make_user(f"{tag}-{role}")
        add_member(members[role], company, Role(role))
    proto = make_prototype(f"proto{tag}")
    cred = make_credential(company, proto)
    app = make_app(f"app-{tag}", requirements=[proto.code], exit_codes={1: "failed"})
    rt = make_runtemplate(company, app)
    job = make_job(rt, status=JobStatus.FAILED, output="some output\n")
    make_job(rt, status=JobStatus.SCHEDULED)
    artifact = make_artifact(job)
    source = make_event_source(company)
    event = make_event(source)
    rule = make_event_rule(source, rt)
    run = _action_run(rt, job.id)
    world.params[tag] = {
        "company_id": company.id,
        "app_id": app.id,
        "rt_id": rt.id,
        "runtemplate_id": rt.id,
        "job_id": job.id,
        "artifact_id": artifact.id,
        "credential_id": cred.id,
        "credtype_id": cred.credential_type_id,
        "prototype_id": proto.id,
        "source_id": source.id,
        "event_id": event.id,
        "rule_id": rule.id,
        "env_id": company.env[0].id,
        "user_id": members["operator"].id,
        "token": source.token,
        "token_id": tokens.issue(members["operator"], f"token-{tag}").token.id,
        "run_id": run.id,
        "worker_id": make_worker("executor").id,
        **CONSTANTS,
    }
    db.session.commit()
    if tag == "a":
        world.users.update(members)


def _action_run(rt: Any, job_id: int) -> ActionRun:
    """A failed WebHook run (a loopback URL nobody answers) of the template's failure action."""
    config = ActionConfig(
        runtemplate_id=rt.id,
        mode="failure",
        action="WebHook",
        config={"url": "http://127.0.0.1:9/"},
    )
    db.session.add(config)
    db.session.flush()
    run = ActionRun(
        job_id=job_id, action="WebHook", mode="failure", status="failed", config_id=config.id
    )
    db.session.add(run)
    db.session.commit()
    return run


def build_world() -> World:
    world = World()
    _scope("a", world)
    _scope("b", world)
    world.users["global"] = make_user("global-admin", is_admin=True)
    worker = make_worker()
    make_audit(user=world.users["global"])
    for tag in ("a", "b"):
        world.params[tag]["worker_id"] = worker.id
    return world


@pytest.fixture
def world(app: Flask) -> World:
    isolate_requests(app)
    return build_world()


@pytest.fixture
def clients(app: Flask, world: World) -> dict[str, FlaskClient]:
    """A logged-in client per role (A's viewer, operator, admin; the global admin)."""
    out = {}
    for name, user in world.users.items():
        out[name] = app.test_client()
        login(out[name], user)
    return out


def portal_rules(app: Flask) -> Iterator[Rule]:
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith(SKIPPED_PREFIXES):
            continue
        yield rule


def is_public(rule: Rule) -> bool:
    return rule.endpoint in PUBLIC_ENDPOINTS or rule.endpoint.startswith(PUBLIC_PREFIXES)


def methods(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


def url(rule: Rule, values: dict[str, Any]) -> str:
    missing = set(rule.arguments) - set(values)
    assert not missing, f"{rule.rule}: no value for {sorted(missing)}; add them to PARAMS"
    built = rule.build({k: values[k] for k in rule.arguments}, append_unknown=False)
    assert built is not None, f"{rule.rule}: cannot be built from {values}"
    query = {arg: values[key] for arg, key in QUERY_PARAMS.get(rule.endpoint, {}).items()}
    return built[1] + ("?" + urlencode(query) if query else "")


def scoped_args(rule: Rule) -> list[str]:
    """The company-owned values a route is called with: path arguments and query parameters."""
    names = list(rule.arguments) + list(QUERY_PARAMS.get(rule.endpoint, {}).values())
    return [n for n in names if n in COMPANY_SCOPED]


def request(client: FlaskClient, method: str, path: str) -> int:
    return client.open(path, method=method, data={}).status_code


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: a refused request must leave all of it as it was."""
    db.session.expire_all()
    with db.engine.connect() as conn:
        return {
            t.name: sorted((tuple(r) for r in conn.execute(select(t))), key=repr)
            for t in Base.metadata.sorted_tables
        }


def test_every_url_parameter_is_known(app: Flask, world: World) -> None:
    unknown = {
        (rule.rule, arg)
        for rule in portal_rules(app)
        for arg in rule.arguments
        if arg not in world.params["a"]
    }
    assert not unknown, f"teach tests/test_portal_access.py these URL parameters: {unknown}"


def test_anonymous_is_sent_to_login_everywhere_but_public_pages(app: Flask, world: World) -> None:
    client = app.test_client()
    checked = 0
    for rule in portal_rules(app):
        if is_public(rule):
            continue
        path = url(rule, world.params["a"])
        for method in methods(rule):
            resp = client.open(path, method=method, data={})
            assert resp.status_code == 302, f"anonymous {method} {path}: {resp.status_code}"
            assert "/login" in resp.headers["Location"], f"{method} {path} -> {resp.location}"
            checked += 1
    assert checked > 40


def test_every_page_renders_for_every_role(
    app: Flask, world: World, clients: dict[str, FlaskClient]
) -> None:
    """No GET fails with a server error; the global admin gets every page itself."""
    for rule in portal_rules(app):
        if "GET" not in methods(rule) or is_public(rule):
            continue
        path = url(rule, world.params["a"])
        for name, client in clients.items():
            status = request(client, "GET", path)
            assert status < 500, f"{name} GET {path}: {status}"
            if name == "global" and rule.endpoint not in NOT_FOR_FIXTURE:
                assert status in {200, 302}, f"{name} GET {path}: {status}"


def test_viewers_cannot_change_anything(
    app: Flask, world: World, clients: dict[str, FlaskClient]
) -> None:
    before = snapshot()
    refused, wrong = 0, []
    for rule in portal_rules(app):
        changing = STATE_CHANGING & set(methods(rule))
        personal = rule.endpoint in PERSONAL
        if not changing or is_public(rule) or rule.endpoint == "auth.logout" or personal:
            continue
        path = url(rule, world.params["a"])
        for method in changing:
            status = request(clients["viewer"], method, path)
            if rule.endpoint in POST_FOR_EVERYONE:
                assert status < 500, f"viewer {method} {path}: {status}"
            elif status != 403:
                wrong.append(f"{method} {path} ({rule.endpoint}): {status}")
            refused += 1
    assert not wrong, f"viewer not refused with 403 by: {wrong}"
    assert refused > 15
    assert snapshot() == before, "a refused request changed the database"


def _scoped_rules(app: Flask) -> Iterator[Rule]:
    for rule in portal_rules(app):
        if not is_public(rule) and scoped_args(rule):
            yield rule


def test_company_b_is_invisible_to_members_of_company_a(
    app: Flask, world: World, clients: dict[str, FlaskClient]
) -> None:
    """B's objects answer 404, as if they did not exist (403 only where A's answer it too)."""
    before = snapshot()
    checked = 0
    for rule in _scoped_rules(app):
        own, foreign = url(rule, world.params["a"]), url(rule, world.params["b"])
        for role in ROLES:
            for method in methods(rule):
                status = request(clients[role], method, foreign)
                if status == 403:
                    # Refused for the role whatever the object: nothing about B leaks.
                    assert request(clients[role], method, own) == 403, f"{role} {method} {foreign}"
                else:
                    assert status == 404, f"{role} {method} {foreign}: {status}, expected 404"
                checked += 1
    assert checked > 50
    assert snapshot() == before, "a request on another company's object changed the database"


def test_global_admin_sees_both_companies_but_no_mixed_urls(
    app: Flask, world: World, clients: dict[str, FlaskClient]
) -> None:
    """B's pages answer; a URL mixing A's parent with B's child (A's job, B's artifact) does not."""
    for rule in _scoped_rules(app):
        if "GET" not in methods(rule) or rule.endpoint in NOT_FOR_FIXTURE:
            continue
        path = url(rule, world.params["b"])
        status = request(clients["global"], "GET", path)
        assert status in {200, 302}, f"global admin GET {path}: {status}"
        scoped = scoped_args(rule)
        for child in scoped if len(scoped) > 1 else []:
            mixed = url(rule, {**world.params["a"], child: world.params["b"][child]})
            status = request(clients["global"], "GET", mixed)
            assert status == 404, f"global admin GET {mixed} (B's {child}): {status}"
