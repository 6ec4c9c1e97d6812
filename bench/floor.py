"""The no-queue floor: P plain OS processes, each running the job subprocess and storing output.

`floor(store, target, ids, parallel)` starts P worker processes (`python -m bench.floor --worker`),
waits until every one has imported, connected and says `ready`, then writes `go` to all of them
at t0; each runs its share of the jobs and answers `done <wall clock>`. Jobs/s is the number of
jobs over the span from t0 to the last worker's end: start-up is not counted, as a daemon's is not.

Stores (what each job writes, one transaction per job):
  job    the project's own rows in the same database: the Job row's UPDATE to succeeded (exit
         code, finished_at, byte counts) and two JobOutput rows (stdout, stderr);
  redis  one hash per job with stdout and stderr (for the Redis-backed peers in bench/peers.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGV = ["/bin/sh", "-c", "echo hello; echo err 1>&2"]


def floor(store: str, target: str, ids: list[int], parallel: int) -> float:
    """Jobs/s of `parallel` processes sharing `ids` (job ids, or just numbers for redis)."""
    shares = [ids[i::parallel] for i in range(parallel)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.floor", "--worker", store, target],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in shares
    ]
    for proc, share in zip(procs, shares, strict=True):
        assert proc.stdin and proc.stdout
        proc.stdin.write(" ".join(map(str, share)) + "\n")
        proc.stdin.flush()
    for proc in procs:
        assert proc.stdout
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("bench: a floor worker failed to start")
    t0 = time.time()
    for proc in procs:
        assert proc.stdin
        proc.stdin.write("go\n")
        proc.stdin.close()
    ends = []
    for proc in procs:
        assert proc.stdout
        line = proc.stdout.readline().split()
        if proc.wait() != 0 or not line or line[0] != "done":
            raise SystemExit("bench: a floor worker failed")
        ends.append(float(line[1]))
    return len(ids) / (max(ends) - t0)


def _job_store(url: str):  # type: ignore[no-untyped-def]
    """One transaction per job: the Job row to succeeded and its two output rows."""
    from sqlalchemy import create_engine, insert, update

    from multiflexi_web.db.engine import SQLITE_BEGIN_OPTION, engine_options, install_sqlite_hooks
    from multiflexi_web.models import Job, JobOutput, utcnow

    engine = create_engine(url, **engine_options(url, pre_ping=False))
    install_sqlite_hooks(engine)
    writer = engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
    with writer.connect():  # connect (and set the pragmas) before `ready`
        pass

    def store(job_id: int, out: bytes, err: bytes) -> None:
        now = utcnow()
        with writer.begin() as conn:
            conn.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    status="succeeded",
                    exit_code=0,
                    claimed_at=now,
                    started_at=now,
                    finished_at=now,
                    stdout_bytes=len(out),
                    stderr_bytes=len(err),
                )
            )
            conn.execute(
                insert(JobOutput),
                [
                    {"job_id": job_id, "seq": 0, "stream": "stdout", "data": out},
                    {"job_id": job_id, "seq": 1, "stream": "stderr", "data": err},
                ],
            )

    return store


def _redis_store(url: str):  # type: ignore[no-untyped-def]
    import redis

    client = redis.Redis.from_url(url)
    client.ping()

    def store(job_id: int, out: bytes, err: bytes) -> None:
        client.hset(f"bench-floor:{job_id}", mapping={"stdout": out, "stderr": err})

    return store


def worker(store_kind: str, target: str) -> None:
    ids = [int(x) for x in sys.stdin.readline().split()]
    store = _job_store(target) if store_kind == "job" else _redis_store(target)
    print("ready", flush=True)
    sys.stdin.readline()  # go
    for job_id in ids:
        done = subprocess.run(ARGV, capture_output=True, check=True)
        store(job_id, done.stdout, done.stderr)
    print(f"done {time.time()}", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--worker", nargs=2, metavar=("STORE", "TARGET"), required=True)
    sys.path.insert(0, str(ROOT))
    worker(*ap.parse_args().worker)
