"""Metrics benchmark: the portal's /metrics scrape time with a million jobs in the database.

    .venv/bin/python bench/metrics.py --db postgres --jobs 1000000
    .venv/bin/python bench/metrics.py --url postgresql://.../filled_by_bench_portal

Fills the database as bench/portal.py does (or times an already filled one), then times
/metrics through the Flask test client (median and p95 of --runs scrapes after a warm-up) and
prints JSON. Aim: a scrape well under the portal's 50 ms page budget.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from portal import filled_app, jobs_args, timed


def main() -> None:
    args = jobs_args(__doc__)
    with filled_app(args, "mf_bench_metrics") as (app, url, fill_s):
        result = {"db": "sqlite" if url.startswith("sqlite") else "postgres", "fill_s": fill_s}
        result["scrape"] = timed(app.test_client(), "/metrics", args.runs)
        result["budget_ms"] = 50
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
