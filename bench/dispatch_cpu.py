"""The action dispatcher's own CPU per delivered run, in-process (no daemon start-up in it).

    .venv/bin/python bench/dispatch_cpu.py --db postgres --runs 300 --rounds 3
    .venv/bin/python bench/dispatch_cpu.py --db sqlite --profile 25
    .venv/bin/python bench/dispatch_cpu.py --db postgres --tls

Each round queues --runs finished jobs (two output chunks each) with one WebHook action run
each, then a `Dispatcher` of this process (runner/actions.py, --threads delivery threads) drains
them against a loopback HTTP/1.1 keep-alive peer (--tls: HTTPS, its self-signed certificate
trusted through REQUESTS_CA_BUNDLE) running in a child process, so the process CPU measured
(time.process_time over drain(), every thread of this process) is the dispatcher's alone:
its transactions, statement building, context and the POSTs' client side. Prints the median of the
rounds' CPU ms per run (and the loop thread's share) with the load average; `--profile N`
also prints cProfile's top N functions (cumulative, the loop thread's CPU) of one more round.
`--handed`: the runs are queued claimed and handed over in memory with their facts, as an
executor's finishes hand them to its own delivery process (runner/actions.py, Handed);
`--trickle RATE` with it hands them over two at a time at RATE runs/s to the dispatcher's own
loop instead of draining a backlog (MF_THREADS_CPU=1 then prints each thread's CPU per run).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, func, insert, select, update  # noqa: E402

from bench._common import scratch_database  # noqa: E402
from bench.executor import make_app, setup_templates  # noqa: E402
from multiflexi_web.extensions import db  # noqa: E402
from multiflexi_web.models import Job, JobOutput, RunTemplate, utcnow  # noqa: E402
from multiflexi_web.models.action import ActionConfig, ActionRun  # noqa: E402
from multiflexi_web.runner.actions import Dispatcher, Handed  # noqa: E402
from multiflexi_web.services.actions.context import delivery_facts, from_memory  # noqa: E402
from multiflexi_web.services.actions.runs import Claimed  # noqa: E402
from multiflexi_web.services.actions.settings import ActionSettings  # noqa: E402
from multiflexi_web.services.jobs import transitions as jobs  # noqa: E402
from tests.action_peers import self_signed  # noqa: E402


def serve_peer(tls: Path | None) -> None:
    """The peer (a child process): answers every POST 200 over keep-alive HTTP/1.1; over TLS
    with the certificate and key in `tls` (a folder) if given."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls / "cert.pem", tls / "key.pem")
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def queue(rt: RunTemplate, config_id: int, n: int, *, handed: bool = False) -> list[Handed]:
    """n finished jobs, each with two output chunks and one due WebHook run; `handed`: the
    runs claimed by owner 1 and returned with their facts, as a finish hands them over."""
    now = utcnow()
    made = jobs.enqueue_many(
        rt, n, schedule_type="adhoc-cli", when=now + timedelta(days=365)
    )  # never claimed by anything: this bench runs no executor
    ids = [j.id for j in made]
    db.session.execute(
        update(Job)
        .where(Job.id.in_(ids))
        .values(status="succeeded", exit_code=0, finished_at=now, started_at=now)
    )
    db.session.execute(
        insert(JobOutput),
        [
            {"job_id": i, "seq": s, "stream": st, "data": b"line\n" * 20, "created_at": now}
            for i in ids
            for s, st in ((0, "stdout"), (1, "stderr"))
        ],
    )
    claim = {"status": "running", "attempts": 1, "owner_id": 1, "claimed_at": now}
    db.session.execute(
        insert(ActionRun),
        [
            {
                "job_id": i,
                "action": "WebHook",
                "mode": "success",
                "config_id": config_id,
                "idempotency_key": f"bench-{i}",
                "next_attempt_at": now,
                "created_at": now,
                **(claim if handed else {}),
            }
            for i in ids
        ],
    )
    db.session.commit()
    if not handed:
        return []
    rt_id = db.session.get_one(ActionConfig, config_id).runtemplate_id
    facts = delivery_facts(db.session(), db.session.get_one(RunTemplate, rt_id))
    tails = {"stdout": [b"line\n" * 20], "stderr": [b"line\n" * 20]}
    out = []
    for run_id, job_id in db.session.execute(
        select(ActionRun.id, ActionRun.job_id).where(ActionRun.status == "running")
    ):
        c = Claimed(run_id, job_id, "WebHook", config_id, f"bench-{job_id}", 1, 1)
        found = from_memory(facts, c, (job_id, "succeeded", 0, []), tails, [])
        out.append(Handed(c, found))
    db.session.commit()
    return out


def trickle(d: Dispatcher, handed: list[Handed], rate: float) -> None:
    """Hand the runs over two at a time at `rate` runs/s, as a busy executor's finishes do,
    to the dispatcher's own loop; return once every one was recorded (handed is emptied)."""
    d.start()
    every = 2 / rate
    start = time.monotonic()
    for i in range(0, len(handed), 2):
        time.sleep(max(0.0, start + (i // 2) * every - time.monotonic()))
        d.hand_over(handed[i : i + 2])
    ids = [h.run.id for h in handed]
    handed.clear()
    while db.session.scalar(
        select(func.count()).where(ActionRun.id.in_(ids), ActionRun.status == "running")
    ):
        db.session.rollback()
        time.sleep(0.05)
    db.session.rollback()
    if os.environ.get("MF_THREADS_CPU"):
        by: dict[str, float] = {}
        for t in threading.enumerate():
            with contextlib.suppress(OSError):
                f = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1]
                v = f.split()
                by[t.name.split("-")[0]] = by.get(t.name.split("-")[0], 0.0) + (
                    int(v[11]) + int(v[12])
                ) / os.sysconf("SC_CLK_TCK") * 1000 / len(ids)
        print({k: round(v, 3) for k, v in by.items()}, file=sys.stderr)
    d.close()


LOOP_MS: list[float] = []  # per round: the share of the dispatcher loop's own thread


def one_round(app: Any, rt: RunTemplate, config_id: int, args: argparse.Namespace) -> float:
    """CPU ms per delivered run of one drain."""
    handed = queue(rt, config_id, args.runs, handed=args.handed)
    db.session.remove()
    d = Dispatcher(app, 1, ActionSettings(threads=args.threads), threading.Event())
    cpu, loop = time.process_time(), time.thread_time()
    try:
        if args.trickle:
            trickle(d, handed, args.trickle)
        d.hand_over(handed)
        d.drain()  # the loop's passes run in this thread, the deliveries in the pool's
    finally:
        d.pool.shutdown(timeout=60)
    spent, loop = time.process_time() - cpu, time.thread_time() - loop
    runs: int = args.runs
    LOOP_MS.append(loop * 1000 / runs)
    left = db.session.scalar(select(func.count()).where(ActionRun.status != "succeeded"))
    if left:
        raise SystemExit(f"bench: {left} runs not delivered")
    db.session.execute(delete(ActionRun))
    db.session.commit()
    return spent * 1000 / runs


def main() -> None:
    # In-process deliveries to the loopback peer (actions/destinations.py).
    os.environ.setdefault("MULTIFLEXI_ACTION_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--profile", type=int, default=0, help="top N functions of one more round")
    ap.add_argument("--sort", default="cumulative", help="--profile's order (e.g. tottime)")
    ap.add_argument("--tls", action="store_true", help="an HTTPS peer (self-signed, trusted)")
    ap.add_argument("--handed", action="store_true", help="runs handed over, not claimed")
    ap.add_argument(
        "--trickle", type=float, default=0.0, help="with --handed: hand them over at RATE/s"
    )
    ap.add_argument("--peer", help=argparse.SUPPRESS)  # run as the peer: "" or a TLS folder
    args = ap.parse_args()
    if args.peer is not None:
        serve_peer(Path(args.peer) if args.peer else None)
        return
    certs = Path(tempfile.mkdtemp(prefix="mf-bench-tls-"))
    if args.tls:
        cert, _ = self_signed(certs)
        os.environ["REQUESTS_CA_BUNDLE"] = str(cert)  # the deliveries trust the peer
    peer = subprocess.Popen(
        [sys.executable, __file__, "--peer", str(certs) if args.tls else ""],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert peer.stdout is not None
        scheme = "https" if args.tls else "http"
        url = f"{scheme}://127.0.0.1:{int(peer.stdout.readline())}/hook"
        with tempfile.TemporaryDirectory() as tmp, scratch_database(args.db) as db_url:
            app = make_app(db_url, Path(tmp))
            with app.app_context():
                rt = setup_templates(1)[0]
                cfg = ActionConfig(
                    runtemplate_id=rt.id, mode="success", action="WebHook", config={"url": url}
                )
                db.session.add(cfg)
                db.session.commit()
                config_id = cfg.id
                one_round(app, rt, config_id, args)  # warm-up: compiled statements, pools
                per_run = [one_round(app, rt, config_id, args) for _ in range(args.rounds)]
                out: dict[str, Any] = {
                    "db": args.db,
                    "runs": args.runs,
                    "threads": args.threads,
                    "peer": url.split(":")[0],
                    "handed": args.handed,
                    "cpu_ms_per_run": [round(x, 3) for x in per_run],
                    "cpu_ms_per_run_median": round(statistics.median(per_run), 3),
                    "loop_thread_ms_per_run_median": round(statistics.median(LOOP_MS[1:]), 3),
                    "loadavg": [round(x, 2) for x in os.getloadavg()],
                    "command": " ".join([Path(sys.executable).name, *sys.argv]),
                }
                print(json.dumps(out, indent=2))
                if args.profile:
                    prof = cProfile.Profile(time.thread_time)  # the loop thread's CPU
                    prof.enable()
                    one_round(app, rt, config_id, args)
                    prof.disable()
                    pstats.Stats(prof).sort_stats(args.sort).print_stats(args.profile)
                db.session.remove()
                db.engine.dispose()
    finally:
        peer.terminate()
        peer.wait(10)
        shutil.rmtree(certs, ignore_errors=True)


if __name__ == "__main__":
    main()
