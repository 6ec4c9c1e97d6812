"""The upstream-compatible API (/api/VitexSoftware/MultiFlexi/1.0.0) through the test client:
upstream's shapes field by field, Basic auth, per-company 404, ?output=true, the .json suffix,
and POST /job/ queueing a real job through our services."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import ActionConfig, AppField, AuditLog, Job, JobOutput, JobStatus
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services.jobs.onetime import unseal
from tests.api_helpers import Scene, basic, bearer, make_scene, make_token
from tests.factories import make_app, make_job, make_runtemplate, make_worker, reread

BASE = "/api/VitexSoftware/MultiFlexi/1.0.0"

# Upstream's shapes: the columns of its tables (reference §1) as its OpenAPI document types them
# (multiflexi-client 1.1.0's models), plus the few columns its server sends beyond the document.
COMPANY_KEYS = {
    "id", "enabled", "settings", "logo", "name", "code", "ic", "DatCreate", "DatUpdate",
    "customer", "email", "slug", "zabbix_host",
}  # fmt: skip
APP_KEYS = {
    "id", "enabled", "image", "name", "description", "executable", "DatCreate", "DatUpdate",
    "setup", "cmdparams", "deploy", "homepage", "requirements", "ociimage", "version", "code",
    "uuid", "topics", "tags", "resultfile", "artifacts",
}  # fmt: skip
APP_DETAIL_KEYS = APP_KEYS | {"environment", "exitCodes"}
RUNTEMPLATE_KEYS = {
    "id", "app_id", "company_id", "interv", "prepared", "success", "fail", "name", "delay",
    "executor", "active", "cron", "last_schedule", "next_schedule", "note", "DatCreate",
    "DatSave", "successfull_jobs_count", "failed_jobs_count",
}  # fmt: skip
JOB_KEYS = {
    "id", "app_id", "begin", "end", "company_id", "exitcode", "stdout", "stderr", "launched_by",
    "env", "command", "schedule", "schedule_type", "executor", "runtemplate_id", "app_version",
}  # fmt: skip
STATUS_KEYS = {
    "version", "companies", "apps", "runtemplates", "topics", "credentials", "credentialtypes",
    "credential_types", "database", "daemon", "timestamp",
}  # fmt: skip
OUTPUT_LINE_KEYS = {"id", "job_id", "seq", "type", "line", "created_at"}


def _get(client: FlaskClient, path: str, login: str = "operator", status: int = 200) -> Any:
    resp = client.get(f"{BASE}{path}", headers=basic(login))
    assert resp.status_code == status, (path, resp.status_code, resp.get_data(as_text=True))
    return resp.get_json()


def _sql_time(value: str | None) -> datetime | None:
    """Upstream's "YYYY-MM-DD HH:MM:SS" (UTC here); fails on any other form."""
    return None if value is None else datetime.strptime(value, "%Y-%m-%d %H:%M:%S")


def _catalogue(s: Scene) -> Any:
    tool = make_app(
        "upstream-tool",
        tags=["bank", "daily"],
        requirements=["AbraFlexi"],
        fields=[
            {"keyname": "GREETING", "type": "string", "default": "hi", "required": True},
            {"keyname": "API_PASSWORD", "type": "password", "default": "s3cr3t-default"},
        ],
        exit_codes={0: "all fine", 3: "partial"},
    )
    rt = make_runtemplate(s.a, tool, name="alpha-tool")
    db.session.add(ActionConfig(runtemplate_id=rt.id, mode="success", action="Zabbix"))
    db.session.add(ActionConfig(runtemplate_id=rt.id, mode="failure", action="Email"))
    db.session.commit()
    return tool, rt


def test_every_read_route_answers_upstream_shapes(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    tool, rt = _catalogue(s)
    job = make_job(rt, output="hello\n")
    job.env = [
        {"key": "GREETING", "value": "hi", "source": "runtemplate", "secret": False},
        {"key": "API_PASSWORD", "value": MASK, "source": "runtemplate", "secret": True},
    ]
    job.launched_by_id = s.operator.id
    db.session.commit()

    assert _get(client, "/ping.json") == {"ping": [{"ping": "pong"}]}

    status = _get(client, "/status.json")
    assert set(status) == STATUS_KEYS
    assert status["companies"] == 1  # the operator's company only, not Beta
    assert status["apps"] == 2 and status["runtemplates"] == 2
    assert re.fullmatch(r"(sqlite|postgresql) \d+(\.\d+)+", status["database"])
    assert status["daemon"] == "stopped"  # no daemon yet
    make_worker(heartbeat_age=600)
    assert _get(client, "/status.json")["daemon"] == "stopped"  # a stale heartbeat
    make_worker("scheduler")
    assert _get(client, "/status.json")["daemon"] == "running"

    companies = _get(client, "/companies.json")
    assert [c["id"] for c in companies] == [s.a.id]
    assert set(companies[0]) == COMPANY_KEYS
    one = _get(client, f"/company/{s.a.id}.json")
    assert set(one) == COMPANY_KEYS
    assert (one["name"], one["code"], one["slug"]) == ("Alpha", "alpha", "alpha")
    assert one["enabled"] is True
    assert _sql_time(one["DatCreate"]) is not None

    apps = _get(client, "/apps.json")
    assert isinstance(apps, list) and {a["name"] for a in apps} == {"tool", "upstream-tool"}
    assert all(set(a) == APP_KEYS for a in apps)
    detail = _get(client, f"/app/{tool.id}.json")
    assert set(detail) == APP_DETAIL_KEYS
    assert detail["topics"] == "bank,daily" and detail["requirements"] == "AbraFlexi"
    assert detail["tags"] == [{"name": "bank"}, {"name": "daily"}]
    assert detail["environment"] == {
        "GREETING": {"type": "string", "description": "", "defval": "hi", "required": True},
        "API_PASSWORD": {"type": "password", "description": "", "defval": None, "required": False},
    }
    assert [(e["code"], e["severity"], e["description"]["en"]) for e in detail["exitCodes"]] == [
        (0, "error", "all fine"),
        (3, "error", "partial"),
    ]
    assert "s3cr3t-default" not in json.dumps(detail)

    rts = _get(client, "/runtemplates.json")
    assert {r["id"] for r in rts} == {s.rt_a.id, rt.id}  # not Beta's
    assert all(set(r) == RUNTEMPLATE_KEYS for r in rts)
    shown = _get(client, f"/runtemplate/{rt.id}.json")
    assert set(shown) == RUNTEMPLATE_KEYS
    assert shown["success"] == {"Zabbix": True} and shown["fail"] == {"Email": True}
    assert (shown["app_id"], shown["company_id"], shown["interv"]) == (tool.id, s.a.id, "n")
    assert (shown["executor"], shown["active"], shown["delay"]) == ("Native", True, 0)

    listed = _get(client, "/jobs.json")
    assert [j["id"] for j in listed] == [job.id] and set(listed[0]) == JOB_KEYS
    got = _get(client, f"/job/{job.id}.json")
    assert set(got) == JOB_KEYS
    assert (got["app_id"], got["company_id"], got["runtemplate_id"]) == (tool.id, s.a.id, rt.id)
    assert got["exitcode"] == 0 and got["executor"] == "Native" and got["app_version"] == "n/a"
    assert got["command"] == "/bin/echo hello" and got["launched_by"] == str(s.operator.id)
    assert json.loads(got["env"]) == {"GREETING": "hi", "API_PASSWORD": MASK}
    begin, end = _sql_time(got["begin"]), _sql_time(got["end"])
    assert begin is not None and end is not None and end >= begin
    assert got["stdout"] is None and got["stderr"] is None  # output only when asked


def test_output_true_adds_assembled_streams_and_lines(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    job = make_job(s.rt_a, output="first ")
    db.session.add(JobOutput(job_id=job.id, seq=2, stream="stderr", data=b"oops\n"))
    db.session.add(JobOutput(job_id=job.id, seq=3, stream="stdout", data="second \xe9\n".encode()))
    db.session.commit()
    got = _get(client, f"/job/{job.id}.json?output=true")
    assert set(got) == JOB_KEYS | {"output_lines"}
    assert got["stdout"] == "first second \xe9\n" and got["stderr"] == "oops\n"
    lines = got["output_lines"]
    assert all(set(line) == OUTPUT_LINE_KEYS for line in lines)
    assert [(x["seq"], x["type"], x["line"]) for x in lines] == [
        (1, "stdout", "first "),
        (2, "stderr", "oops\n"),
        (3, "stdout", "second \xe9\n"),
    ]
    assert "output_lines" not in _get(client, f"/job/{job.id}.json?output=false")


def test_basic_auth_is_required_and_checked(app: Flask, client: FlaskClient) -> None:
    make_scene(app)
    for path in ("/status.json", "/jobs.json", "/apps.json", "/companies.json"):
        bare = client.get(f"{BASE}{path}")
        assert bare.status_code == 401 and bare.get_json()["error"] == "unauthorized"
        wrong = client.get(f"{BASE}{path}", headers=basic("operator", "not-the-password"))
        assert wrong.status_code == 401
    assert client.get(f"{BASE}/ping.json").status_code == 200  # upstream's exemption
    assert client.post(f"{BASE}/job/", json={"runtemplate_id": 1}).status_code == 401
    failed = db.session.scalars(select(AuditLog).where(AuditLog.action == "login_failed")).all()
    assert len(failed) == 4
    token = make_token(_user("operator"))  # an API token works here too
    assert client.get(f"{BASE}/jobs.json", headers=bearer(token)).status_code == 200


def _user(login: str) -> Any:
    from multiflexi_web.models import User

    return db.session.scalar(select(User).where(User.login == login))


def test_other_companies_objects_are_404(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    theirs = make_job(s.rt_b)
    mine = make_job(s.rt_a)
    for path in (
        f"/company/{s.b.id}.json",
        f"/runtemplate/{s.rt_b.id}.json",
        f"/job/{theirs.id}.json",
        f"/job/{theirs.id}.json?output=true",
        "/company/999999.json",
        "/job/99999999999.json",
        "/app/424242.json",
    ):
        body = _get(client, path, status=404)
        assert body["error"] == "not_found"
    assert [j["id"] for j in _get(client, "/jobs.json")] == [mine.id]
    assert {j["id"] for j in _get(client, "/jobs.json", login="root")} == {mine.id, theirs.id}
    assert {c["id"] for c in _get(client, "/companies.json", login="root")} == {s.a.id, s.b.id}


def test_suffix_and_listing_arguments(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    jobs = [make_job(s.rt_a) for _ in range(5)]
    ids = [j.id for j in jobs]
    for path in ("/apps.xml", "/apps.html", "/apps", f"/job/{ids[0]}", "/status.yaml"):
        assert client.get(f"{BASE}{path}", headers=basic("operator")).status_code == 404
    assert [j["id"] for j in _get(client, "/jobs.json")] == ids  # ascending, as upstream
    assert [j["id"] for j in _get(client, "/jobs.json?order=D&limit=2")] == ids[::-1][:2]
    assert [j["id"] for j in _get(client, "/jobs.json?order=-id&limit=2&offset=1")] == [
        ids[3],
        ids[2],
    ]
    assert [j["id"] for j in _get(client, "/jobs.json?limit=2&offset=2")] == ids[2:4]
    for bad in ("limit=0", "limit=1001", "limit=x", "offset=-1", "order=name"):
        body = _get(client, f"/jobs.json?{bad}", status=400)
        assert body["error"] == "bad_request"
    assert len(_get(client, "/runtemplates.json?limit=1")) == 1


def test_post_job_queues_through_our_services(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    s.rt_a.application.fields.append(AppField(keyname="API_TOKEN", type="string", position=1))
    db.session.commit()
    url = f"{BASE}/job/"
    body = {"runtemplate_id": s.rt_a.id, "env": {"GREETING": "ahoj", "API_TOKEN": "t0k"}}
    resp = client.post(url, json=body, headers=basic("operator"))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    made = resp.get_json()
    assert set(made) == JOB_KEYS | {"job_id", "scheduled"}
    assert made["job_id"] == made["id"] and made["runtemplate_id"] == s.rt_a.id
    assert made["schedule_type"] == "adhoc-api" and made["executor"] == "Native"
    reread()
    job = db.session.get(Job, made["id"])
    assert job is not None and job.status == JobStatus.SCHEDULED.value
    assert job.launched_by_id == s.operator.id
    once = unseal(job.env_override)
    assert once.values == {"GREETING": "ahoj", "API_TOKEN": "t0k"}
    assert set(once.secret) == {"API_TOKEN"}  # secret by name: upstream has no marks
    audit = db.session.scalars(select(AuditLog).where(AuditLog.action == "run")).one()
    assert audit.entity_id == str(s.rt_a.id) and audit.details["job_id"] == job.id
    assert audit.actor == "operator (api basic)" and audit.details["via"] == "api"

    # Upstream's form: query parameter, "Y-m-d H:i:s" in the configured zone (UTC here).
    later = client.post(
        f"{url}?runtemplate_id={s.rt_a.id}",
        data={"scheduled": "2031-05-06 07:08:09"},
        headers=basic("operator"),
    )
    assert later.status_code == 201
    assert later.get_json()["scheduled"] == "2031-05-06 07:08:09"
    reread()
    queued = db.session.get(Job, later.get_json()["id"])
    assert queued is not None and queued.scheduled_for == datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)

    # jobId alone (what upstream's generated client sends): a new run of that job's template.
    again = client.post(f"{url}?jobId={job.id}", headers=basic("operator"))
    assert again.status_code == 201
    rerun = again.get_json()
    assert rerun["id"] not in {job.id, queued.id} and rerun["runtemplate_id"] == s.rt_a.id
    reread()
    rerun_job = db.session.get(Job, rerun["id"])
    assert rerun_job is not None and unseal(rerun_job.env_override).values == once.values

    refusals = [
        ({"runtemplate_id": s.rt_a.id}, "viewer", 403),
        ({"runtemplate_id": s.rt_b.id}, "operator", 404),
        ({"runtemplate_id": 987654}, "operator", 404),
        ({}, "operator", 400),
        ({"runtemplate_id": "x"}, "operator", 400),
        ({"runtemplate_id": s.rt_a.id, "executor": "Docker"}, "operator", 422),
        ({"runtemplate_id": s.rt_a.id, "scheduled": "tomorrow-ish"}, "operator", 400),
        ({"runtemplate_id": s.rt_a.id, "env": {"MULTIFLEXI_JOB_ID": "1"}}, "operator", 400),
        ({"runtemplate_id": s.rt_a.id, "env": ["A"]}, "operator", 400),
    ]
    for payload, login, status in refusals:
        refused = client.post(url, json=payload, headers=basic(login))
        assert refused.status_code == status, (payload, refused.get_data(as_text=True))
        assert set(refused.get_json()) == {"error", "message", "details"}
    other = make_job(s.rt_b)
    assert client.post(f"{url}?jobId={other.id}", headers=basic("operator")).status_code == 404
    reread()
    assert len(db.session.scalars(select(Job)).all()) == 4  # three queued here, one foreign
