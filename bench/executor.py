"""Executor benchmark: throughput against a P-process no-queue floor, enqueue rate, latency, RSS.

    .venv/bin/python bench/executor.py --db sqlite --jobs 1000 --parallel 2 --repeat 3
    .venv/bin/python bench/executor.py --db postgres --jobs 1000 --parallel 2 --repeat 3

Every job is `/bin/sh -c 'echo hello; echo err 1>&2'` with its output captured and stored.
Floor (bench/floor.py): P plain OS processes for P slots, each running the same subprocess and
writing the same rows to the same database (the Job row's update to succeeded and its two output
rows, one transaction per job), no queue; timed from all ready to the last done.
Drain: N jobs are enqueued first, one transaction each from one caller (that alone is
`enqueue_per_s`), then `multiflexi-executor --drain` runs them; jobs/s over the span from the first
claim to the last finish. Live (`jobs_per_s_enqueue_included`): an executor is started and warmed
with one job, then N jobs are enqueued one transaction each while it runs; jobs/s is N over the
span from just before the first enqueue call to the last finish. Every ratio is against the floor.
Latency: the same executor, now idle, gets one job every 50 ms; enqueue-to-start is claim time
minus the moment just before the enqueue call. Worker RSS: the largest process of the executor's
tree (its job guard included, job subprocesses not) sampled during the live run and the latency.
`daemon_cpu_ms_per_job` is the draining daemons' own CPU (start-up included) over N.
`--processes K` runs K executors sharing the P slots (P/K each) for the drain and the live run:
is the executor held back by its one interpreter, or by the host's CPU? Prints JSON;
`--repeat N` runs it all N times on fresh databases and adds the medians and the worst ratios.
`--as-unit` (PostgreSQL, as root) starts the executor for the drain and the live run as the
systemd unit does: not root (`nobody` here) with the unit's capabilities, jobs as the job user.
Aims (issue 20): every ratio >= 0.8; p50 < 3 ms PostgreSQL, < 10 ms SQLite; enqueue >= 2,000/s.

    .venv/bin/python bench/executor.py --module docker --jobs 20 --parallel 1 --repeat 3

`--module docker|podman` instead measures a container module's per-job overhead against native
for the same trivial job, both timed in the same run (bench/containers.py; root, private engine).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import floor as bench_floor  # noqa: E402
from bench.procs import RssSampler, server_cpu_s  # noqa: E402
from multiflexi_web import create_app  # noqa: E402
from multiflexi_web.config import Settings  # noqa: E402
from multiflexi_web.db.engine import write_session  # noqa: E402
from multiflexi_web.extensions import db  # noqa: E402
from multiflexi_web.models import Application, Base, Company, Job, RunTemplate, utcnow  # noqa: E402
from multiflexi_web.security.secrets import generate_key  # noqa: E402
from multiflexi_web.services.jobs import transitions as jobs  # noqa: E402

PG_ADMIN = os.environ.get("MULTIFLEXI_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SCRIPT = "echo hello; echo err 1>&2"
ARGV = ["/bin/sh", "-c", SCRIPT]
KEY = generate_key()
WEB_SECRET = secrets.token_hex(16)


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    name = f"mf_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}".replace(
            "postgresql://", "postgresql+psycopg://"
        )
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_app(url: str, folder: Path) -> Flask:
    settings = Settings(
        database_url=url,
        secret_key=WEB_SECRET,
        encryption_master_key=KEY,
        tmp_dir=str(folder / "work"),
        artifact_dir=str(folder / "artifacts"),
    )
    return create_app(settings=settings)


def setup_templates(count: int = 1, overlap: str = "allow") -> list[RunTemplate]:
    Base.metadata.create_all(db.engine)
    company = Company(name="Bench", slug="bench")
    app = Application(
        uuid="00000000-0000-4000-8000-000000000001",
        name="hello",
        executable="/bin/sh",
        cmdparams=f"-c '{SCRIPT}'",
        version="1",
    )
    db.session.add_all([company, app])
    db.session.flush()
    rts = [
        RunTemplate(
            company_id=company.id, application_id=app.id, name=f"bench{i}", overlap_policy=overlap
        )
        for i in range(count)
    ]
    db.session.add_all(rts)
    db.session.commit()
    return rts


def floor(rt: RunTemplate, url: str, n: int, parallel: int) -> float:
    """P plain processes doing the same subprocess and the same row writes, no queue: jobs/s.

    The n Job rows they finish are inserted first (untimed); nothing claims them meanwhile."""
    ids = [jobs.enqueue(rt, schedule_type="adhoc-cli").id for _ in range(n)]
    db.session.commit()
    return bench_floor.floor("job", url, ids, parallel)


# What starts an executor before its own command line: empty, or setpriv making it the
# systemd unit's non-root user with the unit's capabilities (--as-unit).
LAUNCH: list[str] = []
UNIT_CAPS = "setuid,setgid,chown,kill,dac_override,fowner"  # systemd/multiflexi-executor.service


def as_unit(folders: list[Path]) -> list[str]:
    """The executor as systemd runs it (docs/security.md): `nobody` here, not root, with the
    unit's capabilities in its ambient set; its folders handed to it."""
    if os.geteuid() != 0:
        raise SystemExit("bench: --as-unit starts the executor through setpriv: run as root")
    nobody = pwd.getpwnam("nobody")
    for folder in folders:
        for path in (folder, *folder.rglob("*")):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
    caps = ",".join(f"+{cap}" for cap in UNIT_CAPS.split(","))
    prefix = ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    prefix += ["--no-new-privs"]  # NoNewPrivileges=yes
    return [*prefix, f"--inh-caps={caps}", f"--ambient-caps={caps}", "--"]


def daemon_env(
    url: str, folder: Path, parallel: int, settings: list[str] | None = None
) -> dict[str, str]:
    """The daemon's environment; `settings` ("KEY=VALUE") are added last."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MULTIFLEXI_", "DATABASE"))}
    env.update(
        DATABASE_URL=url,
        ENCRYPTION_MASTER_KEY=KEY,
        SECRET_KEY=WEB_SECRET,
        MULTIFLEXI_TMP=str(folder / "work"),
        MULTIFLEXI_ARTIFACT_DIR=str(folder / "art"),
        MULTIFLEXI_ENV_FILE="/nonexistent",
        MULTIFLEXI_LOCAL_ENV="/nonexistent",
        # The benchmarks' action peers listen on loopback (actions/destinations.py).
        MULTIFLEXI_ACTION_ALLOWED_NETWORKS="127.0.0.0/8,::1/128",
        MULTIFLEXI_MAX_PARALLEL=str(parallel),
        MULTIFLEXI_LOG_LEVEL="WARNING",
    )
    for item in settings or []:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def throughput(
    rts: list[RunTemplate],
    n: int,
    env: dict[str, str],
    *,
    commit_each: bool = False,
    processes: int = 1,
) -> dict[str, Any]:
    """Drain: n jobs enqueued first, then `--drain` runs them (in `processes` executors sharing
    the slots). With commit_each, every enqueue is its own transaction from this one caller,
    timed: `enqueue_per_s`."""
    first_id = _next_job_id()
    t0 = time.perf_counter()
    for i in range(n):
        if commit_each:
            write_session(db.session())
        jobs.enqueue(rts[i % len(rts)], schedule_type="adhoc-cli")
        if commit_each:
            db.session.commit()
    db.session.commit()
    enqueue_s = time.perf_counter() - t0
    t0, server0 = time.perf_counter(), server_cpu_s()
    procs = [
        subprocess.Popen(
            [*LAUNCH, sys.executable, "-m", "daemons.executor", "--drain"], cwd=ROOT, env=each
        )
        for each in _shared(env, processes)
    ]
    rss, cpu, delivery_cpu = _rss_samples(procs)
    wall, server = time.perf_counter() - t0, server_cpu_s() - server0
    first, last, done = db.session.execute(
        select(
            func.min(Job.claimed_at),
            func.max(Job.finished_at),
            func.count().filter(Job.status == "succeeded"),
        ).where(Job.id >= first_id)
    ).one()
    span = (last - first).total_seconds()
    return {
        "exit": max(abs(p.returncode or 0) for p in procs),
        **({"enqueue_per_s": round(n / enqueue_s, 1)} if commit_each else {}),
        # SPEC §13: flat over the run (first quarter vs last quarter of the samples).
        "rss_mb_first_quarter_max": max(rss[: max(1, len(rss) // 4)], default=0.0),
        "rss_mb_last_quarter_max": max(rss[-max(1, len(rss) // 4) :], default=0.0),
        "succeeded": done,
        "jobs_per_s": round(n / span, 1),
        # The daemons' own CPU (every one of --processes: all their threads and their delivery
        # processes, not their jobs'), as last sampled before each exited: much less sensitive
        # to other load than jobs/s.
        "daemon_cpu_ms_per_job": round(cpu * 1000 / n, 2),
        "delivery_process_cpu_ms_per_job": round(delivery_cpu * 1000 / n, 2),
        # A local PostgreSQL's CPU over the same span (0 on SQLite: it is the daemon's own).
        "server_cpu_ms_per_job": round(server * 1000 / n, 2),
        "wall_s_incl_startup": round(wall, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }


def _shared(env: dict[str, str], processes: int) -> list[dict[str, str]]:
    """The environments of `processes` executors that share env's slots between them."""
    slots = int(env["MULTIFLEXI_MAX_PARALLEL"])
    if processes < 1 or slots % processes:
        raise SystemExit(f"bench: {slots} slots do not split over {processes} processes")
    return [{**env, "MULTIFLEXI_MAX_PARALLEL": str(slots // processes)}] * processes


def _next_job_id() -> int:
    return (db.session.scalar(select(func.max(Job.id))) or 0) + 1


def _seconds(later: datetime, earlier: datetime) -> float:
    """later - earlier in seconds; a naive value read back from SQLite is UTC."""
    if later.tzinfo is None:
        later = later.replace(tzinfo=UTC)
    if earlier.tzinfo is None:
        earlier = earlier.replace(tzinfo=UTC)
    return (later - earlier).total_seconds()


def _rss_samples(
    procs: list[subprocess.Popen[bytes]], every: float = 0.1
) -> tuple[list[float], float, float]:
    """The largest daemon's RSS (MB) every `every` seconds until they all exit, and the CPU
    seconds they had used (user + system, their threads and their action delivery processes,
    not their jobs) at each one's last sample, and the delivery processes' part of them."""
    out: list[float] = []
    cpu: dict[int, float] = {}
    delivery: set[int] = set()
    while any(p.poll() is None for p in procs):
        sizes = [0.0]
        for proc in (p for p in procs if p.returncode is None):
            with contextlib.suppress(OSError, IndexError, ValueError):
                sizes.append(_rss_mb(proc.pid))
                cpu[proc.pid] = _cpu_seconds(proc.pid)
                # The delivery process is forked: the child with the daemon's command line.
                own = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
                kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                for kid in map(int, kids):
                    with contextlib.suppress(OSError, IndexError, ValueError):
                        if Path(f"/proc/{kid}/cmdline").read_bytes() == own:
                            cpu[kid] = _cpu_seconds(kid)
                            delivery.add(kid)
        out.append(max(sizes))
        time.sleep(every)
    return out, sum(cpu.values()), sum(cpu[pid] for pid in delivery)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise ValueError(f"process {pid}: no VmRSS")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def live(
    rt: RunTemplate, n: int, latency_jobs: int, env: dict[str, str], processes: int = 1
) -> dict[str, Any]:
    """Running executors: n jobs enqueued while they run (enqueue included), then latency."""
    procs = [
        subprocess.Popen([*LAUNCH, sys.executable, "-m", "daemons.executor"], cwd=ROOT, env=each)
        for each in _shared(env, processes)
    ]
    sampler = RssSampler([p.pid for p in procs])
    sampler.start()
    try:
        warm = jobs.enqueue(rt, schedule_type="adhoc-cli").id
        db.session.commit()
        _wait_done([warm])
        rate = _enqueue_included(rt, n) if n else {}
        lat = latency(rt, latency_jobs)
        rss = sampler.stop()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
    return {**rate, "enqueue_to_start": lat, **rss}


def _enqueue_included(rt: RunTemplate, n: int) -> dict[str, float]:
    """n jobs enqueued one transaction each while the executor runs: jobs/s up to the last."""
    first_id = _next_job_id()
    db.session.rollback()
    t0 = utcnow()  # before the first enqueue call
    for _ in range(n):
        write_session(db.session())
        jobs.enqueue(rt, schedule_type="adhoc-cli")
        db.session.commit()
    _wait_done_from(first_id, n)
    last = db.session.scalar(select(func.max(Job.finished_at)).where(Job.id >= first_id))
    assert last is not None
    return {"jobs_per_s_enqueue_included": round(n / _seconds(last, t0), 1)}


def latency(rt: RunTemplate, n: int) -> dict[str, Any]:
    """An idle executor already running gets one job every 50 ms: enqueue-to-start."""
    before: dict[int, datetime] = {}
    for _ in range(n):
        db.session.rollback()
        t = utcnow()  # before the enqueue call: the whole enqueue counts
        write_session(db.session())  # SQLite: begin as a writer, never upgrade a read
        job_id = jobs.enqueue(rt, schedule_type="adhoc-cli").id
        db.session.commit()
        before[job_id] = t
        time.sleep(0.05)
    _wait_done(list(before))
    started = dict(
        db.session.execute(select(Job.id, Job.claimed_at).where(Job.id.in_(before))).all()
    )
    ms = sorted(max(0.0, _seconds(started[i], before[i]) * 1000) for i in before)
    q = statistics.quantiles(ms, n=100)
    return {"n": n, "p50_ms": round(q[49], 2), "p95_ms": round(q[94], 2), "p99_ms": round(q[98], 2)}


def _wait_done_from(first_id: int, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()
        finished = db.session.scalar(
            select(func.count()).where(Job.id >= first_id, Job.finished_at.is_not(None))
        )
        if finished is not None and finished >= n:
            return
        time.sleep(0.05)
    raise SystemExit(f"bench: jobs from {first_id} not finished after {timeout}s")


def _wait_done(ids: list[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()
        left = db.session.scalar(
            select(func.count()).where(Job.id.in_(ids), Job.finished_at.is_(None))
        )
        if not left:
            return
        time.sleep(0.05)
    raise SystemExit(f"bench: jobs {ids[:5]}... not finished after {timeout}s")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--parallel", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--latency-jobs", type=int, default=200)
    ap.add_argument(
        "--processes",
        type=int,
        default=1,
        help="executor processes sharing the --parallel slots (drain and live; the floor keeps "
        "--parallel processes)",
    )
    ap.add_argument(
        "--workdir-on",
        choices=["disk", "tmpfs"],
        default="disk",
        help="where job work directories (MULTIFLEXI_TMP) live: tmpfs is /dev/shm",
    )
    ap.add_argument(
        "--templates", type=int, default=1, help="RunTemplates the jobs are spread over"
    )
    ap.add_argument(
        "--overlap",
        choices=["allow", "wait"],
        default="allow",
        help="their overlap policy: `wait` (the default for users) adds the per-template check",
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs, each on a fresh database (median and worst)"
    )
    ap.add_argument("--module", choices=["native", "docker", "podman"], default="native")
    ap.add_argument(
        "--latency-only",
        action="store_true",
        help="only enqueue-to-start (an idle executor, --latency-jobs jobs): no floor, no drain",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a daemon setting, e.g. MULTIFLEXI_JOB_USER=daemon: jobs switch to no other user, "
        "as the floor's processes do not (tests only; the switch costs an exec per job)",
    )
    ap.add_argument(
        "--as-unit",
        action="store_true",
        help="run the executor as the systemd unit does: not root, with the unit's capabilities "
        "(here `nobody`), jobs as the job user (PostgreSQL only; run as root)",
    )
    args = ap.parse_args()
    if args.as_unit and args.db != "postgres":
        raise SystemExit("bench: --as-unit needs --db postgres (a SQLite file of root's)")
    if args.module != "native":
        from bench.containers import run

        print(json.dumps(run(args), indent=2))
        return
    runs = [run_once(args) for _ in range(max(1, args.repeat))]
    summary: dict[str, Any] = {}
    for key in ("ratio_to_floor", "ratio_enqueue_included", "enqueue_per_s"):
        values = [r[key] for r in runs if key in r]
        if not values:
            continue
        summary[f"{key}_median"] = statistics.median(values)
        summary[f"{key}_worst"] = min(values)
    summary["p50_ms_median"] = statistics.median(r["enqueue_to_start"]["p50_ms"] for r in runs)
    print(
        json.dumps(
            {
                "db": args.db,
                "jobs": args.jobs,
                "parallel": args.parallel,
                "processes": args.processes,
                "templates": args.templates,
                "overlap": args.overlap,
                "workdir_on": args.workdir_on,
                "settings": args.set,
                "as_unit": args.as_unit,
                **(runs[0] if len(runs) == 1 else {"runs": runs}),
                **summary,
                "load_average": os.getloadavg(),
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
            },
            indent=2,
        )
    )


def run_once(args: argparse.Namespace) -> dict[str, Any]:
    """One fresh database: the floor, the drain (with enqueue alone), live throughput, latency."""
    work_root = "/dev/shm" if args.workdir_on == "tmpfs" else None
    with (
        tempfile.TemporaryDirectory() as tmp,
        tempfile.TemporaryDirectory(dir=work_root) as work,
        database(args.db, Path(tmp)) as url,
    ):
        folder = Path(tmp)
        app = make_app(url, folder)
        with app.app_context():
            rts = setup_templates(args.templates, args.overlap)
            if args.latency_only:
                env = daemon_env(url, folder, args.parallel, args.set)
                env["MULTIFLEXI_TMP"] = work
                run = live(rts[0], 0, args.latency_jobs, env, args.processes)
                db.session.remove()
                db.engine.dispose()
                return run
            base = floor(rts[0], url, args.jobs, args.parallel)
            env = daemon_env(url, folder, args.parallel, args.set)
            env["MULTIFLEXI_TMP"] = work
            if args.as_unit:
                LAUNCH[:] = as_unit([folder, Path(work)])
                env.setdefault("MULTIFLEXI_JOB_USER", "multiflexi-job")
            drain = throughput(rts, args.jobs, env, commit_each=True, processes=args.processes)
            run = live(rts[0], args.jobs, args.latency_jobs, env, args.processes)
            db.session.remove()
            db.engine.dispose()
    return {
        "floor_processes": args.parallel,
        "floor_jobs_per_s": round(base, 1),
        **drain,
        "ratio_to_floor": round(drain["jobs_per_s"] / base, 2),
        **run,
        "ratio_enqueue_included": round(run["jobs_per_s_enqueue_included"] / base, 2),
    }


if __name__ == "__main__":
    main()
