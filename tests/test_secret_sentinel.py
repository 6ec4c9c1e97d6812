"""A sentinel secret seeded through every input appears nowhere in clear after a real job."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from multiflexi_web.config import Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import (
    Artifact,
    Base,
    Company,
    CredentialPrototype,
    Event,
    EventRule,
    EventSource,
    Job,
    Role,
    RunTemplate,
    User,
)
from multiflexi_web.models.action import ActionRun
from multiflexi_web.services.catalogue.credentials import create_credential
from multiflexi_web.services.events.catalog import create_source
from multiflexi_web.services.runtemplates.configure import RunTemplateSpec, create_runtemplate
from tests.action_support import FAST, dispatch_all
from tests.api_helpers import basic
from tests.executor_support import drain, job
from tests.factories import (
    add_member,
    client_for,
    make_app,
    make_company,
    make_event,
    make_event_rule,
    make_prototype,
    make_user,
)

BASE = "snt" + secrets.token_hex(6)  # every seeded secret contains it; nothing else does
SCRIPT = (
    'printf "%s\\n" "$CRED_PASSWORD" "$API_PASSWORD" "$ONE_TIME" "$COMPANY_API_TOKEN" "$1";'
    ' printf "%s" "$API_PASSWORD" >&2'
)
# Ids to fill each URL argument with, by argument name.
ARG_MODELS = {
    "app_id": None,
    "company_id": Company,
    "prototype_id": CredentialPrototype,
    "credential_id": None,
    "event_id": Event,
    "rule_id": EventRule,
    "source_id": EventSource,
    "job_id": Job,
    "artifact_id": Artifact,
    "rt_id": RunTemplate,
    "user_id": User,
    "run_id": ActionRun,
}


def _seed(admin: FlaskClient) -> tuple[int, int]:
    """Every input of a secret: credential, config in cmdparams, one-time, company env, webhook."""
    proto = make_prototype("Vault", fields=[{"keyword": "CRED_PASSWORD", "type": "password"}])
    app = make_app(
        executable="/bin/sh",
        requirements=[proto.code],
        fields=[{"keyname": "API_PASSWORD", "type": "password"}, {"keyname": "ONE_TIME"}],
    )
    app.cmdparams = f"-c '{SCRIPT}' sh --password={{API_PASSWORD}}"
    company = make_company(slug="acme")
    cred = create_credential(company, proto.code, "vault", {"CRED_PASSWORD": f"{BASE}-cred"})
    rt = create_runtemplate(
        company,
        app,
        RunTemplateSpec(
            name="leaky", config={"API_PASSWORD": f"{BASE}-cfg"}, credential_ids=[cred.id]
        ),
    )
    source = create_source("hook", "webhook", secret=f"{BASE}-hook", company_id=company.id)
    make_event_rule(source, rt)
    make_event(source, {"hello": "world"})
    db.session.commit()
    hook = admin.post(  # an action secret (the peer refuses: its error is recorded too)
        f"/runtemplates/{rt.id}/actions/success/WebHook",
        data={"cfg_url": "http://127.0.0.1:9/hook", "cfg_secret": f"{BASE}-action"},
    )
    assert hook.status_code == 302, hook.get_data(as_text=True)
    env = admin.post(
        f"/companies/{company.id}/env", data={"key": "COMPANY_API_TOKEN", "value": f"{BASE}-co"}
    )
    assert env.status_code in (200, 302), env.get_data(as_text=True)
    run = admin.post(
        f"/runtemplates/{rt.id}/run",
        data={"env_key": ["ONE_TIME", ""], "env_value": [f"{BASE}-once", ""], "env_secret": "0"},
    )
    assert run.status_code == 302, run.get_data(as_text=True)
    job_id = int(run.headers["Location"].rstrip("/").rsplit("/", 1)[-1])
    return rt.id, job_id


@pytest.fixture
def seeded(app: Flask, caplog: pytest.LogCaptureFixture) -> Iterator[tuple[int, int]]:
    caplog.set_level(logging.DEBUG)
    admin_user = make_user(is_admin=True)
    rt_id, job_id = _seed(client_for(app, admin_user))
    drain(app)
    finished = job(job_id)
    assert finished.status == "succeeded", finished.status_reason
    dispatch_all(app, dataclasses.replace(FAST, max_attempts=1))
    yield rt_id, job_id


def test_the_job_got_every_secret_and_its_output_is_masked(
    app: Flask, seeded: tuple[int, int]
) -> None:
    _, job_id = seeded
    finished = job(job_id)
    assert finished.command is not None
    assert finished.command[-1] == "--password=••••••••"
    stdout_rows = db.session.scalars(select(Artifact).where(Artifact.job_id == job_id)).all()
    assert stdout_rows, "the output artifacts are kept"
    # The program printed five secret lines: each is masked, none is missing.
    shown = {e["key"]: e for e in finished.env or []}
    for key in ("CRED_PASSWORD", "API_PASSWORD", "ONE_TIME", "COMPANY_API_TOKEN"):
        assert shown[key]["secret"] and shown[key]["value"] == "••••••••", key


def test_the_sentinel_is_in_no_table(app: Flask, settings: Settings, seeded: object) -> None:
    needle = BASE.encode()
    found = []
    for table in Base.metadata.sorted_tables:
        for row in db.session.execute(select(table)).all():
            for col, value in zip(table.columns, row, strict=True):
                raw = bytes(value) if isinstance(value, bytes | bytearray | memoryview) else None
                if needle in (raw if raw is not None else str(value).encode()):
                    found.append(f"{table.name}.{col.name}")
    assert found == []
    if settings.database_url.startswith("sqlite:///"):
        db.session.commit()
        path = Path(settings.database_url.removeprefix("sqlite:///"))
        for file in (path, Path(f"{path}-wal")):
            if file.exists():
                assert needle not in file.read_bytes(), file.name


def test_the_sentinel_is_in_no_log(seeded: object, caplog: pytest.LogCaptureFixture) -> None:
    records = caplog.get_records("setup")  # the job ran while the fixture set up
    assert any("job_finished" in r.getMessage() for r in records), "the executor logged its work"
    assert not [r.getMessage() for r in records if BASE in r.getMessage()]


def _urls(app: Flask) -> list[str]:
    ids = {
        name: [int(i) for i in db.session.scalars(select(model.id))] if model else []
        for name, model in ARG_MODELS.items()
    }
    ids["app_id"] = [int(i) for i in db.session.scalars(select(Job.application_id))]
    ids["credential_id"] = _credential_ids()
    ids["stream"] = ["stdout", "stderr"]  # type: ignore[list-item]
    ids["mode"] = ["success", "failure"]  # type: ignore[list-item]
    ids["kind"] = ["WebHook"]  # type: ignore[list-item]
    ids["suffix"] = ["json"]  # type: ignore[list-item]
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.endpoint in ("static", "auth.login"):
            continue
        names = sorted(rule.arguments)
        assert all(n in ids for n in names), f"{rule.rule}: fill {names} in ARG_MODELS"
        for combo in itertools.product(*(ids[n] for n in names)):
            urls.append(_build(app, rule.endpoint, dict(zip(names, combo, strict=True))))
    return urls


def _credential_ids() -> list[int]:
    from multiflexi_web.models import Credential

    return [int(i) for i in db.session.scalars(select(Credential.id))]


def _build(app: Flask, endpoint: str, values: dict[str, object]) -> str:
    with app.test_request_context():
        from flask import url_for

        return url_for(endpoint, **values)


@pytest.mark.parametrize("role", ["admin", Role.OPERATOR.value, Role.VIEWER.value])
def test_the_sentinel_is_on_no_page(app: Flask, seeded: tuple[int, int], role: str) -> None:
    user = make_user(is_admin=role == "admin")
    if role != "admin":
        add_member(user, db.session.scalars(select(Company)).one(), role)
    db.session.commit()
    client = client_for(app, user)
    urls = _urls(app)
    assert any("/artifacts/" in u for u in urls) and any("/output" in u for u in urls)
    seen = 0
    # The upstream-compatible API takes the user's Basic login (never the session cookie).
    upstream = [f"{u}?output=true" for u in urls if "/api/VitexSoftware/" in u]
    for url in urls + upstream:
        for headers in ({}, {"HX-Request": "true"}):
            if "/api/VitexSoftware/" in url:
                headers = {**headers, **basic(user.login)}
            resp = client.get(url, headers=headers)
            assert resp.status_code < 500, url
            seen += resp.status_code == 200
            if url in upstream:  # the job detail with its output, as every role may see it
                assert resp.status_code == 200, (url, resp.get_data(as_text=True))
            assert BASE.encode() not in resp.data, f"{url} ({role}, {headers})"
    assert seen > 40  # the walk reached real pages, not only refusals


CLI_CALLS = [
    ["company", "list"],
    ["credential", "list"],
    ["runtemplate", "list"],
    ["app", "list"],
    ["app", "show", "{app_id}"],
    ["credential-prototype", "show", "Vault"],
    ["runtemplate", "show", "{rt_id}"],
    ["job", "list"],
    ["job", "show", "{job_id}"],
    ["artifact", "list", "{job_id}"],
    ["event-source", "list"],
    ["event-rule", "list"],
    ["event", "list"],
    ["runtemplate", "action", "list", "{rt_id}"],
    ["job", "actions", "{job_id}"],
    ["action", "kinds"],
]


def test_the_sentinel_is_in_no_cli_output(
    app: Flask, runner: FlaskCliRunner, seeded: tuple[int, int], tmp_path: Path
) -> None:
    rt_id, job_id = seeded
    app_id = job(job_id).application_id
    values = {"rt_id": rt_id, "job_id": job_id, "app_id": app_id}
    for call in CLI_CALLS:
        args = [a.format(**values) for a in call]
        for fmt in ("json", "text"):
            result = runner.invoke(args=[*args, "--format", fmt])
            assert result.exit_code == 0, (args, result.output)
            assert BASE not in result.output, (args, fmt)
    for stream in ("stdout", "stderr"):
        result = runner.invoke(args=["job", "output", str(job_id), "--stream", stream])
        assert result.exit_code == 0, result.output
        assert "••••••••" in result.output and BASE not in result.output, stream
    for art in db.session.scalars(select(Artifact).where(Artifact.job_id == job_id)):
        dest = tmp_path / f"art-{art.id}"
        result = runner.invoke(args=["artifact", "get", str(art.id), "--output", str(dest)])
        assert result.exit_code == 0, result.output
        assert BASE not in result.output
        assert BASE.encode() not in dest.read_bytes(), art.filename
