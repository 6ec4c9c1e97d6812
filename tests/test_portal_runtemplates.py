"""The RunTemplate wizard, edit form, schedule preview, clone and delete."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import FileUpload, Job, Role, RunTemplate
from multiflexi_web.security.secrets import cipher
from multiflexi_web.services.runtemplates.configure import plain_config
from tests.factories import (
    isolate_requests,
    make_app,
    make_company,
    make_credential,
    make_job,
    make_prototype,
    make_runtemplate,
)
from tests.portal_b_helpers import fresh, member_client, operator_setup, set_secret, typed_app

HX = {"HX-Request": "true"}


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Each request in its own app context and session, as in production."""
    isolate_requests(app)
    return app.test_client()


def _form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Nightly import",
        "cfg-VERBOSE": "false",  # the hidden input alone: the checkbox was left unchecked
        "cfg-MODE": "fast",
        "cfg-API_PASSWORD": "hunter2-secret",
        "cfg-NOTES": "line one\nline two",
        "cfg-COUNT": "7",
        "cfg-RATIO": "0.5",
        "cfg-MAILTO": "ops@example.com",
        "cfg-ENDPOINT": "https://example.com/api",
        "cfg-LABEL": "nightly",
        "interval": "c",
        "cron": "30 2 * * *",
        "delay": "0",
        "timezone": "Europe/Prague",
        "executor": "native",
        "timeout": "600",
        "misfire": "skip",
        "overlap": "wait",
        "max_attempts": "3",
        "retry_backoff": "fixed",
        "retry_min_gap": "30",
        "active": ["false", "true"],
        "file-INPUT_FILE": (io.BytesIO(b"a;b\n1;2\n"), "../input data.csv"),
    }
    data.update(overrides)
    return data


def _created_id(resp: Any) -> int:
    assert resp.status_code == 302, resp.text
    found = re.search(r"/runtemplates/(\d+)", resp.headers["Location"])
    assert found is not None, resp.headers["Location"]
    return int(found[1])


def test_wizard_walks_company_then_application_then_form(app: Flask, client: FlaskClient) -> None:
    company, _ = operator_setup(client)
    viewer_only = make_company(name="Read Only Inc")
    application = typed_app(name="importer")
    step1 = client.get("/runtemplates/new").text
    assert f"/runtemplates/new?company={company.id}" in step1 and "Read Only Inc" not in step1
    step2 = client.get(f"/runtemplates/new?company={company.id}").text
    assert f"app={application.id}" in step2
    form = client.get(f"/runtemplates/new?company={company.id}&app={application.id}").text
    assert 'type="hidden" name="cfg-VERBOSE" value="false"' in form
    assert re.search(r'type="checkbox" name="cfg-VERBOSE" value="true"[^>]*checked', form)
    assert '<option value="safe" selected>Safe</option>' in form
    assert 'type="password" name="cfg-API_PASSWORD"' in form
    assert '<textarea name="cfg-NOTES"' in form and 'type="file" name="file-INPUT_FILE"' in form
    assert 'type="number" step="1" name="cfg-COUNT"' in form
    assert client.get(f"/runtemplates/new?company={viewer_only.id}").status_code == 404


def test_create_stores_typed_values_secret_encrypted_and_file(
    app: Flask, client: FlaskClient
) -> None:
    company, _ = operator_setup(client)
    application = typed_app()
    url = f"/runtemplates/new?company={company.id}&app={application.id}"
    rt_id = _created_id(client.post(url, data=_form(), content_type="multipart/form-data"))
    rt = fresh(RunTemplate, rt_id)
    values = plain_config(rt)
    assert values["VERBOSE"] == "false" and values["MODE"] == "fast"
    assert values["API_PASSWORD"] == "hunter2-secret" and values["NOTES"] == "line one\nline two"
    assert values["INPUT_FILE"] == "input data.csv"
    stored = {c.key: c for c in rt.config}
    assert stored["API_PASSWORD"].secret and "hunter2" not in stored["API_PASSWORD"].value
    assert (rt.interval, rt.cron, rt.timezone, rt.timeout, rt.active) == (
        "c",
        "30 2 * * *",
        "Europe/Prague",
        600,
        True,
    )
    assert rt.next_run_at is not None
    assert (rt.misfire_policy, rt.max_attempts, rt.retry_backoff, rt.retry_min_gap) == (
        "skip",
        3,
        "fixed",
        30,
    )
    upload = db.session.scalars(select(FileUpload).where(FileUpload.runtemplate_id == rt_id)).one()
    assert (upload.field, upload.filename, upload.content) == (
        "INPUT_FILE",
        "input data.csv",
        b"a;b\n1;2\n",
    )
    detail = client.get(f"/runtemplates/{rt_id}?tab=config").text
    assert "hunter2-secret" not in detail and "••••••••" in detail


def test_bad_values_come_back_on_the_field_that_is_wrong(app: Flask, client: FlaskClient) -> None:
    company, _ = operator_setup(client)
    application = typed_app()
    url = f"/runtemplates/new?company={company.id}&app={application.id}"
    bad_count = client.post(
        url, data=_form(**{"cfg-COUNT": "many"}), content_type="multipart/form-data"
    )
    assert bad_count.status_code == 400
    assert re.search(
        r'id="err-cfg-COUNT">config COUNT: &#39;many&#39; is not a whole number', bad_count.text
    )
    assert "hunter2-secret" not in bad_count.text  # a password is never echoed back
    bad_cron = client.post(url, data=_form(cron="61 * * * *"), content_type="multipart/form-data")
    assert bad_cron.status_code == 400 and "cron" in bad_cron.text
    bad_policy = client.post(url, data=_form(max_attempts="0"), content_type="multipart/form-data")
    assert bad_policy.status_code == 400 and "max_attempts 0: must be 1 or more" in bad_policy.text
    missing = client.post(url, data=_form(**{"cfg-LABEL": ""}), content_type="multipart/form-data")
    assert missing.status_code == 400 and "Required values missing: LABEL" in missing.text
    assert db.session.scalar(select(RunTemplate.id)) is None


def test_credentials_are_offered_per_requirement_and_bound(app: Flask, client: FlaskClient) -> None:
    company, _ = operator_setup(client)
    proto, other_proto = make_prototype("abraflexi"), make_prototype("mail")
    cred = make_credential(company, proto, name="Main ledger")
    make_credential(company, other_proto, name="Mailbox")
    make_credential(make_company(), proto, name="Someone else's")
    application = make_app(requirements=["abraflexi"])
    url = f"/runtemplates/new?company={company.id}&app={application.id}"
    form = client.get(url).text
    assert "Main ledger" in form and "Mailbox" not in form and "Someone else" not in form
    data = {"name": "x", "interval": "n", "executor": "native", "cred-abraflexi": str(cred.id)}
    rt = fresh(RunTemplate, _created_id(client.post(url, data=data)))
    assert [(c.requirement, c.credential_id) for c in rt.credentials] == [("abraflexi", cred.id)]


def test_schedule_preview_lists_five_runs_or_the_reason(app: Flask, client: FlaskClient) -> None:
    operator_setup(client)
    ok = client.get(
        "/runtemplates/schedule-preview?interval=c&cron=15+3+*+*+1&timezone=UTC", headers=HX
    )
    assert ok.status_code == 200 and ok.text.count("<li>") == 5
    assert ok.text.count("Mon ") == 5 and "03:15:00" in ok.text
    bad = client.get("/runtemplates/schedule-preview?interval=c&cron=15+3+*", headers=HX).text
    assert "must have 5 fields" in bad and "<li>" not in bad
    zone = client.get(
        "/runtemplates/schedule-preview?interval=d&timezone=Mars/Base", headers=HX
    ).text
    assert "not a known IANA time zone" in zone
    manual = client.get("/runtemplates/schedule-preview?interval=n", headers=HX).text
    assert "Manual" in manual
    delayed = client.get(
        "/runtemplates/schedule-preview?interval=d&delay=02:00:00&timezone=UTC"
    ).text
    assert delayed.count(" 02:00:00 UTC</time>") == 5
    prague = client.get(
        "/runtemplates/schedule-preview?interval=c&cron=0+12+*+*+*&timezone=Europe/Prague"
    ).text
    assert (
        prague.count(" 12:00:00 CET (11:00 UTC)</time>")
        + prague.count(" 12:00:00 CEST (10:00 UTC)</time>")
        == 5
    )


def test_edit_keeps_an_untouched_secret_and_never_shows_it(app: Flask, client: FlaskClient) -> None:
    company, _ = operator_setup(client)
    rt = make_runtemplate(company, typed_app())
    set_secret(rt, "API_PASSWORD", "old-secret")
    page = client.get(f"/runtemplates/{rt.id}/edit").text
    assert "old-secret" not in page and "stored; leave empty to keep it" in page
    data = _form(**{"cfg-API_PASSWORD": "", "name": "Renamed", "interval": "n"})
    del data["file-INPUT_FILE"]
    assert client.post(f"/runtemplates/{rt.id}/edit", data=data).status_code == 302
    row = fresh(RunTemplate, rt.id)
    assert row.name == "Renamed" and plain_config(row)["API_PASSWORD"] == "old-secret"
    assert row.next_run_at is None


def test_clone_is_inactive_and_copies_config(app: Flask, client: FlaskClient) -> None:
    company, _ = operator_setup(client)
    rt = make_runtemplate(company, typed_app(), interval="d")
    set_secret(rt, "API_PASSWORD", "s3")
    db.session.add(
        FileUpload(runtemplate_id=rt.id, field="INPUT_FILE", filename="a.csv", content=b"1")
    )
    db.session.commit()
    copy_id = _created_id(client.post(f"/runtemplates/{rt.id}/clone"))
    copy = fresh(RunTemplate, copy_id)
    assert copy.active is False and copy.next_run_at is None and copy.interval == "d"
    assert plain_config(copy) == {"API_PASSWORD": "s3"}
    files = db.session.scalars(select(FileUpload).where(FileUpload.runtemplate_id == copy_id)).all()
    assert [(f.field, f.content) for f in files] == [("INPUT_FILE", b"1")]


def test_delete_needs_the_name_and_no_live_jobs(app: Flask, client: FlaskClient) -> None:
    company, _ = operator_setup(client)
    rt = make_runtemplate(company, name="Doomed")
    waiting = make_job(rt, status="scheduled").id
    done = make_job(rt).id
    rt_id = rt.id
    assert "Type <code>Doomed</code>" in client.get(f"/runtemplates/{rt.id}/delete").text
    assert (
        client.post(f"/runtemplates/{rt.id}/delete", data={"confirm_name": "nope"}).status_code
        == 400
    )
    refused = client.post(f"/runtemplates/{rt.id}/delete", data={"confirm_name": "Doomed"})
    assert refused.status_code == 400 and "cancel them first" in refused.text
    db.session.delete(fresh(Job, waiting))
    db.session.commit()
    assert (
        client.post(f"/runtemplates/{rt_id}/delete", data={"confirm_name": "Doomed"}).status_code
        == 302
    )
    assert fresh(RunTemplate, rt_id) is None and fresh(Job, done) is None


def test_viewers_read_but_cannot_change(app: Flask, client: FlaskClient) -> None:
    company = make_company()
    member_client(client, company, Role.VIEWER)
    rt = make_runtemplate(company)
    page = client.get(f"/runtemplates/{rt.id}")
    assert page.status_code == 200 and "Run now" not in page.text
    for url in ("edit", "run", "delete"):
        assert client.get(f"/runtemplates/{rt.id}/{url}").status_code == 403
    assert client.post(f"/runtemplates/{rt.id}/clone").status_code == 403
    foreign = make_runtemplate(make_company())
    assert client.get(f"/runtemplates/{foreign.id}").status_code == 404
    assert rt.name in client.get("/runtemplates/").text
    assert foreign.name not in client.get("/runtemplates/").text


def test_detail_tabs_render(app: Flask, client: FlaskClient) -> None:
    company, _ = operator_setup(client)
    rt = make_runtemplate(company, typed_app(), interval="h")
    job = make_job(rt)
    for tab in ("overview", "config", "credentials", "schedule", "jobs"):
        assert client.get(f"/runtemplates/{rt.id}?tab={tab}").status_code == 200
    assert f'id="job-row-{job.id}"' in client.get(f"/runtemplates/{rt.id}?tab=jobs").text
    assert client.get(f"/runtemplates/{rt.id}?tab=schedule").text.count("UTC</time></li>") == 5


def test_run_now_queues_a_job_with_one_time_env_and_file(app: Flask, client: FlaskClient) -> None:
    # DAY and EXTRA are no fields of the app: a global admin allowed them (MULTIFLEXI_ENV_ALLOW).
    allow = app.config["MULTIFLEXI"].env_allow | {"DAY", "EXTRA"}
    app.config["MULTIFLEXI"] = replace(app.config["MULTIFLEXI"], env_allow=allow)
    company, user = operator_setup(client)
    rt = make_runtemplate(company, typed_app())
    form = client.get(f"/runtemplates/{rt.id}/run").text
    assert form.count('name="env_key"') == 2 and 'name="file-INPUT_FILE"' in form
    data = {
        "env_key": ["DAY", "", "EXTRA"],
        "env_value": ["2026-02-01", "", "a b"],
        "file-INPUT_FILE": (io.BytesIO(b"payload"), "in.csv"),
    }
    resp = client.post(f"/runtemplates/{rt.id}/run", data=data, content_type="multipart/form-data")
    job = fresh(Job, int(resp.headers["Location"].rsplit("/", 1)[1]))
    assert (job.schedule_type, job.status, job.launched_by_id) == (
        "adhoc-web",
        "scheduled",
        user.id,
    )
    env = cipher().decrypt_json(job.env_override)
    assert env == {"DAY": "2026-02-01", "EXTRA": "a b", "INPUT_FILE": "in.csv"}
    upload = db.session.scalars(select(FileUpload).where(FileUpload.job_id == job.id)).one()
    assert (upload.field, upload.filename, upload.content) == ("INPUT_FILE", "in.csv", b"payload")


def test_run_now_refuses_bad_env_names(app: Flask, client: FlaskClient) -> None:
    company, _ = operator_setup(client)
    rt = make_runtemplate(company)
    for key, reason in (
        ("1BAD", "names are letters"),
        ("MULTIFLEXI_JOB_ID", "set by the platform"),
    ):
        resp = client.post(
            f"/runtemplates/{rt.id}/run", data={"env_key": [key], "env_value": ["x"]}
        )
        assert resp.status_code == 400 and reason in resp.text
    for key, reason in (
        ("LD_PRELOAD", "read by the loader"),
        ("PYTHONPATH", "read by the loader"),
        ("UNDECLARED", "not a field of the application"),
    ):
        resp = client.post(
            f"/runtemplates/{rt.id}/run", data={"env_key": [key], "env_value": ["/tmp/x"]}
        )
        assert resp.status_code == 400 and key in resp.text and reason in resp.text, key
    orphan = client.post(f"/runtemplates/{rt.id}/run", data={"env_key": [""], "env_value": ["v"]})
    assert orphan.status_code == 400 and "without a name" in orphan.text
    assert db.session.scalar(select(Job.id)) is None
