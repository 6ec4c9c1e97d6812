"""REST API resources end to end through the test client: lists, writes, masks, error paths."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient

from multiflexi_web.extensions import db
from multiflexi_web.models import FileUpload, Job, JobOutput, JobStatus
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services.catalogue.app_import import DEMO_DIR
from multiflexi_web.services.jobs.onetime import unseal
from tests.api_helpers import bearer, get_json, make_scene, make_token
from tests.factories import (
    make_app,
    make_artifact,
    make_credential,
    make_event,
    make_event_rule,
    make_event_source,
    make_job,
    make_prototype,
    make_runtemplate,
    make_worker,
    reread,
)


def _status(resp, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status_code == status, resp.get_data(as_text=True)
    body: dict = resp.get_json()
    if status >= 400:
        assert set(body) == {"error", "message", "details"}
    return body


def test_job_list_pages_by_keyset_and_stays_stable(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    ids = [make_job(s.rt_a).id for _ in range(5)]
    make_job(s.rt_b)  # another company's: never listed
    secret = make_token(s.viewer)
    first = get_json(client, "/api/v1/jobs?limit=2", secret)
    assert [j["id"] for j in first["items"]] == ids[:-3:-1] and first["next"] == ids[3]
    make_job(s.rt_a)  # a new job does not shift the following pages
    second = get_json(client, f"/api/v1/jobs?limit=2&after={first['next']}", secret)
    assert [j["id"] for j in second["items"]] == [ids[2], ids[1]]
    last = get_json(client, f"/api/v1/jobs?limit=2&after={second['next']}", secret)
    assert [j["id"] for j in last["items"]] == [ids[0]] and last["next"] is None


def test_job_list_filters(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    failed = make_job(s.rt_a, status=JobStatus.FAILED)
    plain = make_job(s.rt_a)
    other = make_runtemplate(s.a, name="other")
    mine = make_job(other)
    secret = make_token(s.admin)
    by_status = get_json(client, "/api/v1/jobs?status=failed", secret)["items"]
    assert [j["id"] for j in by_status] == [failed.id]
    by_rt = get_json(client, f"/api/v1/jobs?runtemplate={other.id}", secret)["items"]
    assert [j["id"] for j in by_rt] == [mine.id]
    by_company = get_json(client, f"/api/v1/jobs?company={s.b.id}", secret)["items"]
    assert by_company == []
    # The jobs' own days (planned 5 minutes ago): "today" failed for 5 minutes after midnight.
    days = sorted({j.scheduled_for.date() for j in (failed, plain, mine)})
    since, until = days[0].isoformat(), days[-1].isoformat()
    assert len(get_json(client, f"/api/v1/jobs?since={since}&until={until}", secret)["items"]) == 3
    before = (days[0] - timedelta(days=1)).isoformat()
    assert get_json(client, f"/api/v1/jobs?since={before}&until={before}", secret)["items"] == []
    for bad in ("status=done", "since=yesterday", "company=x", "limit=0", "limit=201", "after=-1"):
        body = _status(client.get(f"/api/v1/jobs?{bad}", headers=bearer(secret)), 400)
        assert body["error"] == "bad_request" and bad.split("=")[0] in body["message"]


def test_job_detail_masks_secrets_and_output_reads_after(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    job = make_job(s.rt_a, output="hello\n")
    job.env = [
        {"key": "API_KEY", "value": MASK, "source": "config", "secret": True},
        {"key": "GREETING", "value": "hi", "source": "config", "secret": False},
    ]
    db.session.add(JobOutput(job_id=job.id, seq=2, stream="stderr", data=b"oops\n"))
    db.session.commit()
    secret = make_token(s.viewer)
    detail = get_json(client, f"/api/v1/jobs/{job.id}", secret)
    assert {e["key"]: e["value"] for e in detail["env"]} == {"API_KEY": MASK, "GREETING": "hi"}
    out = get_json(client, f"/api/v1/jobs/{job.id}/output", secret)
    assert [c["text"] for c in out["items"]] == ["hello\n", "oops\n"] and out["next"] is None
    after = out["items"][0]["id"]
    rest = get_json(client, f"/api/v1/jobs/{job.id}/output?after={after}", secret)
    assert [c["stream"] for c in rest["items"]] == ["stderr"]
    for bad in ("stream=x", "limit=0", "limit=501", "after=x"):
        _status(client.get(f"/api/v1/jobs/{job.id}/output?{bad}", headers=bearer(secret)), 400)
    one = get_json(client, f"/api/v1/jobs/{job.id}/output?limit=1", secret)
    assert len(one["items"]) == 1 and one["next"] == one["items"][0]["id"]


def test_cancel_and_rerun(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    waiting, done = make_job(s.rt_a, status=JobStatus.SCHEDULED), make_job(s.rt_a)
    secret = make_token(s.operator)
    resp = client.post(f"/api/v1/jobs/{waiting.id}/cancel", headers=bearer(secret))
    assert _status(resp, 200)["outcome"] == "cancelled"
    resp = client.post(f"/api/v1/jobs/{done.id}/cancel", headers=bearer(secret))
    assert _status(resp, 409)["error"] == "conflict"
    resp = client.post(f"/api/v1/jobs/{done.id}/rerun", headers=bearer(secret))
    new = _status(resp, 201)["job"]
    assert new["status"] == "scheduled" and new["schedule_type"] == "adhoc-api"


def test_artifact_metadata_and_safe_download(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    job = make_job(s.rt_a)
    art = make_artifact(job, filename="report.html", content=b"<script>alert(1)</script>")
    secret = make_token(s.viewer)
    listed = get_json(client, f"/api/v1/jobs/{job.id}/artifacts", secret)["items"]
    assert [a["filename"] for a in listed] == ["report.html"]
    assert get_json(client, f"/api/v1/artifacts/{art.id}", secret)["size"] == 25
    resp = client.get(f"/api/v1/artifacts/{art.id}/download", headers=bearer(secret))
    assert resp.status_code == 200 and resp.data == b"<script>alert(1)</script>"
    assert resp.headers["Content-Disposition"].startswith("attachment")
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    foreign = make_artifact(make_job(s.rt_b))
    _status(client.get(f"/api/v1/artifacts/{foreign.id}/download", headers=bearer(secret)), 404)


def test_credentials_secrets_are_write_only(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    proto = make_prototype("bank")
    secret = make_token(s.company_admin)
    body = {"company_id": s.a.id, "prototype": "bank", "name": "main", "values": {}}
    body["values"] = {"LOGIN": "alice", "PASSWORD": "hunter2"}
    created = _status(client.post("/api/v1/credentials", json=body, headers=bearer(secret)), 201)
    assert created["values"] == {"LOGIN": "alice", "PASSWORD": MASK}
    url = f"/api/v1/credentials/{created['id']}"
    patched = client.patch(url, json={"values": {"LOGIN": "bob"}}, headers=bearer(secret))
    assert _status(patched, 200)["values"] == {"LOGIN": "bob", "PASSWORD": MASK}
    assert "hunter2" not in json.dumps(get_json(client, url, secret))
    bad = client.patch(url, json={"values": {"NOPE": "1"}}, headers=bearer(secret))
    assert _status(bad, 422)["details"]["fields"] == {"NOPE": "not a field of the prototype"}
    other = make_credential(s.b, proto)
    _status(client.get(f"/api/v1/credentials/{other.id}", headers=bearer(secret)), 404)
    listed = get_json(client, "/api/v1/credentials", secret)["items"]
    assert [c["id"] for c in listed] == [created["id"]]


def test_runtemplate_crud(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    secret = make_token(s.operator)
    body = {
        "company_id": s.a.id,
        "application_id": s.rt_a.application_id,
        "name": "nightly",
        "interval": "d",
        "config": {"GREETING": "hi"},
    }
    rt = _status(client.post("/api/v1/runtemplates", json=body, headers=bearer(secret)), 201)
    assert rt["config"] == {"GREETING": "hi"} and rt["next_run_at"]
    url = f"/api/v1/runtemplates/{rt['id']}"
    runs = get_json(client, f"{url}/next-runs", secret)["next_runs"]
    assert len(runs) == 5
    patched = _status(client.patch(url, json={"interval": "n"}, headers=bearer(secret)), 200)
    assert patched["interval"] == "n" and patched["next_run_at"] is None
    bad = client.patch(url, json={"interval": "c", "cron": "not cron"}, headers=bearer(secret))
    assert _status(bad, 422)["error"] == "unprocessable"
    unknown = client.patch(url, json={"config": {"X": "1"}}, headers=bearer(secret))
    assert _status(unknown, 422)["details"] == {"field": "config"}
    make_job(db.session.get(type(s.rt_a), rt["id"]), status=JobStatus.SCHEDULED)  # type: ignore[arg-type]
    _status(client.delete(url, headers=bearer(secret)), 409)
    reread()
    db.session.query(Job).filter_by(runtemplate_id=rt["id"]).delete()
    db.session.commit()
    assert _status(client.delete(url, headers=bearer(secret)), 200)["deleted"] is True
    _status(client.get(url, headers=bearer(secret)), 404)


def test_schedule_with_when_secret_env_and_files(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    fields = [{"keyname": k} for k in ("A", "B", "PIN")]
    tool = make_app("uploader", fields=[{"keyname": "INPUT", "type": "file-path"}, *fields])
    rt = make_runtemplate(s.a, tool)
    secret = make_token(s.operator)
    url = f"/api/v1/runtemplates/{rt.id}/schedule"
    # An operator sets only the application's declared names (security/env_names.py): 422.
    undeclared = client.post(url, json={"env": {"LD_PRELOAD": "x"}}, headers=bearer(secret))
    assert "LD_PRELOAD" in _status(undeclared, 422)["message"]
    when = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    body = {"when": when.isoformat(), "env": {"A": "1", "PIN": "1234"}, "secret": ["PIN"]}
    job = _status(client.post(url, json=body, headers=bearer(secret)), 201)["job"]
    assert job["scheduled_for"] == when.isoformat()
    reread()
    once = unseal(db.session.get(Job, job["id"]).env_override)  # type: ignore[union-attr]
    assert once.values == {"A": "1", "PIN": "1234"} and once.secret == {"PIN"}
    form = {"env": json.dumps({"B": "2"}), "INPUT": (io.BytesIO(b"data"), "in.csv")}
    resp = client.post(url, data=form, headers=bearer(secret), content_type="multipart/form-data")
    job2 = _status(resp, 201)["job"]
    reread()
    upload = db.session.query(FileUpload).filter_by(job_id=job2["id"]).one()
    assert (upload.field, upload.filename, bytes(upload.content)) == ("INPUT", "in.csv", b"data")
    for bad, field in (
        ({"when": "tomorrow"}, "when"),
        ({"when": "2026-01-01T00:00:00"}, "when"),
        ({"env": {"1X": "a"}}, "env"),
        ({"env": {"MULTIFLEXI_JOB": "a"}}, "env"),
        ({"env": {"A": 1}}, "env"),
        ({"secret": ["NOT_IN_ENV"]}, "secret"),
    ):
        assert _status(client.post(url, json=bad, headers=bearer(secret)), 400)["details"] == {
            "field": field
        }
    wrong_file = {"OTHER": (io.BytesIO(b"x"), "x.txt")}
    resp = client.post(
        url, data=wrong_file, headers=bearer(secret), content_type="multipart/form-data"
    )
    _status(resp, 400)


def test_application_import_needs_a_global_admin(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    doc = (DEMO_DIR / "hello.multiflexi.app.json").read_bytes()
    ctype = "application/json"
    resp = client.post(
        "/api/v1/applications",
        data=doc,
        headers=bearer(make_token(s.company_admin)),
        content_type=ctype,
    )
    _status(resp, 403)
    admin = make_token(s.admin)
    resp = client.post("/api/v1/applications", data=doc, headers=bearer(admin), content_type=ctype)
    assert _status(resp, 201)["application"]["name"] == "Hello"
    resp = client.post("/api/v1/applications", data=doc, headers=bearer(admin), content_type=ctype)
    assert _status(resp, 200)["status"] == "updated"
    resp = client.post("/api/v1/applications", data=b"{", headers=bearer(admin), content_type=ctype)
    assert _status(resp, 422)["error"] == "unprocessable"
    names = [a["name"] for a in get_json(client, "/api/v1/applications", admin)["items"]]
    assert "Hello" in names


def test_events_workers_and_health(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    src_a, src_b, global_src = make_event_source(s.a), make_event_source(s.b), make_event_source()
    ev = make_event(src_a, {"order": 7})
    make_event(src_b)
    rule = make_event_rule(src_a, s.rt_a)
    make_worker()
    viewer, admin = make_token(s.viewer), make_token(s.admin)
    assert [x["id"] for x in get_json(client, "/api/v1/event-sources", viewer)["items"]] == [
        src_a.id
    ]
    assert len(get_json(client, "/api/v1/event-sources", admin)["items"]) == 3
    source = get_json(client, f"/api/v1/event-sources/{src_a.id}", viewer)
    assert "token" not in source and "secret" not in source
    get_json(client, f"/api/v1/event-sources/{global_src.id}", viewer, 404)
    assert [x["id"] for x in get_json(client, "/api/v1/events", viewer)["items"]] == [ev.id]
    assert get_json(client, f"/api/v1/events/{ev.id}", viewer)["payload"] == {"order": 7}
    assert get_json(client, f"/api/v1/event-rules/{rule.id}", viewer)["name"] == rule.name
    assert len(get_json(client, "/api/v1/event-rules", viewer)["items"]) == 1
    assert len(get_json(client, "/api/v1/workers", viewer)["items"]) == 1
    assert client.get("/api/v1/health").get_json() == {"status": "ok"}


def test_error_paths_are_json(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    secret = make_token(s.admin)
    h = bearer(secret)
    _status(
        client.post("/api/v1/runtemplates", data="x", headers=h, content_type="text/plain"), 400
    )
    _status(client.post("/api/v1/runtemplates", json=[1], headers=h), 400)
    _status(client.post("/api/v1/runtemplates", json={"company_id": "1"}, headers=h), 400)
    _status(client.get(f"/api/v1/jobs/{2**70}", headers=h), 404)
    # Not 405: GET and PATCH share the path, and a refused id must match no rule at all.
    _status(client.delete(f"/api/v1/runtemplates/{10**25}", headers=h), 404)
    _status(client.delete(f"/api/v1/runtemplates/{2**63}", headers=h), 404)
    # Given but empty is not "absent" (schemathesis: `after=` returned the first page again).
    assert "after" in _status(client.get("/api/v1/jobs?after=", headers=h), 400)["message"]
    _status(client.get("/api/v1/jobs?company=", headers=h), 400)
    app.config["MAX_CONTENT_LENGTH"] = 100
    big = client.post(
        "/api/v1/applications",
        data=b"{" + b" " * 200 + b"}",
        headers=h,
        content_type="application/json",
    )
    assert _status(big, 413)["error"] == "payload_too_large"


def test_an_unexpected_error_is_a_json_500(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)

    def broken() -> None:
        raise RuntimeError("boom with a secret detail")

    app.view_functions["api.v1.workers"] = broken
    app.config["PROPAGATE_EXCEPTIONS"] = False
    resp = client.get("/api/v1/workers", headers=bearer(make_token(s.viewer)))
    body = _status(resp, 500)
    assert body["error"] == "internal_error" and "boom" not in json.dumps(body)
