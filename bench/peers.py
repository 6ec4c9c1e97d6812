"""Side by side: this project and the Python job queues on one workload, one harness, one run.

    make bench-peers                       # installs the `bench` extra, then runs this
    .venv/bin/python bench/peers.py --jobs 1000 --latency-jobs 200 [--only huey-redis project-pg]

The workload (issue 20): 2 worker slots; jobs of `sh -c 'echo hello; echo err 1>&2'` whose output
is stored. Every system goes through the same code path here: its Python enqueue call from this
process, its own worker processes started as its docs say, and the job's wall-clock start and end
read back from where it stored them. Per system:
  jobs/s, enqueue included: workers up and warmed by one job; N jobs enqueued one by one while
    they run; N over the span from just before the first enqueue call to the last job's end.
  drain: N jobs enqueued with no worker running (that alone is `enqueue/s`), then the workers
    start; N over the span from the first job's start to the last one's end.
  p50 / p99: one job every 50 ms into idle workers, from just before the enqueue call to the
    job's start (for this project: its claim).
  worker RSS: the largest worker process (job subprocesses left out) and how many there are.
Where the output goes: huey, celery and rq keep the task's return value (the output and its times)
in their own result store (Redis, SQLite or PostgreSQL); procrastinate has none, so its task
INSERTs into a table of its PostgreSQL database; this project writes its Job row and output rows.
Floors: 2 plain processes running the same subprocess and storing the output without a queue
(bench/floor.py): the project's rows in SQLite or PostgreSQL, a Redis hash per job for Redis. Each
row's ratios are against the floor of the store its output goes to.
Workers: huey `huey_consumer -w 2 -k thread -n` (polling stores: first delay 10 ms, at most 50 ms);
celery prefork `-c 2` without gossip, mingle and heartbeat; rq two `SimpleWorker` processes;
procrastinate two `worker --concurrency 1` processes; this project one executor with 2 slots.
Redis: MULTIFLEXI_BENCH_REDIS (default redis://127.0.0.1:6379/15, must be empty; flushed after
each system). PostgreSQL: MULTIFLEXI_BENCH_PG as for the other benchmarks (a scratch database each).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench import floor as bench_floor  # noqa: E402
from bench._common import scratch_database  # noqa: E402
from bench.procs import RssSampler  # noqa: E402

REDIS = os.environ.get("MULTIFLEXI_BENCH_REDIS", "redis://127.0.0.1:6379/15")
SLOTS = 2
Times = tuple[float, float]  # a job's wall-clock start and end


class Peer:
    """One system under test: how to open its store, start workers, enqueue, read results."""

    name = ""
    store = ""  # redis | sqlite | postgres: which floor its ratios are against

    def open(self, stack: ExitStack) -> None: ...
    def workers(self) -> list[list[str]]:
        raise NotImplementedError

    def enqueue(self) -> Any:
        raise NotImplementedError

    def results(self, handles: list[Any]) -> list[Times]:
        raise NotImplementedError

    def reset(self) -> None:
        """Between the live run and the drain (workers stopped)."""

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(ROOT)}


def _module(name: str, **env: str) -> Any:
    """(Re)import a peer's task module under the given BENCH_* environment."""
    os.environ.update(env)
    full = f"bench.peer_tasks.{name}"
    if full in sys.modules:
        return importlib.reload(sys.modules[full])
    return importlib.import_module(full)


def _pg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


class Huey(Peer):
    def __init__(self, store: str) -> None:
        self.store, self.name = store, f"huey, {store}"

    def open(self, stack: ExitStack) -> None:
        if self.store == "redis":
            self.url = REDIS
        elif self.store == "sqlite":
            self.url = f"sqlite:///{stack.enter_context(tempfile.TemporaryDirectory())}/huey.db"
        else:
            self.url = _pg_dsn(stack.enter_context(scratch_database("postgres", "mf_peer")))
        self.mod = _module("huey_tasks", BENCH_STORE=self.url)

    def env(self) -> dict[str, str]:
        return {**super().env(), "BENCH_STORE": self.url}

    def workers(self) -> list[list[str]]:
        return [
            [
                *(sys.executable, "-m", "huey.bin.huey_consumer"),
                *("bench.peer_tasks.huey_tasks.huey", "-w", str(SLOTS), "-k", "thread", "-n"),
                *("-d", "0.01", "-m", "0.05", "-q"),
            ]
        ]

    def enqueue(self) -> Any:
        return self.mod.job()

    def results(self, handles: list[Any]) -> list[Times]:
        got = [h.get(blocking=True, timeout=600, max_delay=0.05) for h in handles]
        return [(r["started"], r["finished"]) for r in got]

    def reset(self) -> None:
        self.mod.huey.flush()


class Celery(Peer):
    name, store = "celery, redis", "redis"

    def open(self, stack: ExitStack) -> None:
        self.mod = _module("celery_tasks", BENCH_STORE=REDIS)

    def env(self) -> dict[str, str]:
        return {**super().env(), "BENCH_STORE": REDIS}

    def workers(self) -> list[list[str]]:
        return [
            [
                *(sys.executable, "-m", "celery", "-A", "bench.peer_tasks.celery_tasks", "worker"),
                *("-c", str(SLOTS), "-P", "prefork", "-O", "fair", "-l", "WARNING"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            ]
        ]

    def enqueue(self) -> Any:
        return self.mod.job.delay()

    def results(self, handles: list[Any]) -> list[Times]:
        got = [h.get(timeout=600) for h in handles]
        return [(r["started"], r["finished"]) for r in got]


class Rq(Peer):
    name, store = "rq SimpleWorker, redis", "redis"

    def open(self, stack: ExitStack) -> None:
        from rq import Queue

        self.mod = _module("rq_tasks")
        self.queue = Queue("bench", connection=redis.Redis.from_url(REDIS))

    def workers(self) -> list[list[str]]:
        run = "from rq.cli import main; main()"
        cmd = [sys.executable, "-c", run, "worker", "-w", "rq.worker.SimpleWorker", "-q"]
        return [[*cmd, "--url", REDIS, "bench"] for _ in range(SLOTS)]

    def enqueue(self) -> Any:
        return self.queue.enqueue(self.mod.job)

    def results(self, handles: list[Any]) -> list[Times]:
        out = []
        for job in handles:
            result = job.latest_result(timeout=600)
            if result is None or result.return_value is None:
                raise SystemExit(f"bench: rq job {job.id} has no result")
            out.append((result.return_value["started"], result.return_value["finished"]))
        return out


class Procrastinate(Peer):
    name, store = "procrastinate, postgres", "postgres"

    def open(self, stack: ExitStack) -> None:
        import psycopg

        self.url = _pg_dsn(stack.enter_context(scratch_database("postgres", "mf_peer")))
        self.mod = _module("procrastinate_tasks", BENCH_STORE=self.url)
        stack.enter_context(self.mod.app.open())
        self.mod.app.schema_manager.apply_schema()
        self.conn = stack.enter_context(psycopg.connect(self.url, autocommit=True))
        self.conn.execute(self.mod.TABLE)

    def env(self) -> dict[str, str]:
        return {**super().env(), "BENCH_STORE": self.url}

    def workers(self) -> list[list[str]]:
        app = "bench.peer_tasks.procrastinate_tasks.app"
        cmd = [sys.executable, "-m", "procrastinate", "--app", app, "--log-level", "warning"]
        cmd += ["worker", "--concurrency", "1"]
        return [cmd for _ in range(SLOTS)]

    def enqueue(self) -> Any:
        return self.mod.job.defer()

    def results(self, handles: list[Any]) -> list[Times]:
        rows: dict[int, Times] = {}
        while len(rows) < len(handles):
            query = "SELECT job_id, started, finished FROM bench_output WHERE job_id = ANY(%s)"
            rows = {r[0]: (r[1], r[2]) for r in self.conn.execute(query, (handles,))}
            time.sleep(0.05)
        return [rows[h] for h in handles]


class Project(Peer):
    """This project through its Python enqueue API and its executor daemon (2 slots)."""

    def __init__(self, store: str) -> None:
        self.store, self.name = store, f"**this project, {store}**"

    def open(self, stack: ExitStack) -> None:
        from bench import executor as ex

        self.ex = ex
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = stack.enter_context(ex.database(self.store, folder))
        stack.enter_context(ex.make_app(url, folder).app_context())
        stack.callback(ex.db.engine.dispose)
        stack.callback(ex.db.session.remove)
        self.rt = ex.setup_templates()[0]
        self.rt_id = self.rt.id
        self._env = ex.daemon_env(url, folder, SLOTS)

    def env(self) -> dict[str, str]:
        return self._env

    def workers(self) -> list[list[str]]:
        return [[sys.executable, "-m", "daemons.executor"]]

    def enqueue(self) -> Any:
        # jobs.submit: the one call that commits a job on its own, as each peer's enqueue
        # call does (jobs.enqueue joins the caller's transaction; the caller commits).
        ex = self.ex
        ex.db.session.rollback()  # SQLite: no read snapshot of ours held across the insert
        return ex.jobs.submit(self.rt_id, schedule_type="adhoc-cli")

    def results(self, handles: list[Any]) -> list[Times]:
        ex = self.ex
        ex._wait_done(handles, timeout=600)
        rows = ex.db.session.execute(
            ex.select(ex.Job.id, ex.Job.claimed_at, ex.Job.finished_at).where(
                ex.Job.id.in_(handles)
            )
        ).all()
        times = {i: (_ts(c), _ts(f)) for i, c, f in rows}
        return [times[h] for h in handles]


def _ts(value: Any) -> float:
    from datetime import UTC

    return float(value.replace(tzinfo=value.tzinfo or UTC).timestamp())


@contextmanager
def running(peer: Peer) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [
        # workers' banners go to stderr: stdout is the report
        subprocess.Popen(cmd, cwd=ROOT, env=peer.env(), stdout=2, start_new_session=True)
        for cmd in peer.workers()
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def measure(peer: Peer, n: int, latency_jobs: int) -> dict[str, Any]:
    with ExitStack() as stack:
        peer.open(stack)
        with running(peer) as procs:
            sampler = RssSampler([p.pid for p in procs])
            sampler.start()
            peer.results([peer.enqueue()])  # up and idle
            t0 = time.time()
            times = peer.results([peer.enqueue() for _ in range(n)])
            live = n / (max(end for _, end in times) - t0)
            before, handles = [], []
            for _ in range(latency_jobs):
                before.append(time.time())
                handles.append(peer.enqueue())
                time.sleep(0.05)
            starts = [start for start, _ in peer.results(handles)]
            rss = sampler.stop()
        peer.reset()
        t0 = time.time()
        handles = [peer.enqueue() for _ in range(n)]
        enqueue_per_s = n / (time.time() - t0)
        with running(peer):
            times = peer.results(handles)
        drain = n / (max(e for _, e in times) - min(s for s, _ in times))
    ms = sorted(max(0.0, (s - b) * 1000) for s, b in zip(starts, before, strict=True))
    q = statistics.quantiles(ms, n=100)
    return {
        "system": peer.name,
        "store": peer.store,
        "jobs_per_s_enqueue_included": round(live, 1),
        "drain_jobs_per_s": round(drain, 1),
        "enqueue_per_s": round(enqueue_per_s, 1),
        "p50_ms": round(q[49], 2),
        "p99_ms": round(q[98], 2),
        **rss,
    }


def floors(n: int) -> dict[str, float]:
    from bench import executor as ex

    out = {}
    for kind in ("sqlite", "postgres"):
        with ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            url = stack.enter_context(ex.database(kind, tmp))
            stack.enter_context(ex.make_app(url, tmp).app_context())
            out[kind] = ex.floor(ex.setup_templates()[0], url, n, SLOTS)
            ex.db.session.remove()
            ex.db.engine.dispose()
    out["redis"] = bench_floor.floor("redis", REDIS, list(range(n)), SLOTS)
    redis.Redis.from_url(REDIS).flushdb()
    return {k: round(v, 1) for k, v in out.items()}


PEERS: dict[str, Callable[[], Peer]] = {
    "huey-redis": lambda: Huey("redis"),
    "huey-sqlite": lambda: Huey("sqlite"),
    "huey-postgres": lambda: Huey("postgres"),
    "celery-redis": Celery,
    "rq-redis": Rq,
    "procrastinate-postgres": Procrastinate,
    "project-postgres": lambda: Project("postgres"),
    "project-sqlite": lambda: Project("sqlite"),
}


def table(rows: list[dict[str, Any]], base: dict[str, float]) -> str:
    lines = [
        "| system | jobs/s (enqueue incl.) / floor | drain / floor | enqueue/s "
        "| p50 / p99 ms | worker RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        f = base[r["store"]]
        live, drain = r["jobs_per_s_enqueue_included"], r["drain_jobs_per_s"]
        lines.append(
            f"| {r['system']} | {live:.0f} / {f:.0f} = {live / f:.2f} "
            f"| {drain:.0f} / {f:.0f} = {drain / f:.2f} | {r['enqueue_per_s']:.0f} "
            f"| {r['p50_ms']:.1f} / {r['p99_ms']:.1f} "
            f"| {r['worker_rss_mib']:.0f} (x{r['worker_processes']}) |"
        )
    floors_line = ", ".join(f"{k} {v:.0f} jobs/s" for k, v in base.items())
    return "\n".join([*lines, "", f"floors ({SLOTS} plain processes): {floors_line}"])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--latency-jobs", type=int, default=200)
    ap.add_argument("--only", nargs="+", choices=list(PEERS), default=list(PEERS))
    args = ap.parse_args()
    store = redis.Redis.from_url(REDIS)
    if store.dbsize():
        raise SystemExit(f"bench: {REDIS} is not empty; point MULTIFLEXI_BENCH_REDIS elsewhere")
    load = [os.getloadavg()]
    base = floors(args.jobs)
    rows = []
    for name in args.only:
        try:
            rows.append(measure(PEERS[name](), args.jobs, args.latency_jobs))
        finally:
            store.flushdb()
        load.append(os.getloadavg())
    report = {"floors": base, "rows": rows, "load_average_1m": [round(x[0], 2) for x in load]}
    print(json.dumps({**report, "command": " ".join(["python", *sys.argv])}, indent=2))
    print(table(rows, base))


if __name__ == "__main__":
    main()
