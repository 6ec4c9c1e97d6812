"""Container modules' per-job overhead against native (run by `bench/executor.py --module M`).

Starts a private engine exactly like the tests (tests/engines.py: needs root, dockerd or podman
and busybox-static), then drains N trivial jobs (`sh -c 'echo hello; echo err >&2'`, output and
artifacts stored) through `multiflexi-executor --drain` twice in the same run: once with the
native module and once in containers of the busybox image. Per-job time is the span from the
first claim to the last finish over N, with `--parallel` slots (1 measures one job's cost).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.executor import daemon_env, database, make_app  # noqa: E402
from multiflexi_web.extensions import db  # noqa: E402
from multiflexi_web.models import Application, Base, Company, Job, RunTemplate  # noqa: E402
from multiflexi_web.services.jobs import transitions as jobs  # noqa: E402
from tests import engines  # noqa: E402

SCRIPT = "echo hello; echo err >&2"


def templates(module: str, image: str) -> dict[str, RunTemplate]:
    Base.metadata.create_all(db.engine)
    company = Company(name="Bench", slug="bench")
    db.session.add(company)
    out: dict[str, RunTemplate] = {}
    for name, ociimage in (("native", None), (module, image)):
        app = Application(
            uuid=f"00000000-0000-4000-8000-00000000000{len(out) + 1}",
            name=f"hello-{name}",
            executable="/bin/sh",
            cmdparams=f"-c '{SCRIPT}'",
            ociimage=ociimage,
            version="1",
        )
        db.session.add(app)
        db.session.flush()
        rt = RunTemplate(company_id=company.id, application_id=app.id, name=name, executor=name)
        rt.overlap_policy = "allow"
        db.session.add(rt)
        out[name] = rt
    db.session.commit()
    return out


def drain(rt: RunTemplate, n: int, env: dict[str, str]) -> dict[str, Any]:
    ids = [jobs.enqueue(rt, schedule_type="adhoc-cli").id for _ in range(n)]
    db.session.commit()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "daemons.executor", "--drain"], cwd=ROOT, env=env)
    wall = time.perf_counter() - t0
    db.session.rollback()
    first, last, ok = db.session.execute(
        select(
            func.min(Job.claimed_at),
            func.max(Job.finished_at),
            func.count().filter(Job.status == "succeeded"),
        ).where(Job.id.in_(ids))
    ).one()
    span = (last - first).total_seconds()
    return {
        "succeeded": ok,
        "ms_per_job": round(span / n * 1000, 1),
        "jobs_per_s": round(n / span, 2),
        "wall_s_incl_startup": round(wall, 2),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    why = engines.missing(args.module)
    if why:
        raise SystemExit(f"bench: cannot start the {why}")
    rounds: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        engines.Engines() as eng_set,
        database(args.db, Path(tmp)) as url,
    ):
        eng = eng_set.get(args.module)
        app = make_app(url, Path(tmp))
        with app.app_context():
            rts = templates(args.module, eng.image)
            env = {**daemon_env(url, Path(tmp), args.parallel), eng.env_key: eng.host}
            drain(rts[args.module], 2, env)  # warm-up: page cache, engine's first container
            for _ in range(max(1, args.repeat)):
                native = drain(rts["native"], args.jobs, env)
                container = drain(rts[args.module], args.jobs, env)
                rounds.append({"native": native, args.module: container})
            db.session.remove()
            db.engine.dispose()
    overheads = [r[args.module]["ms_per_job"] - r["native"]["ms_per_job"] for r in rounds]
    return {
        "module": args.module,
        "db": args.db,
        "jobs": args.jobs,
        "parallel": args.parallel,
        "rounds": rounds,
        "overhead_ms_per_job_median": round(statistics.median(overheads), 1),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
