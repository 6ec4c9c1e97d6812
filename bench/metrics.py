"""Metrics benchmark: the portal's /metrics scrape time with a million jobs in the database.

    .venv/bin/python bench/metrics.py --db postgres --jobs 1000000
    .venv/bin/python bench/metrics.py --url postgresql://.../filled_by_bench_portal

Fills the database as bench/portal.py does (or times an already filled one), then times
/metrics through the Flask test client (median and p95 of --runs scrapes after a warm-up) and
prints JSON. Aim: a scrape well under the portal's 50 ms page budget.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import scratch_database
from portal import bench_app, fill, timed

from multiflexi_web.extensions import db


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--url", help="time this already filled database instead (skips the fill)")
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(scratch_database(args.db, "mf_bench_metrics"))
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        app = bench_app(url, tmp)
        fill_s = None
        if not args.url:
            with app.app_context():
                fill_s = round(fill(url, args.jobs), 1)
                db.session.remove()
        result = {"db": "sqlite" if url.startswith("sqlite") else "postgres", "fill_s": fill_s}
        result["scrape"] = timed(app.test_client(), "/metrics", args.runs)
        result["budget_ms"] = 50
        with app.app_context():
            db.engine.dispose()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
