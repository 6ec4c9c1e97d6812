"""The API over real HTTP: a werkzeug server on a free loopback port, requests as the client."""

from __future__ import annotations

import json
from dataclasses import replace

import requests
from flask import Flask
from flask.testing import FlaskCliRunner

from multiflexi_web.api.v1.auth import LIMITER_KEY
from tests.api_helpers import basic, bearer, make_scene
from tests.api_live import serving
from tests.factories import make_job, reread


def _cli_token(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=["token", "create", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return str(json.loads(result.output)["token"])


def test_real_server_round_trip(app: Flask, runner: FlaskCliRunner) -> None:
    s = make_scene(app)
    job = make_job(s.rt_a)
    app.extensions.pop(LIMITER_KEY, None)
    app.config["MULTIFLEXI"] = replace(app.config["MULTIFLEXI"], api_rate=(8, 3600))
    operator = _cli_token(runner, "--user", "operator", "--name", "deploy")
    read_only = _cli_token(runner, "--user", "operator", "--read-only", "--expires-days", "1")
    scoped = _cli_token(runner, "--user", "root", "--company", str(s.b.id))
    with serving(app) as base, requests.Session() as http:
        api = f"{base}/api/v1"
        assert http.get(f"{api}/openapi.json", timeout=30).json()["openapi"] == "3.1.0"
        resp = http.get(f"{api}/jobs", timeout=30)
        assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"
        listed = http.get(f"{api}/jobs", headers=bearer(operator), timeout=30).json()
        assert [j["id"] for j in listed["items"]] == [job.id]
        url = f"{api}/runtemplates/{s.rt_a.id}/schedule"
        made = http.post(url, json={"env": {"TZ": "UTC"}}, headers=bearer(operator), timeout=30)
        assert made.status_code == 201 and made.json()["job"]["status"] == "scheduled"
        refused = http.post(url, headers=bearer(read_only), timeout=30)
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        other = http.get(f"{api}/runtemplates/{s.rt_a.id}", headers=bearer(scoped), timeout=30)
        assert other.status_code == 404 and other.json()["error"] == "not_found"
        mine = http.get(f"{api}/runtemplates/{s.rt_b.id}", headers=bearer(scoped), timeout=30)
        assert mine.json()["name"] == "beta-rt"
        assert http.get(f"{api}/companies", headers=basic("viewer"), timeout=30).ok
        codes = [
            http.get(f"{api}/companies", headers=bearer(operator), timeout=30).status_code
            for _ in range(8)
        ]
        assert codes[-1] == 429 and 200 in codes
    reread()  # the test's session snapshot predates the server's writes
    revoked = runner.invoke(args=["token", "revoke", "1", "--format", "json"])
    assert revoked.exit_code == 0 and json.loads(revoked.output)["state"] == "revoked"
    listing = runner.invoke(args=["token", "list", "--format", "json"])
    assert "token_hash" not in listing.output and operator not in listing.output


def test_concurrent_writes_and_reads_never_fail(app: Flask) -> None:
    """Writers and readers at once over real HTTP: SQLite's lock must queue them, never 500."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.api_helpers import make_token

    s = make_scene(app)
    app.extensions.pop(LIMITER_KEY, None)
    secrets = [make_token(s.operator, name=f"t{i}") for i in range(4)]
    rt_id = s.rt_a.id  # read here: the threads have no app context to load it in

    def work(i: int) -> list[int]:
        headers = bearer(secrets[i % len(secrets)])
        with requests.Session() as http:
            codes = []
            for _ in range(6):
                url = f"{api}/runtemplates/{rt_id}/schedule"
                codes.append(http.post(url, json={}, headers=headers, timeout=60).status_code)
                codes.append(http.get(f"{api}/jobs", headers=headers, timeout=60).status_code)
            return codes

    with serving(app) as base, ThreadPoolExecutor(8) as pool:
        api = f"{base}/api/v1"
        results = [code for codes in pool.map(work, range(8)) for code in codes]
    assert results.count(201) == 48 and results.count(200) == 48
