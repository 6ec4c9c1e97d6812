"""Faults outside the database: a full artifact disk, a restarted message broker."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.chaos.infra import PrivateRedis, mount_tmpfs, unmount
from bench.chaos.scenarios.common import Outcome, mid_jobs
from bench.chaos.world import World, utc_now
from multiflexi_web.extensions import db
from multiflexi_web.models import Artifact, Company, EventRule, EventSource, Job

ARTIFACT_BYTES = 200 * 1024
TMPFS_KB = 1024


def disk_full_artifacts(w: World) -> Outcome:
    """MULTIFLEXI_ARTIFACT_DIR on a 1 MiB tmpfs, filled up while jobs store 200 KiB artifacts."""
    folder = w.folder / "artifacts"
    why = mount_tmpfs(folder, TMPFS_KB)
    if why:
        return Outcome(skipped=why)
    w.cleanups.append(lambda: unmount(folder))
    out = Outcome()
    w.params.extra_env["MULTIFLEXI_ARTIFACT_INLINE_MAX_MB"] = "0"  # every artifact on disk
    w.setup()
    w.rts["short"] = w.add_rt("artifact", w.params.short_sleep, ARTIFACT_BYTES)
    w.daemon("executor")
    w.enqueue(w.params.jobs)
    mid_jobs(w, 2)
    filler = folder / "filler"
    _fill(filler)
    time.sleep(w.params.fault_seconds)
    filler.unlink()
    out.cleared = utc_now()
    out.settled_notes = _artifact_notes
    return out


def _artifact_notes(w: World) -> dict[str, Any]:
    """Succeeded artifact jobs whose 200 KiB blob was not stored (the disk was full)."""
    q = (
        select(func.count())
        .select_from(Job)
        .where(
            Job.runtemplate_id == w.rts["short"].id,
            Job.status == "succeeded",
            ~select(Artifact.id).where(Artifact.job_id == Job.id).exists(),
        )
    )
    with Session(w.monitor) as s:
        return {"succeeded_without_artifact": s.scalar(q)}


def _fill(path: Path) -> None:
    with contextlib.suppress(OSError), open(path, "wb") as fh:
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


def broker_restart_eventor(w: World) -> Outcome:
    """Messages pushed to a private Redis list; Redis kill -9'd and restarted mid-way."""
    if not PrivateRedis.available():
        return Outcome(skipped="redis-server not installed")
    broker = PrivateRedis(w.folder / "redis", w.procs)
    broker.start()
    w.setup()
    _event_rule(w, broker.url)
    w.daemon("eventor")
    w.daemon("executor")
    sent: list[int] = []
    half = w.params.jobs // 2
    cleared = None
    for n in range(w.params.jobs):
        if n == half:
            broker.kill()
            time.sleep(3)
            broker.start()
            cleared = utc_now()
        _push(broker.url, n)
        sent.append(n)
        time.sleep(0.1)
    return Outcome(cleared=cleared, expected=[("event", str(n)) for n in sent])


def _event_rule(w: World, url: str) -> None:
    assert w.flask is not None
    with w.flask.app_context():
        company = db.session.query(Company).one()
        source = EventSource(
            name="chaos-redis",
            kind="redis",
            company_id=company.id,
            config={"url": url, "key": "chaos:in", "mode": "list"},
        )
        db.session.add(source)
        db.session.flush()
        rule = EventRule(
            source_id=source.id,
            name="chaos",
            runtemplate_id=w.rts["short"].id,
            env_mapping={"CHAOS_KEY": "$.n"},
        )
        db.session.add(rule)
        db.session.commit()


def _push(url: str, n: int, timeout: float = 30) -> None:
    """LPUSH one message, retrying while the broker is away."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
                client.lpush("chaos:in", json.dumps({"n": n}))
            return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
