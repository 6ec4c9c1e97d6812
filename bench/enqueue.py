"""Enqueue rate from one caller: jobs.enqueue + commit, and jobs.submit, one at a time against
their floors.

    python bench/enqueue.py [--db sqlite postgresql] [--jobs 2000] [--batch 500] [--rounds 3]

The floor is the same database's bare driver (psycopg / sqlite3) inserting a comparable job row
(`INSERT … RETURNING id`, the same table and indexes) and committing, one row per transaction
(BEGIN, INSERT, COMMIT). `jobs.submit` commits its one job on its own, a single statement in
autocommit (one round trip on PostgreSQL), so its floor is the bare driver's INSERT in
autocommit (`floor, autocommit`). Each round times the floors, `jobs.enqueue` + commit and
`jobs.submit` back to back; the medians over the rounds and the ratios are printed,
with the CPU this process spent per job and the SQL statements per job (counted at the driver's
connection, BEGIN and COMMIT included; on PostgreSQL each is a round trip, and so is the portal
pool's pre-ping, counted too). The statements are counted in a pass of their own after the timed
rounds, on an engine of its own: the counting hooks (engine events, a cursor subclass) slowed
the timed path itself, to half its rate on PostgreSQL. The caller's pool is the
daemons' (no pre-ping: the eventor and the scheduler enqueue one by one); the portal's pool
pings on every checkout, one more round trip (`portal pool` row). Issue 20's aim: at least
2,000 jobs/s alone on PostgreSQL. MULTIFLEXI_BENCH_TREE is not needed: run the checkout under
test.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import scratch_database  # noqa: E402
from multiflexi_web import create_app  # noqa: E402
from multiflexi_web.config import Settings  # noqa: E402
from multiflexi_web.db.engine import engine_options  # noqa: E402
from multiflexi_web.db.listen import libpq_url  # noqa: E402
from multiflexi_web.extensions import db  # noqa: E402
from multiflexi_web.models import Application, Company, RunTemplate, utcnow  # noqa: E402
from multiflexi_web.models.base import Base  # noqa: E402
from multiflexi_web.services.jobs import transitions as jobs  # noqa: E402

# The floor's row: what `jobs.enqueue(rt, schedule_type="adhoc-cli")` writes (no NULLs).
_COLUMNS = (
    "INSERT INTO job (runtemplate_id, company_id, application_id, executor, app_version, status,"
    " schedule_type, scheduled_for, attempt, cancel_requested, stdout_bytes, stderr_bytes,"
    " stdout_dropped, stderr_dropped, chain_depth, created_at) VALUES "
)
FLOOR_PG = _COLUMNS + "(" + ", ".join(["%s"] * 16) + ") RETURNING id"
FLOOR_SQLITE = _COLUMNS + "(" + ", ".join(["?"] * 16) + ") RETURNING id"
Timed = tuple[float, float]  # jobs/s, CPU µs per job
Row = tuple[float, float, float]  # the same and statements per job
# Jobs per way in the counting pass: enough for a steady count, few enough to add no time.
COUNTED_JOBS = 50


def setup() -> RunTemplate:
    Base.metadata.create_all(db.engine)
    company = Company(name="Bench", slug="bench")
    app = Application(
        uuid="00000000-0000-4000-8000-000000000001", name="hello", executable="/bin/true"
    )
    db.session.add_all([company, app])
    db.session.flush()
    rt = RunTemplate(company_id=company.id, application_id=app.id, name="bench")
    db.session.add(rt)
    db.session.commit()
    return rt


def count_statements() -> list[int]:
    """Statements sent, counted at the driver's connection (the job service's raw statements
    never pass SQLAlchemy's cursor events); call before the engine's first connection."""
    seen = [0]

    def bump(*_args: Any) -> None:
        seen[0] += 1

    class Counted(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            bump()
            return super().execute(query, params, **kwargs)

    def connect(dbapi_conn: Any, _record: Any) -> None:
        if isinstance(dbapi_conn, sqlite3.Connection):
            dbapi_conn.set_trace_callback(bump)  # BEGIN and COMMIT included
        else:
            dbapi_conn.cursor_factory = Counted

    event.listen(db.engine, "connect", connect)
    if db.engine.dialect.name == "postgresql":  # psycopg sends these itself
        event.listen(db.engine, "begin", bump)
        event.listen(db.engine, "commit", bump)
    return seen


def timed(n: int, body: Callable[[], None]) -> Timed:
    wall, cpu = time.perf_counter(), time.process_time()
    body()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, cpu * 1e6 / n


def one_by_one(rt: RunTemplate, n: int) -> None:
    for _ in range(n):
        jobs.enqueue(rt, schedule_type="adhoc-cli")
        db.session.commit()


def submitted(rt_id: int, n: int) -> None:
    for _ in range(n):
        jobs.submit(rt_id, schedule_type="adhoc-cli")


def in_batches(rt: RunTemplate, n: int, batch: int) -> None:
    for done in range(0, n, batch):
        jobs.enqueue_many(rt, min(batch, n - done), schedule_type="adhoc-cli")
        db.session.commit()


def statements(seen: list[int], body: Callable[[int], None]) -> float:
    """Statements per job of `body(COUNTED_JOBS)`, on the counting engine."""
    first = seen[0]
    body(COUNTED_JOBS)
    return (seen[0] - first) / COUNTED_JOBS


def floor(url: str, row: tuple[Any, ...], n: int, *, autocommit: bool = False) -> Timed:
    """The bare driver, one comparable job row per transaction (statements: 3 on both), or
    with `autocommit` the INSERT alone, its own transaction (1 statement: submit's floor)."""
    if url.startswith("sqlite"):
        return _floor_sqlite(url.removeprefix("sqlite:///"), row, n, autocommit)
    return _floor_pg(libpq_url(url), row, n, autocommit)


def _floor_pg(url: str, row: tuple[Any, ...], n: int, autocommit: bool) -> Timed:
    with psycopg.connect(url, autocommit=autocommit) as conn:

        def body() -> None:
            for _ in range(n):
                now = utcnow()
                conn.execute(FLOOR_PG, (*row, now, 1, False, 0, 0, 0, 0, 0, now)).fetchone()
                if not autocommit:
                    conn.commit()

        return timed(n, body)


def _floor_sqlite(path: str, row: tuple[Any, ...], n: int, autocommit: bool) -> Timed:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")  # as the app's connections (db/engine.py)

    def body() -> None:
        for _ in range(n):
            now = utcnow().replace(tzinfo=None).isoformat(" ")
            if not autocommit:
                conn.execute("BEGIN IMMEDIATE")
            conn.execute(FLOOR_SQLITE, (*row, now, 1, False, 0, 0, 0, 0, 0, now)).fetchone()
            if not autocommit:
                conn.execute("COMMIT")

    try:
        return timed(n, body)
    finally:
        conn.close()


@contextmanager
def bench_app(url: str, *, pre_ping: bool) -> Iterator[Flask]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=url,
            secret_key=secrets.token_hex(16),
            encryption_master_key=secrets.token_hex(16),
            tmp_dir=tmp,
            artifact_dir=tmp,
        )
        options = {"SQLALCHEMY_ENGINE_OPTIONS": engine_options(url, pre_ping=pre_ping)}
        app = create_app(options, settings=settings, daemon=True)
        with app.app_context():
            yield app
            db.session.remove()
            db.engine.dispose()


def run(kind: str, n: int, batch: int, rounds: int) -> list[tuple[str, Row]]:
    timings: dict[str, list[Timed]] = {
        "floor (bare driver)": [],
        "one by one": [],
        "floor, autocommit": [],
        "submit, one by one": [],
    }
    batches = f"batches of {batch}"
    # Each floor is one statement in autocommit, else BEGIN, INSERT and COMMIT.
    counts = {"floor (bare driver)": 3.0, "floor, autocommit": 1.0}
    with scratch_database(kind) as url:
        with bench_app(url, pre_ping=False):
            rt = setup()
            jobs.enqueue(rt, schedule_type="adhoc-cli")  # warm: statements compiled, pool open
            row = (rt.id, rt.company_id, rt.application_id, "native", None, "scheduled")
            db.session.commit()  # SQLite: the floor's writes must not meet our read snapshot
            jobs.submit(row[0], schedule_type="adhoc-cli")  # no read of the expired rt
            floor(url, (*row, "adhoc-cli"), 50)
            for _ in range(rounds):  # back to back, so both see the same machine
                timings["floor (bare driver)"].append(floor(url, (*row, "adhoc-cli"), n))
                timings["one by one"].append(timed(n, lambda: one_by_one(rt, n)))
                timings["floor, autocommit"].append(
                    floor(url, (*row, "adhoc-cli"), n, autocommit=True)
                )
                timings["submit, one by one"].append(timed(n, lambda: submitted(row[0], n)))
            for _ in range(2):  # warm: its first two runs compile and plan (~0.1 s)
                jobs.enqueue_many(rt, batch, schedule_type="adhoc-cli")
                db.session.commit()
            timings[batches] = [timed(n, lambda: in_batches(rt, n, batch))]
        with bench_app(url, pre_ping=True):
            rt = db.session.get_one(RunTemplate, row[0])
            jobs.enqueue(rt, schedule_type="adhoc-cli")
            db.session.commit()
            timings["one by one, portal pool"] = [timed(n, lambda: one_by_one(rt, n))]
        counts.update(counted(url, row[0], batches))
    return [(how, (*_median(t), counts[how])) for how, t in timings.items()]


def counted(url: str, rt_id: int, batches: str) -> dict[str, float]:
    """Statements per job of each way, in a pass of its own on engines of its own."""
    with bench_app(url, pre_ping=False):
        seen = count_statements()
        rt = db.session.get_one(RunTemplate, rt_id)
        counts = {
            "one by one": statements(seen, lambda k: one_by_one(rt, k)),
            "submit, one by one": statements(seen, lambda k: submitted(rt_id, k)),
            batches: statements(seen, lambda k: in_batches(rt, k, k)),
        }
    with bench_app(url, pre_ping=True):
        seen = count_statements()
        rt = db.session.get_one(RunTemplate, rt_id)
        counts["one by one, portal pool"] = statements(seen, lambda k: one_by_one(rt, k))
    return counts


def _median(runs: list[Timed]) -> Timed:
    rate, cpu = zip(*runs, strict=True)
    return statistics.median(rate), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {args.jobs} jobs, median of {args.rounds}")
    print(f"{'database':<11} {'how':<24} {'jobs/s':>8} {'CPU µs/job':>11} {'statements/job':>15}")
    for kind in args.db:
        rows = run(kind, args.jobs, args.batch, args.rounds)
        for how, (rate, cpu, per_job) in rows:
            print(f"{kind:<11} {how:<24} {rate:>8.0f} {cpu:>11.0f} {per_job:>15.2f}")
        rates = {how: timing[0] for how, timing in rows}
        ratio = rates["one by one"] / rates["floor (bare driver)"]
        print(f"{kind:<11} one by one / floor: {ratio:.2f}")
        ratio = rates["submit, one by one"] / rates["floor, autocommit"]
        print(f"{kind:<11} submit / floor, autocommit: {ratio:.2f}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
