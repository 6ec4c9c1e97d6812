"""Scheduler benchmark: N due RunTemplates, one tick enqueues them all; then an idle tick.

    .venv/bin/python bench/scheduler.py --templates 100000 --db postgres --repeat 3

Prints JSON: seconds of the tick that enqueues every due template, the CPU it cost (scheduler
process and its PostgreSQL backends), median seconds of an idle tick, peak RSS and the load
average around each run. `--repeat N` runs it N times, each on a fresh database, and adds the
median and the worst due tick and its median CPU: on a shared 2-core machine wall time follows the
other programs' load, CPU seconds much less.
Aim (issue 20): 100,000 due in under 1 s on PostgreSQL and 2 s on SQLite, idle under 10 ms.
`--lanes` defaults to the daemon's default (2); `--lanes 1` shows one writer's cost.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import scratch_database

from multiflexi_web import create_app
from multiflexi_web.config import Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import Application, Base, Company, Job, RunTemplate
from multiflexi_web.security.secrets import generate_key
from multiflexi_web.services.scheduling.batches import DEFAULT_LANES, tick
from multiflexi_web.services.scheduling.times import schedule_of

# (interval, cron, delay, timezone): a mix of codes, delays, zones and a custom cron.
MIX = [
    ("i", None, 0, None),
    ("h", None, 0, None),
    ("h", None, 900, "Europe/Prague"),
    ("d", None, 7200, "Europe/Prague"),
    ("d", None, 0, "America/New_York"),
    ("w", None, 3600, None),
    ("m", None, 0, None),
    ("y", None, 0, None),
    ("c", "*/5 * * * *", 0, None),
    ("c", "30 2 * * 1-5", 0, "Europe/Prague"),
]


def populate(n: int, now: datetime) -> None:
    """N active templates, each due at its latest slot at or before `now`."""
    company = Company(name="Bench", slug="bench")
    app = Application(uuid="bench-app", name="bench", executable="/bin/true", version="1.0")
    db.session.add_all([company, app])
    db.session.flush()
    due = {}
    for interval, cron, delay, tz in MIX:
        sched = schedule_of(interval, cron, delay, tz or "UTC")
        assert sched is not None
        due[(interval, cron, delay, tz)] = sched.runs_between(now - timedelta(days=800), now, 1)[-1]
    rows = []
    for i in range(n):
        interval, cron, delay, tz = MIX[i % len(MIX)]
        rows.append(
            {
                "company_id": company.id,
                "application_id": app.id,
                "name": f"rt{i}",
                "interval": interval,
                "cron": cron,
                "delay": delay,
                "timezone": tz,
                "active": True,
                "next_run_at": due[(interval, cron, delay, tz)],
            }
        )
    for start in range(0, n, 20_000):
        db.session.execute(insert(RunTemplate.__table__), rows[start : start + 20_000])
    db.session.commit()


def idle_ticks(now: datetime, seconds: float) -> list[float]:
    """Idle tick durations. Right after a big tick the due-index range still holds the entries
    the tick left dead; scans step over them until no open transaction (in any database of
    the cluster) predates the tick, then mark them and idle ticks drop to a fraction of a ms.
    """
    out: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or len(out) < 10:
        out.append(tick(now + timedelta(milliseconds=1)).seconds)
        time.sleep(0.2)
    return out


def server_cpu() -> float:
    """CPU seconds used so far by this database's PostgreSQL backends (0 on SQLite).

    CPU time says more than wall time on a shared machine: it does not grow with the load
    that other programs put on the two cores.
    """
    if db.engine.dialect.name != "postgresql":
        return 0.0
    with db.engine.connect() as conn:
        pids = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        ).scalars()
        ticks = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # not local, or gone
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def runqueue_wait() -> float:
    """Seconds this thread has waited for a CPU (Linux schedstat): on SQLite the whole tick
    runs in this thread, so wall minus this wait is what the tick would take on idle cores."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def run_once(args: argparse.Namespace) -> dict[str, Any]:
    """One fresh database: populate, the due tick, then idle ticks."""
    with scratch_database(args.db, "mf_bench") as url, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=url,
            secret_key=secrets.token_hex(16),
            encryption_master_key=generate_key(),
            tmp_dir=tmp,
            artifact_dir=tmp,
        )
        app = create_app({"TESTING": True}, settings=settings)
        with app.app_context():
            Base.metadata.create_all(db.engine)
            now = datetime.now(UTC)
            populate(args.templates, now)
            db.session.remove()
            if db.engine.dialect.name == "postgresql":
                with db.engine.begin() as conn:
                    conn.exec_driver_sql("ANALYZE")
            load_before = os.getloadavg()[0]
            server_before, client_before, wait_before = server_cpu(), client_cpu(), runqueue_wait()
            result = tick(now, batch=args.batch, lanes=args.lanes)
            server_s, client_s = server_cpu() - server_before, client_cpu() - client_before
            waited = runqueue_wait() - wait_before
            load_after = os.getloadavg()[0]
            jobs = db.session.scalar(select(func.count(Job.id)))
            db.session.rollback()
            idle = idle_ticks(now, args.idle_seconds)
            db.session.remove()
            db.engine.dispose()
    if jobs != args.templates:
        sys.exit(f"expected {args.templates} jobs, got {jobs}")
    # PostgreSQL's lanes and backends wait in other threads and processes: no estimate there.
    sqlite = args.db == "sqlite"
    return {
        "due_tick_seconds": round(result.seconds, 3),
        **(
            {"due_tick_seconds_less_runqueue_wait": round(result.seconds - waited, 3)}
            if sqlite
            else {}
        ),
        "due_tick_batches": result.batches,
        "due_tick_cpu_seconds_db_server": round(server_s, 3),
        "due_tick_cpu_seconds_scheduler": round(client_s, 3),
        "due_tick_cpu_seconds": round(server_s + client_s, 3),
        "load_average_1min_before_after": [load_before, load_after],
        "jobs_created": jobs,
        "idle_tick_ms_first": ms(idle[0]),
        "idle_tick_ms_median": ms(statistics.median(idle)),
        "idle_tick_ms_median_last10": ms(statistics.median(idle[-10:])),
        "idle_ticks": len(idle),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--templates", type=int, default=10_000)
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument(
        "--lanes", type=int, default=DEFAULT_LANES, help="concurrent batch writers (PostgreSQL)"
    )
    p.add_argument("--idle-seconds", type=float, default=5.0, help="idle ticks at 5 per second")
    p.add_argument(
        "--repeat", type=int, default=1, help="runs, each on a fresh database (median and worst)"
    )
    args = p.parse_args()
    runs = [run_once(args) for _ in range(max(1, args.repeat))]
    due = [r["due_tick_seconds"] for r in runs]
    summary = {
        "db": args.db,
        "templates": args.templates,
        "batch": args.batch,
        "lanes": args.lanes,
        **(runs[0] if len(runs) == 1 else {"runs": runs}),
        "due_tick_seconds_median": round(statistics.median(due), 3),
        "due_tick_seconds_worst": max(due),
        **(
            {
                "due_tick_seconds_less_runqueue_wait_median": round(
                    statistics.median(r["due_tick_seconds_less_runqueue_wait"] for r in runs), 3
                )
            }
            if args.db == "sqlite"
            else {}
        ),
        "due_tick_cpu_seconds_median": round(
            statistics.median(r["due_tick_cpu_seconds"] for r in runs), 3
        ),
        "idle_tick_ms_median_worst": max(r["idle_tick_ms_median"] for r in runs),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
