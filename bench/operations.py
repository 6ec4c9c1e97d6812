"""Operations queries with a million jobs on PostgreSQL: SLA report and bulk-retry preview.

    .venv/bin/python bench/operations.py --templates 1000 --slots 1000

Fills a scratch database with `templates` hourly RunTemplates (ten companies) of `slots` slot
jobs each (2% failed), then prints the EXPLAIN ANALYZE plan of each query (with --plans) and
JSON timings: the SLA's slot rows and retries are index ranges (uq_job_runtemplate_slot,
ix_job_retry_of_id), the bulk-retry preview a bitmap of indexed filters.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.dialects import postgresql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import scratch_database

from multiflexi_web import create_app
from multiflexi_web.config import Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import Application, Base, Company, Job, RunTemplate
from multiflexi_web.security.secrets import generate_key
from multiflexi_web.services.jobs.bulk_retry import RetryFilter, preview
from multiflexi_web.services.scheduling import sla

START, END = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 8, tzinfo=UTC)
FILL = """
INSERT INTO job (runtemplate_id, company_id, application_id, status, schedule_type,
    scheduled_for, slot_at, started_at, finished_at, exit_code, attempt, executor,
    cancel_requested, stdout_bytes, stderr_bytes, stdout_dropped, stderr_dropped,
    chain_depth, created_at)
SELECT r.id, r.company_id, r.application_id,
    CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'succeeded' END, 'hourly', t, t,
    t + interval '5 seconds', t + interval '9 seconds', CASE WHEN g % 50 = 0 THEN 1 ELSE 0 END,
    1, 'native', false, 0, 0, 0, 0, 0, now()
FROM runtemplate r, generate_series(1, :slots) g,
    LATERAL (SELECT timestamptz '2026-10-01 00:00+00' + g * interval '1 hour' AS t) x
"""


def _fill(templates: int, slots: int) -> list[RunTemplate]:
    app = Application(name="bench", uuid="bench", executable="/bin/true", version="1")
    companies = [Company(name=f"C{i}", slug=f"c{i}") for i in range(10)]
    db.session.add_all([app, *companies])
    db.session.flush()
    rts = [
        RunTemplate(company_id=companies[i % 10].id, application_id=app.id, name=f"rt{i}",
                    interval="h", created_at=datetime(2026, 9, 1, tzinfo=UTC))
        for i in range(templates)
    ]  # fmt: skip
    db.session.add_all(rts)
    db.session.commit()
    db.session.execute(text(FILL), {"slots": slots})
    db.session.commit()
    db.session.execute(text("ANALYZE job"))
    db.session.commit()
    return rts


def _plan(query: Select[Any]) -> list[str]:
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    return list(db.session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql)).scalars())


def _ms(fn: Callable[[], object], runs: int = 5) -> float:
    fn()  # warm
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--templates", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=1000)
    parser.add_argument("--plans", action="store_true", help="print the EXPLAIN ANALYZE plans")
    args = parser.parse_args()
    with scratch_database("postgres", "mf_bench_ops") as url:
        settings = Settings(url, "bench", generate_key(), tmp_dir="/tmp/mf-bench-ops")
        app = create_app({"TESTING": True}, settings=settings)
        with app.app_context():
            Base.metadata.create_all(db.engine)
            t0 = time.perf_counter()
            rts = _fill(args.templates, args.slots)
            company = rts[0].company_id
            mine = [r for r in rts if r.company_id == company]
            cols = (Job.id, Job.runtemplate_id, Job.slot_at, Job.status, Job.started_at)
            queries = {
                "sla_rows_company_week": select(*cols).where(
                    Job.runtemplate_id.in_([r.id for r in mine]),
                    Job.slot_at >= START,
                    Job.slot_at < END,
                ),
            }
            if args.plans:
                for name, q in queries.items():
                    print(f"--- {name}", *_plan(q), sep="\n", file=sys.stderr)
            filt = RetryFilter(company=company, since=START, until=END)
            late = 900
            out = {
                "jobs": db.session.scalar(text("SELECT count(*) FROM job")),
                "fill_s": round(time.perf_counter() - t0, 1),
                "sla_one_template_week_ms": _ms(
                    lambda: sla.report([rts[0]], START, END, now=END, zone="UTC", late_after=late)
                ),
                "sla_company_week_ms": _ms(
                    lambda: sla.report(mine, START, END, now=END, zone="UTC", late_after=late)
                ),
                "sla_company_week_slots": len(mine) * 24 * 7,
                "bulk_retry_preview_company_week_ms": _ms(lambda: preview(filt, {company})),
            }
            db.session.remove()
            db.engine.dispose()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
