"""API benchmark: job list and job detail through /api/v1 with a million jobs, and schedule-a-run.

    .venv/bin/python bench/api.py --db postgres --jobs 1000000
    .venv/bin/python bench/api.py --db sqlite --jobs 1000000

Fills the database as bench/portal.py does, issues a token for the admin and for a member of
three companies, times GETs through the Flask test client (median and p95 of --runs after a
warm-up), then POSTs --schedules ad-hoc runs one after another and reports runs per second;
--with-portal times the portal's pages on the same database in the same run (compare ratios).
Aim (SPEC §13): job list and job detail under 50 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import scratch_database
from portal import DETAIL_SAMPLE, LIVE_TAIL, bench_app, catalogue, fill
from portal import measure as measure_portal

from multiflexi_web.config import Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobOutput, RunTemplate, User
from multiflexi_web.services.accounts import tokens


def issue(login: str) -> dict[str, str]:
    user = db.session.scalar(select(User).where(User.login == login))
    assert user is not None
    secret = tokens.issue(user, f"bench-{login}").secret
    db.session.commit()
    return {"Authorization": f"Bearer {secret}"}


def timed(client: FlaskClient, url: str, headers: dict[str, str], runs: int) -> dict[str, float]:
    client.get(url, headers=headers)  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        resp = client.get(url, headers=headers)
        times.append((time.perf_counter() - t0) * 1000)
        if resp.status_code != 200:
            raise SystemExit(f"GET {url}: HTTP {resp.status_code} {resp.get_data(as_text=True)}")
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
    }


def pages(n: int, cat: dict[str, Any], sample: list[int], member: bool) -> dict[str, str]:
    own = cat["companies"][0] if member else None
    rt_id, company_id, app_id = next(r for r in cat["rts"] if own in (None, r[1]))
    out = {
        "list_first_page": "/api/v1/jobs",
        "list_status_running": "/api/v1/jobs?status=running",
        "list_status_failed": "/api/v1/jobs?status=failed",
        "list_by_app": f"/api/v1/jobs?app={app_id}",
        "list_by_runtemplate": f"/api/v1/jobs?runtemplate={rt_id}",
        "list_by_company_and_status": f"/api/v1/jobs?company={company_id}&status=cancelled",
        "list_deep_keyset_page": f"/api/v1/jobs?after={n // 2}",
        "list_200_per_page": "/api/v1/jobs?limit=200",
    }
    if member:
        return out
    return out | {
        "detail_finished_job": f"/api/v1/jobs/{sample[0]}",
        "detail_plain_job": f"/api/v1/jobs/{n // 2}",
        "output_all_chunks": f"/api/v1/jobs/{sample[0]}/output",
    }


def schedule_rate(app: Flask, headers: dict[str, str], rt_id: int, count: int) -> dict[str, Any]:
    client = app.test_client()
    url = f"/api/v1/runtemplates/{rt_id}/schedule"
    body = {"env": {"BENCH": "1", "TOKEN": "x"}, "secret": ["TOKEN"]}
    times = []
    t0 = time.perf_counter()
    for _ in range(count):
        s0 = time.perf_counter()
        resp = client.post(url, json=body, headers=headers)
        times.append((time.perf_counter() - s0) * 1000)
        if resp.status_code != 201:
            raise SystemExit(f"POST {url}: HTTP {resp.status_code} {resp.get_data(as_text=True)}")
    total = time.perf_counter() - t0
    return {
        "requests": count,
        "per_second": round(count / total, 1),
        "median_ms": round(statistics.median(times), 2),
    }


def measure(app: Flask, runs: int, schedules: int) -> dict[str, Any]:
    with app.app_context():
        cat = catalogue()
        n = db.session.scalar(select(func.max(Job.id))) or 0
        count = db.session.scalar(select(func.count()).select_from(Job))
        rt_id = db.session.scalar(select(func.min(RunTemplate.id)))
        assert db.session.scalar(select(func.count()).select_from(JobOutput))
        admin, member = issue("admin"), issue("member")
        db.session.remove()
    sample = list(range(n - LIVE_TAIL - DETAIL_SAMPLE, n - LIVE_TAIL))
    # One window for the whole run: the limit is not what is measured here.
    app.config["MULTIFLEXI"] = _unlimited(app)
    client = app.test_client()
    result: dict[str, Any] = {"jobs": count, "runs": runs}
    for key, headers, member_pages in (
        ("admin", admin, False),
        ("member_of_3_companies", member, True),
    ):
        urls = pages(n, cat, sample, member_pages)
        result[key] = {name: timed(client, url, headers, runs) for name, url in urls.items()}
    medians = [
        v["median_ms"] for k in ("admin", "member_of_3_companies") for v in result[k].values()
    ]
    result["worst_median_ms"] = max(medians)
    result["budget_ms"] = 50
    result["schedule_run"] = schedule_rate(app, admin, int(rt_id or 1), schedules)
    return result


def _unlimited(app: Flask) -> Settings:
    from dataclasses import replace

    return replace(app.config["MULTIFLEXI"], api_rate=(10**9, 60))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--schedules", type=int, default=500)
    p.add_argument(
        "--with-portal",
        action="store_true",
        help="also time bench/portal.py's pages on the same database in the same run",
    )
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(scratch_database(args.db, "mf_bench_api"))
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        app = bench_app(url, tmp)
        with app.app_context():
            fill_s = round(fill(url, args.jobs), 1)
            db.session.remove()
        result = {
            "db": "sqlite" if url.startswith("sqlite") else "postgres",
            "fill_seconds": fill_s,
        }
        result |= measure(app, args.runs, args.schedules)
        if args.with_portal:
            portal = measure_portal(app, args.runs)
            result["portal_worst_median_ms"] = portal["worst_median_ms"]
            result["portal_admin"] = portal["admin"]
        with app.app_context():
            db.engine.dispose()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
