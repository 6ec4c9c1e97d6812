"""Daemon footprint: resident memory after boot, CPU while idle, memory over many jobs.

    python bench/daemons.py [--seconds 30] [--db sqlite postgresql] [--jobs 10000]

Starts the executor, scheduler and eventor as real processes on an empty database, waits until
each has registered, then reads utime+stime (/proc/<pid>/stat) over the window and VmRSS.
With --jobs it then enqueues that many `/bin/true` jobs (enqueue_many) and prints each
daemon's VmRSS as every quarter of them has finished.
MULTIFLEXI_BENCH_TREE runs the daemons from another checkout (a before/after comparison).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import multiflexi_web.models  # noqa: E402,F401  (registers every table)
from bench._common import scratch_database  # noqa: E402
from multiflexi_web.models.base import Base  # noqa: E402

KINDS = ("executor", "scheduler", "eventor")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def daemon_env(url: str, folder: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MULTIFLEXI_", "DATABASE_"))}
    env.update(
        PYTHONPATH=os.environ.get("MULTIFLEXI_BENCH_TREE", str(ROOT)),
        DATABASE_URL=url,
        SECRET_KEY=secrets.token_hex(16),
        ENCRYPTION_MASTER_KEY=secrets.token_hex(16),
        MULTIFLEXI_TMP=str(folder / "work"),
        MULTIFLEXI_ARTIFACT_DIR=str(folder / "artifacts"),
        MULTIFLEXI_ENV_FILE="/nonexistent",
        MULTIFLEXI_LOCAL_ENV="/nonexistent",
        MULTIFLEXI_JOB_USER="daemon",
        MULTIFLEXI_LOG_LEVEL="WARNING",
    )
    env.update(extra or {})
    return env


def wait_registered(url: str, pids: list[int]) -> None:
    engine = create_engine(url)
    try:
        while True:
            with engine.connect() as conn:
                seen = {r[0] for r in conn.execute(text("SELECT pid FROM worker"))}
            if set(pids) <= seen:
                return
            time.sleep(0.2)
    finally:
        engine.dispose()


def measure(
    db_kind: str, seconds: float, extra: dict[str, str], n_jobs: int
) -> dict[str, tuple[float, float]]:
    with scratch_database(db_kind) as url, tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(url)
        Base.metadata.create_all(engine)
        engine.dispose()
        env = daemon_env(url, Path(tmp), extra)
        procs = {
            k: subprocess.Popen([sys.executable, "-m", f"daemons.{k}"], cwd=tmp, env=env)
            for k in KINDS
        }
        try:
            wait_registered(url, [p.pid for p in procs.values()])
            time.sleep(2.0)  # past start-up work (journal replay, engine probes)
            before = {k: cpu_seconds(p.pid) for k, p in procs.items()}
            time.sleep(seconds)
            idle = {
                k: (100 * (cpu_seconds(p.pid) - before[k]) / seconds, rss_mib(p.pid))
                for k, p in procs.items()
            }
            if n_jobs:
                over_jobs(url, n_jobs, {k: p.pid for k, p in procs.items()})
            return idle
        finally:
            for p in procs.values():
                p.send_signal(signal.SIGTERM)
            for p in procs.values():
                p.wait(30)


def over_jobs(url: str, n: int, pids: dict[str, int]) -> None:
    """Enqueue n short jobs, print every daemon's RSS as each quarter of them has finished."""
    from multiflexi_web import create_app
    from multiflexi_web.config import Settings
    from multiflexi_web.extensions import db
    from multiflexi_web.models import Application, Company, Job, RunTemplate
    from multiflexi_web.services.jobs import transitions as jobs

    settings = Settings(database_url=url, secret_key="x" * 32, encryption_master_key="y" * 32)
    app = create_app(settings=settings, daemon=True)
    with app.app_context():
        company = Company(name="Bench", slug="bench")
        application = Application(uuid=str(uuid.uuid4()), name="true", executable="/bin/true")
        db.session.add_all([company, application])
        db.session.flush()
        rt = RunTemplate(company_id=company.id, application_id=application.id, name="true")
        db.session.add(rt)
        db.session.commit()
        for done in range(0, n, 1000):
            jobs.enqueue_many(rt, min(1000, n - done), schedule_type="adhoc-cli")
            db.session.commit()
        marks = [n * q // 4 for q in (1, 2, 3, 4)]
        started = time.monotonic()
        while marks:
            finished = db.session.scalar(
                select(func.count()).select_from(Job).where(Job.finished_at.is_not(None))
            )
            # Ended before the sleep: a read transaction held across it kept a snapshot of
            # SQLite's WAL almost all the time, so the WAL could never start over (it grew to
            # 1.2 GB over 40,000 jobs, and every daemon's mapping of its index with it).
            db.session.rollback()
            if finished >= marks[0]:
                marks.pop(0)
                rss = " ".join(f"{k}={rss_mib(pid):.1f}" for k, pid in pids.items())
                print(f"  {finished:>6} jobs finished ({time.monotonic() - started:5.1f} s): {rss}")
            time.sleep(0.5)
        db.session.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--jobs", type=int, default=0, help="then run this many jobs")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a daemon setting"
    )
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    print(f"load average {os.getloadavg()[0]:.2f}, idle window {args.seconds:.0f} s")
    print(f"{'database':<11} {'daemon':<10} {'idle CPU %':>10} {'RSS MiB':>8}")
    for db_kind in args.db:
        for kind, (cpu, rss) in measure(db_kind, args.seconds, extra, args.jobs).items():
            print(f"{db_kind:<11} {kind:<10} {cpu:>10.2f} {rss:>8.1f}")


if __name__ == "__main__":
    main()
