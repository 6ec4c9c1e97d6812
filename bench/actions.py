"""Post-job action benchmark: finish-to-webhook latency, delivery rate, executor overhead.

    .venv/bin/python bench/actions.py --db sqlite
    .venv/bin/python bench/actions.py --db postgres

latency: an idle `multiflexi-executor` (its action dispatcher thread included) gets one job
every 100 ms whose RunTemplate has a WebHook success action; latency is the moment the loopback
peer received the POST minus the job's recorded finished_at (p50/p99).
delivery: --queued action runs (finished jobs' outbox rows) are delivered by one executor
(`--drain`); runs/s over the span from the first claim to the last recorded result.
overhead: the executor's jobs/s (bench/executor.py's throughput) for --jobs jobs of a template
without actions, of one with a WebHook action whose runs this executor only queues
(MULTIFLEXI_ACTION_THREADS=0: the finish's own cost), and of one whose runs it also delivers
while running jobs; alternating, --rounds times, in the same run (medians compared), with the
executor's own CPU per job (its delivery process included; steadier than jobs/s on a loaded
machine), and whether deliveries kept up: when the last one was recorded after the last job,
and the delivered case's rate counted to that last delivery. The peer here is
bench/light_peer.py, a process answering 200 and nothing more: the stand-in for a receiver on
another machine, whose CPU is not this host's. `--parts overhead` (or
latency, delivery, comma-separated) runs only those parts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.executor import (  # noqa: E402
    _seconds,
    _wait_done,
    daemon_env,
    database,
    make_app,
    setup_templates,
    throughput,
)
from multiflexi_web.db.engine import write_session  # noqa: E402
from multiflexi_web.extensions import db  # noqa: E402
from multiflexi_web.models import Job, JobOutput, RunTemplate, utcnow  # noqa: E402
from multiflexi_web.models.action import ActionConfig, ActionRun  # noqa: E402
from multiflexi_web.services.jobs import transitions as jobs  # noqa: E402


class Peer:
    """A loopback HTTP peer (a thread of this process) noting when each delivery arrived."""

    def __init__(self) -> None:
        self.received: dict[int, datetime] = {}
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                peer.received[json.loads(body)["job_id"]] = datetime.now(UTC)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def add_webhook(rt: RunTemplate, url: str) -> None:
    db.session.add(
        ActionConfig(runtemplate_id=rt.id, mode="success", action="WebHook", config={"url": url})
    )
    db.session.commit()


def _wait_for(ok: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} did not happen within {timeout}s")
        time.sleep(0.02)


def latency(rt: RunTemplate, peer: Peer, n: int, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.Popen([sys.executable, "-m", "daemons.executor"], cwd=ROOT, env=env)
    try:
        warm = jobs.enqueue(rt, schedule_type="adhoc-cli").id  # the daemon is up once it is in
        db.session.commit()
        _wait_for(lambda: warm in peer.received, "the warm-up delivery")
        ids = []
        for _ in range(n):
            db.session.rollback()
            write_session(db.session())  # SQLite: begin as a writer, never upgrade a read
            ids.append(jobs.enqueue(rt, schedule_type="adhoc-cli").id)
            db.session.commit()
            time.sleep(0.1)
        _wait_done(ids)
        _wait_for(lambda: set(ids) <= set(peer.received), "every delivery")
    finally:
        proc.terminate()
        proc.wait(30)
    db.session.rollback()
    finished = dict(
        db.session.execute(select(Job.id, Job.finished_at).where(Job.id.in_(ids))).all()
    )
    ms = sorted(
        (peer.received[i] - finished[i]).total_seconds() * 1000 for i in ids if i in peer.received
    )
    q = statistics.quantiles(ms, n=100)
    return {"n": len(ms), "p50_ms": round(q[49], 1), "p99_ms": round(q[98], 1)}


def delivery(rt: RunTemplate, peer: Peer, queued: int, env: dict[str, str]) -> dict[str, Any]:
    config_id = db.session.scalar(
        select(ActionConfig.id).where(ActionConfig.runtemplate_id == rt.id)
    )
    now = utcnow()
    for _ in range(queued):
        job = jobs.enqueue(rt, schedule_type="adhoc-cli", when=now.replace(year=now.year + 1))
        db.session.add(
            ActionRun(
                job_id=job.id,
                action="WebHook",
                mode="success",
                config_id=config_id,
                idempotency_key=f"bench-{job.id}",
                next_attempt_at=now,
            )
        )
    db.session.commit()
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "daemons.executor", "--drain"], cwd=ROOT, env=env, check=True
    )
    wall = time.perf_counter() - t0
    first, last, done = db.session.execute(
        select(
            func.min(ActionRun.claimed_at),
            func.max(ActionRun.finished_at),
            func.count().filter(ActionRun.status == "succeeded"),
        ).where(ActionRun.idempotency_key.like("bench-%"))
    ).one()
    span = (last - first).total_seconds()  # first claim to last result
    return {
        "queued": queued,
        "succeeded": done,
        "runs_per_s": round(queued / span, 1),
        "wall_s_incl_startup": round(wall, 2),
    }


@contextlib.contextmanager
def light_peer() -> Iterator[str]:
    """bench/light_peer.py in a child process: its URL while it lives."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "light_peer.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}/hook"
    finally:
        proc.stdin.close()
        proc.wait(10)


def overhead(rts: list[RunTemplate], n: int, env: dict[str, str], rounds: int) -> dict[str, Any]:
    plain, hooked = rts
    with light_peer() as url:
        add_webhook(hooked, url)
        return _overhead(plain, hooked, n, env, rounds)


def _overhead(
    plain: RunTemplate, hooked: RunTemplate, n: int, env: dict[str, str], rounds: int
) -> dict[str, Any]:
    # "webhook_outbox": the finish queues the run, this executor delivers none (ACTION_THREADS=0):
    # the hot path's own cost. "webhook_delivered": it also delivers them while running jobs.
    cases = (
        ("none", plain, env),
        ("webhook_outbox", hooked, {**env, "MULTIFLEXI_ACTION_THREADS": "0"}),
        ("webhook_delivered", hooked, env),
    )
    rates: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    server: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    child: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    lag: list[float] = []  # last delivery after the last job finished (delivered case), s
    whole: list[float] = []  # jobs/s until the last delivery was recorded (delivered case)
    # Warm-up, not counted: the first executor of a run met a cold database cache and page
    # cache, and the case that came first in every round read slower for it.
    _clear()
    throughput([plain], max(1, n // 4), env)
    for r in range(rounds):
        # The order turns each round, so no case always runs first or last (after the other
        # cases' dead rows, or as autovacuum starts on them).
        for name, rt, case_env in cases[r % 3 :] + cases[: r % 3]:
            _clear()
            got = throughput([rt], n, case_env)
            rates[name].append(got["jobs_per_s"])
            cpu[name].append(got["daemon_cpu_ms_per_job"])
            server[name].append(got["server_cpu_ms_per_job"])
            child[name].append(got["delivery_process_cpu_ms_per_job"])
            if name == "webhook_delivered":
                first, last_job, last_run = db.session.execute(
                    select(
                        func.min(Job.claimed_at),
                        func.max(Job.finished_at),
                        select(func.max(ActionRun.finished_at)).scalar_subquery(),
                    )
                ).one()
                lag.append(round(_seconds(last_run, last_job), 3))
                whole.append(round(n / _seconds(last_run, first), 1))
    med = {name: statistics.median(r) for name, r in rates.items()}
    # Each round's own ratio (its cases ran minutes apart at most, on the same machine state):
    # their median is steadier than the ratio of medians when the machine's speed drifts.
    paired = [
        round(d / none, 3)
        for d, none in zip(rates["webhook_delivered"], rates["none"], strict=True)
    ]
    return {
        "jobs": n,
        "jobs_per_s": rates,
        "ratio_outbox_to_none": round(med["webhook_outbox"] / med["none"], 3),
        "ratio_delivered_to_none": round(med["webhook_delivered"] / med["none"], 3),
        "ratio_delivered_to_none_per_round": paired,
        "ratio_delivered_to_none_per_round_median": statistics.median(paired),
        # Whether deliveries kept up: the last one recorded this long after the last job (a
        # niced delivery process lags while jobs take the CPU), and the delivered case's rate
        # counted until that last delivery instead of the last job.
        "last_delivery_after_last_job_s": lag,
        "delivered_jobs_per_s_until_last_delivery": whole,
        "ratio_until_last_delivery_to_none": round(statistics.median(whole) / med["none"], 3),
        # The executor's own CPU per job (delivered: the deliveries' too, which may end after
        # the last job): the cost, less blurred by other load than jobs/s.
        "daemon_cpu_ms_per_job": cpu,
        "daemon_cpu_ms_per_job_median": {k: statistics.median(v) for k, v in cpu.items()},
        # Its delivery process's part of it (the executor's own: the difference).
        "delivery_process_cpu_ms_per_job_median": {
            k: statistics.median(v) for k, v in child.items()
        },
        # PostgreSQL's CPU per job over the executor's run (its backends and background writers).
        "server_cpu_ms_per_job_median": {k: statistics.median(v) for k, v in server.items()},
    }


def _clear() -> None:
    for table in (ActionRun, JobOutput, Job):
        db.session.execute(table.__table__.delete())
    db.session.commit()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--latency-jobs", type=int, default=100)
    ap.add_argument("--queued", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a daemon setting"
    )
    ap.add_argument(
        "--parts",
        default="latency,delivery,overhead",
        help="comma-separated parts to run (default: all three)",
    )
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    peer = Peer()
    with tempfile.TemporaryDirectory() as tmp, database(args.db, Path(tmp)) as url:
        folder = Path(tmp)
        app = make_app(url, folder)
        with app.app_context():
            rts = setup_templates(3)
            env = daemon_env(url, folder, args.parallel)
            env.update(item.split("=", 1) for item in args.set)
            add_webhook(rts[0], peer.url)
            out: dict[str, Any] = {"db": args.db}
            if "latency" in parts:
                out["finish_to_webhook"] = latency(rts[0], peer, args.latency_jobs, env)
            if "delivery" in parts:
                out["delivery"] = delivery(rts[0], peer, args.queued, env)
            if "overhead" in parts:
                out["executor_overhead"] = overhead(rts[1:], args.jobs, env, args.rounds)
            out["command"] = " ".join([Path(sys.executable).name, *sys.argv])
            db.session.remove()
            db.engine.dispose()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
