"""Enqueue rate from one caller: jobs.enqueue + commit one at a time, and enqueue_many in batches.

    python bench/enqueue.py [--db sqlite postgresql] [--jobs 2000] [--batch 500]

Prints jobs/s and the SQL statements per job (counted at the cursor, BEGIN/COMMIT included on
PostgreSQL, where each is a round trip). Issue 20's aim: at least 2,000 jobs/s alone on
PostgreSQL. MULTIFLEXI_BENCH_TREE is not needed: run the checkout under test.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import scratch_database  # noqa: E402
from multiflexi_web import create_app  # noqa: E402
from multiflexi_web.config import Settings  # noqa: E402
from multiflexi_web.extensions import db  # noqa: E402
from multiflexi_web.models import Application, Company, RunTemplate  # noqa: E402
from multiflexi_web.models.base import Base  # noqa: E402
from multiflexi_web.services.jobs import transitions as jobs  # noqa: E402


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
    seen = [0]

    def before(*_args: Any) -> None:
        seen[0] += 1

    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "begin", before)
    event.listen(db.engine, "commit", before)
    return seen


def one_by_one(rt: RunTemplate, n: int, seen: list[int]) -> tuple[float, float]:
    start, first = time.perf_counter(), seen[0]
    for _ in range(n):
        jobs.enqueue(rt, schedule_type="adhoc-cli")
        db.session.commit()
    took = time.perf_counter() - start
    return n / took, (seen[0] - first) / n


def in_batches(rt: RunTemplate, n: int, batch: int, seen: list[int]) -> tuple[float, float]:
    start, first = time.perf_counter(), seen[0]
    for done in range(0, n, batch):
        jobs.enqueue_many(rt, min(batch, n - done), schedule_type="adhoc-cli")
        db.session.commit()
    took = time.perf_counter() - start
    return n / took, (seen[0] - first) / n


def run(kind: str, n: int, batch: int) -> list[tuple[str, float, float]]:
    with scratch_database(kind) as url, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=url,
            secret_key=secrets.token_hex(16),
            encryption_master_key=secrets.token_hex(16),
            tmp_dir=tmp,
            artifact_dir=tmp,
        )
        app = create_app(settings=settings, daemon=True)
        with app.app_context():
            rt = setup()
            seen = count_statements()
            jobs.enqueue(rt, schedule_type="adhoc-cli")  # warm: statements compiled, pool open
            db.session.commit()
            rows = [("one by one", *one_by_one(rt, n, seen))]
            if hasattr(jobs, "enqueue_many"):
                rows.append((f"batches of {batch}", *in_batches(rt, n, batch, seen)))
            db.session.remove()
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {args.jobs} jobs")
    print(f"{'database':<11} {'how':<18} {'jobs/s':>8} {'statements/job':>15}")
    for kind in args.db:
        for how, rate, per_job in run(kind, args.jobs, args.batch):
            print(f"{kind:<11} {how:<18} {rate:>8.0f} {per_job:>15.2f}")


if __name__ == "__main__":
    main()
