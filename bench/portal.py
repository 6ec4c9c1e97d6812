"""Portal benchmark: job list and job detail server time with a million jobs in the database.

    .venv/bin/python bench/portal.py --db postgres --jobs 1000000
    .venv/bin/python bench/portal.py --db sqlite --jobs 1000000

Fills the database with bulk inserts (COPY on PostgreSQL, executemany on SQLite), then times
pages through the Flask test client (median and p95 of --runs requests after a warm-up) and
prints JSON. Aim (SPEC §13): job list and job detail under 50 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import scratch_database

from multiflexi_web import create_app
from multiflexi_web.config import Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import (
    Application,
    Base,
    Company,
    CompanyMember,
    Job,
    RunTemplate,
    User,
)
from multiflexi_web.security.secrets import generate_key

PASSWORD = "bench-password"  # noqa: S105 - a throwaway bench login
COMPANIES, APPS, TEMPLATES = 20, 40, 400
# Status mix of a long-lived installation: almost everything finished, a few live jobs.
STATUSES = ["succeeded"] * 90 + ["failed"] * 8 + ["cancelled", "timed_out"]
LIVE_TAIL = 200  # the newest jobs are scheduled/running
DETAIL_SAMPLE = 50  # jobs with a full environment and output, used for detail timings
JOB_COLUMNS = (
    "id",
    "runtemplate_id",
    "company_id",
    "application_id",
    "status",
    "schedule_type",
    "scheduled_for",
    "attempt",
    "executor",
    "started_at",
    "finished_at",
    "exit_code",
    "cancel_requested",
    "stdout_bytes",
    "stderr_bytes",
    "stdout_dropped",
    "stderr_dropped",
    "created_at",
)


def populate_catalogue() -> dict[str, Any]:
    """Companies, apps, templates, an admin and a member of three companies (ORM: few rows)."""
    companies = [Company(name=f"Company {i}", slug=f"co{i}") for i in range(COMPANIES)]
    apps = [
        Application(uuid=f"bench-{i}", name=f"app{i}", executable="/bin/true", version="1.0")
        for i in range(APPS)
    ]
    db.session.add_all(companies + apps)
    db.session.flush()
    rts = [
        RunTemplate(
            company_id=companies[i % COMPANIES].id,
            application_id=apps[i % APPS].id,
            name=f"rt{i}",
            interval="h",
        )
        for i in range(TEMPLATES)
    ]
    pw = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    admin = User(login="admin", password_hash=pw, is_admin=True)
    member = User(login="member", password_hash=pw)
    db.session.add_all([*rts, admin, member])
    db.session.flush()
    db.session.add_all(
        CompanyMember(company_id=companies[i].id, user_id=member.id, role="viewer")
        for i in range(3)
    )
    db.session.commit()
    return {
        "rts": [(r.id, r.company_id, r.application_id) for r in rts],
        "apps": [a.id for a in apps],
        "companies": [c.id for c in companies],
    }


def job_rows(n: int, rts: list[tuple[int, int, int]], now: datetime) -> Iterator[tuple[Any, ...]]:
    """N jobs over the last year, oldest first, so ids follow time as in a real installation."""
    rnd = random.Random(42)
    start = now - timedelta(days=365)
    step = (now - start) / n
    for i in range(n):
        rt_id, company_id, app_id = rts[rnd.randrange(len(rts))]
        planned = start + step * i
        live = i >= n - LIVE_TAIL
        status = ("running" if i % 2 else "scheduled") if live else rnd.choice(STATUSES)
        begun = planned if status != "scheduled" else None
        ended = planned + timedelta(seconds=rnd.randint(1, 300)) if not live else None
        code = {"succeeded": 0, "failed": 1}.get(status, None if live else -15)
        yield (
            i + 1,
            rt_id,
            company_id,
            app_id,
            status,
            "h",
            planned,
            1,
            "native",
            begun,
            ended,
            code,
            False,
            0,
            0,
            0,
            0,
            planned,
        )


def bulk_insert_jobs(url: str, rows: Iterator[tuple[Any, ...]]) -> None:
    cols = ", ".join(JOB_COLUMNS)
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        marks = ", ".join("?" for _ in JOB_COLUMNS)
        naive = (
            (*r[:6], _naive(r[6]), *r[7:9], _naive(r[9]), _naive(r[10]), *r[11:17], _naive(r[17]))
            for r in rows
        )
        with conn:
            conn.executemany(f"INSERT INTO job ({cols}) VALUES ({marks})", naive)  # noqa: S608
        conn.close()
        return
    pg_url = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(pg_url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY job ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute("SELECT setval(pg_get_serial_sequence('job', 'id'), (SELECT max(id) FROM job))")


def _naive(value: datetime | None) -> str | None:
    # The app stores SQLite datetimes as naive UTC text in this exact form.
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if value else None


def enrich_sample(job_ids: list[int]) -> None:
    """Give a few jobs what a real finished job has: command, environment, output, artifact."""
    from multiflexi_web.models import Artifact, JobOutput

    env = [
        {"key": f"VAR_{k}", "value": f"value {k}", "source": "runtemplate", "secret": k % 5 == 0}
        for k in range(30)
    ]
    for job_id in job_ids:
        job = db.session.get(Job, job_id)
        assert job is not None
        job.command, job.env = ["/usr/bin/importer", "--verbose", "--day", "2026-01-01"], env
        db.session.add_all(
            JobOutput(
                job_id=job_id,
                seq=k + 1,
                stream="stderr" if k % 7 == 0 else "stdout",
                data=(f"\x1b[32mline {k}\x1b[0m processing record ž " * 40 + "\n").encode(),
            )
            for k in range(40)
        )
        db.session.add(
            Artifact(
                job_id=job_id,
                filename="result.json",
                mime_type="application/json",
                size=2,
                sha256="0" * 64,
                content=b"{}",
            )
        )
    db.session.commit()


def timed(client: FlaskClient, url: str, runs: int) -> dict[str, float]:
    client.get(url)  # warm-up: template compilation, plan caches
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        resp = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        if resp.status_code != 200:
            raise SystemExit(f"GET {url}: HTTP {resp.status_code}")
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
    }


def login(app: Flask, who: str) -> FlaskClient:
    client = app.test_client()
    resp = client.post("/login", data={"login": who, "password": PASSWORD})
    if resp.status_code != 302:
        raise SystemExit(f"login as {who} failed: HTTP {resp.status_code}")
    return client


def _day(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).date().isoformat()


def scenarios(
    n: int, cat: dict[str, Any], sample: list[int], last_output: int, shown: str, member: bool
) -> dict[str, str]:
    """Pages to time; a member's filters name things of their own companies."""
    own = cat["companies"][0] if member else None
    rt_id, company_id, app_id = next(r for r in cat["rts"] if own in (None, r[1]))
    pages = {
        "list_first_page": "/jobs/",
        "list_htmx_poll": "/jobs/?status=running",
        "list_status_failed": "/jobs/?status=failed",
        "list_by_app": f"/jobs/?app={app_id}",
        "list_by_runtemplate": f"/jobs/?runtemplate={rt_id}",
        "list_by_company_and_status": f"/jobs/?company={company_id}&status=cancelled",
        "list_one_day": f"/jobs/?since={_day(200)}&until={_day(200)}",
        "list_until_300_days_ago": f"/jobs/?until={_day(300)}",
        "list_deep_keyset_page": f"/jobs/?before={n // 2}",
        "list_deep_keyset_filtered": f"/jobs/?before={n // 3}&app={app_id}&status=failed",
        "queue": "/queue/",
    }
    if member:
        # Worst case: an app only other companies use; the index walk finds nothing to show.
        foreign_app = next(r[2] for r in cat["rts"] if r[1] not in cat["companies"][:3])
        pages["list_by_app_of_other_companies"] = f"/jobs/?app={foreign_app}"
        return pages
    return pages | {
        "detail_finished_job": f"/jobs/{sample[0]}",
        "detail_plain_job": f"/jobs/{n // 2}",
        "output_poll_nothing_new": f"/jobs/{sample[0]}/output?after={last_output}&shown={shown}",
        "output_poll_all_chunks": f"/jobs/{sample[0]}/output?after=0&shown={shown}",
        "output_poll_new_status": f"/jobs/{sample[0]}/output?after={last_output}&shown=running",
    }


def fill(url: str, n: int) -> float:
    Base.metadata.create_all(db.engine)
    cat = populate_catalogue()
    t0 = time.perf_counter()
    bulk_insert_jobs(url, job_rows(n, cat["rts"], datetime.now(UTC)))
    seconds = time.perf_counter() - t0
    db.session.rollback()  # its read snapshot predates the bulk insert
    enrich_sample(list(range(n - LIVE_TAIL - DETAIL_SAMPLE, n - LIVE_TAIL)))
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return seconds


def catalogue() -> dict[str, Any]:
    """What populate_catalogue() made, read back (also for a database filled earlier)."""
    rts = db.session.execute(
        select(RunTemplate.id, RunTemplate.company_id, RunTemplate.application_id).order_by(
            RunTemplate.id
        )
    ).all()
    return {
        "rts": [tuple(r) for r in rts],
        "companies": list(db.session.scalars(select(Company.id).order_by(Company.id))),
    }


def measure(app: Flask, runs: int) -> dict[str, Any]:
    from multiflexi_web.models import JobOutput

    with app.app_context():
        cat = catalogue()
        n = db.session.scalar(select(func.max(Job.id))) or 0
        count = db.session.scalar(select(func.count()).select_from(Job))
        last_output = db.session.scalar(select(func.max(JobOutput.id))) or 0
        sample = list(range(n - LIVE_TAIL - DETAIL_SAMPLE, n - LIVE_TAIL))
        # The status the job page's header shows: the poller sends it back (`shown`).
        shown = db.session.scalar(select(Job.status).where(Job.id == sample[0])) or ""
        db.session.remove()
    result: dict[str, Any] = {"jobs": count, "runs": runs}
    for who, key in (("admin", "admin"), ("member", "member_of_3_companies")):
        client = login(app, who)
        pages = scenarios(n, cat, sample, last_output, shown, member=who == "member")
        result[key] = {name: timed(client, page, runs) for name, page in pages.items()}
    medians = [
        v["median_ms"] for k in ("admin", "member_of_3_companies") for v in result[k].values()
    ]
    result["worst_median_ms"] = max(medians)
    result["budget_ms"] = 50
    return result


def bench_app(url: str, tmp: str) -> Flask:
    """A throwaway app on the benchmark's database (api.py times its pages on the same one)."""
    settings = Settings(
        database_url=url.replace("postgresql://", "postgresql+psycopg://"),
        secret_key="bench",  # noqa: S106 - a throwaway bench app
        encryption_master_key=generate_key(),
        tmp_dir=tmp,
        artifact_dir=tmp,
    )
    return create_app({"TESTING": True, "WTF_CSRF_ENABLED": False}, settings=settings)


def jobs_args(doc: str | None) -> argparse.Namespace:
    """The options of a bench timing pages over many jobs (this one and bench/metrics.py)."""
    p = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--url", help="time this already filled database instead (skips the fill)")
    return p.parse_args()


@contextlib.contextmanager
def filled_app(args: argparse.Namespace, prefix: str) -> Iterator[tuple[Flask, str, float | None]]:
    """A bench app on a scratch database filled with `args.jobs` jobs (or on `args.url` as it
    is): (app, database URL, seconds the fill took or None)."""
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(scratch_database(args.db, prefix))
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        app = bench_app(url, tmp)
        fill_s = None
        if not args.url:
            with app.app_context():
                fill_s = round(fill(url, args.jobs), 1)
                db.session.remove()
        try:
            yield app, url, fill_s
        finally:
            with app.app_context():
                db.engine.dispose()


def main() -> None:
    args = jobs_args(__doc__)
    with filled_app(args, "mf_bench_portal") as (app, url, fill_s):
        result = {
            "db": "sqlite" if url.startswith("sqlite") else "postgres",
            "fill_seconds": fill_s,
        }
        result |= measure(app, args.runs)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
