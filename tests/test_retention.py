"""Retention: `prune` removes exactly what the policies say, on both databases, while an
executor finishes fresh jobs beside it; the dry run reports what is then removed."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, update

from multiflexi_web.config import Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import ActionRun, Artifact, Job, JobOutput, JobStatus, utcnow
from multiflexi_web.services.housekeeping.prune import prune
from tests.conftest import make_settings
from tests.executor_support import Gate, drain, schedule, shell_rt, wait_for
from tests.factories import make_artifact, make_company, make_job, make_runtemplate, make_worker

OLD = time.time() - 7 * 86400  # mtime of files the sweeps may take
MIB = 1024 * 1024


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        db_url,
        tmp_path,
        retain_jobs_days=30,
        retain_failed_days=90,
        retain_output_days=7,
        retain_artifacts_days=14,
        prune_batch=2,  # several batches per kind
        stale_workdir_hours=1.0,
        artifact_inline_max_mb=0,  # the fresh jobs' artifacts go to disk
    )


def aged(job: Job, days: float) -> Job:
    """Move a job's times `days` into the past."""
    due = utcnow() - timedelta(days=days)
    db.session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(
            scheduled_for=due, finished_at=due + timedelta(seconds=1) if job.finished_at else None
        )
    )
    db.session.commit()
    return job


def on_disk(settings: Settings, job: Job, name: str, content: bytes) -> Artifact:
    """An artifact row whose content lives in the artifact store, like a large one."""
    art = make_artifact(job, filename=name, content=content)
    path = Path(settings.artifact_dir) / str(job.id) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    art.content, art.storage_path = None, str(path)
    db.session.commit()
    return art


def stray(folder: Path, name: str, *, old: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"x" * 100)
    if old:
        os.utime(path, (OLD, OLD))
        os.utime(folder, (OLD, OLD))
    return path


def test_prune_removes_exactly_the_policy_while_an_executor_runs(
    app: Flask, settings: Settings
) -> None:
    art_dir, tmp = Path(settings.artifact_dir), Path(settings.tmp_dir)
    a, b, c = make_company(), make_company(), make_company()
    b.retain_jobs_days = 5  # overrides 30
    c.artifact_budget_mb, c.retain_artifacts_days = 1, 0  # a size cap instead of an age
    db.session.commit()
    rt_a, rt_b, rt_c = make_runtemplate(a), make_runtemplate(b), make_runtemplate(c)
    S, F, L = JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.LOST

    old_ok = aged(make_job(rt_a, status=S, output="bye"), 40)
    old_ok_file = on_disk(settings, old_ok, "big.bin", b"b" * 300)
    failed_40 = aged(make_job(rt_a, status=F, output="err"), 40)  # failed: 90 days
    failed_100 = aged(make_job(rt_a, status=F), 100)
    lost_100 = aged(make_job(rt_a, status=L), 100)
    skipped_40 = aged(make_job(rt_a, status=JobStatus.SKIPPED), 40)
    undelivered = aged(make_job(rt_a, status=S), 40)  # its action is still to be sent
    db.session.add(ActionRun(job_id=undelivered.id, action="web_hook", mode="success"))
    worker = make_worker()
    running = aged(make_job(rt_a, status=JobStatus.RUNNING, output="half"), 100)
    db.session.execute(
        update(Job).where(Job.id == running.id).values(worker_id=worker.id, heartbeat_at=utcnow())
    )
    db.session.commit()
    mid_output = aged(make_job(rt_a, status=S, output="old text"), 20)  # output goes, job stays
    mid_art = make_artifact(aged(make_job(rt_a, status=S), 20))  # artifact goes (14 days)
    fresh_art = on_disk(settings, aged(make_job(rt_a, status=S, output="new"), 3), "keep.bin", b"k")
    b_10 = aged(make_job(rt_b, status=S), 10)  # company b keeps 5 days
    aged(make_job(rt_b, status=S), 1)  # so b_10 is not its template's last success, kept always
    a_10 = aged(make_job(rt_a, status=S), 10)
    budget_jobs = [aged(make_job(rt_c, status=S), d) for d in (3, 2, 1)]
    budget_arts = [make_artifact(j, content=b"c" * (MIB // 2 + 1)) for j in budget_jobs]

    orphan = stray(art_dir / str(failed_40.id), "left-behind.bin")
    orphan_gone_job = stray(art_dir / "999999", "of-a-deleted-job.bin")
    young_orphan = stray(art_dir / str(a_10.id), "being-written.bin", old=False)
    live_partial = stray(art_dir / str(running.id), "partial.bin")
    stale_dir = stray(tmp / f"job-{failed_40.id}", "kept-on-failure.txt").parent
    live_dir = stray(tmp / f"job-{running.id}", "in-use.txt").parent

    gate = Gate()
    rt_new = shell_rt(
        f"echo fresh; {gate.wait_script()}; echo data > out.txt",
        a,
        artifacts=[{"name": "o", "path": "out.txt"}],
        overlap_policy="allow",
    )
    fresh_ids = schedule(rt_new, 6)

    ids = {
        name: obj.id
        for name, obj in {
            "old_ok": old_ok, "failed_40": failed_40, "failed_100": failed_100,
            "lost_100": lost_100, "skipped_40": skipped_40, "undelivered": undelivered,
            "running": running, "mid_output": mid_output, "a_10": a_10, "b_10": b_10,
            "mid_art": mid_art, "fresh_art": fresh_art,
            "budget0": budget_arts[0], "budget1": budget_arts[1], "budget2": budget_arts[2],
        }.items()
    }  # fmt: skip
    fresh_art_job, fresh_art_path = fresh_art.job_id, Path(str(fresh_art.storage_path))
    old_file, mid_art_size = Path(str(old_ok_file.storage_path)), mid_art.size
    preview = prune(db.session(), settings, utcnow(), dry_run=True).as_dict()

    ex = threading.Thread(target=lambda: _drain_in(app))
    ex.start()
    try:  # prune while the executor's jobs run (live rows, work directories in use)
        wait_for(lambda: _running(fresh_ids) == 2, 60, "two fresh jobs running")
        done = prune(db.session(), settings, utcnow()).as_dict()
        assert _running(fresh_ids) == 2
        assert len(list(tmp.glob("job-*"))) == 3  # theirs and the live fixture's
    finally:
        gate.open()
        ex.join()
        gate.close()
    db.session.rollback()

    i = ids
    gone_jobs = {i["old_ok"], i["failed_100"], i["lost_100"], i["skipped_40"], i["b_10"]}
    assert preview["jobs"]["count"] == done["removed"]["jobs"] == len(gone_jobs)
    assert preview["jobs"]["bytes"] == 3 + 300  # old_ok's output and file
    assert preview["output"] == {"jobs": 2, "rows": 2, "bytes": len("err") + len("old text")}
    assert preview["output"]["rows"] == done["removed"]["output_rows"]
    assert preview["artifacts"]["count"] == done["removed"]["artifacts"] == 3  # mid + 2 over budget
    assert preview["artifacts"]["bytes"] == mid_art_size + 2 * (MIB // 2 + 1)
    assert preview["orphan_files"]["count"] == 2
    assert preview["stale_workdirs"]["count"] == 1

    jobs_left = set(db.session.scalars(select(Job.id)))
    assert not jobs_left & gone_jobs
    kept = {i["failed_40"], i["undelivered"], i["running"], i["mid_output"], i["a_10"]}
    assert kept | set(fresh_ids) <= jobs_left
    with_output = set(db.session.scalars(select(JobOutput.job_id).distinct()))
    assert i["failed_40"] not in with_output and i["mid_output"] not in with_output
    assert {i["running"], fresh_art_job, *fresh_ids} <= with_output
    arts = set(db.session.scalars(select(Artifact.id)))
    assert i["mid_art"] not in arts and i["budget2"] in arts  # the newest fits the budget
    assert not {i["budget0"], i["budget1"]} & arts
    assert i["fresh_art"] in arts and fresh_art_path.exists()

    assert not old_file.exists()
    assert not orphan.exists() and not orphan_gone_job.exists()
    assert young_orphan.exists() and live_partial.exists()
    assert not stale_dir.exists() and live_dir.exists()

    for job_id in fresh_ids:  # the executor's jobs finished and kept everything they made
        job = db.session.get(Job, job_id)
        assert job is not None and job.status == JobStatus.SUCCEEDED.value
        files = [a.storage_path for a in job.artifacts if a.filename == "out.txt"]
        assert files and all(p and Path(p).exists() for p in files)

    again = prune(db.session(), settings, utcnow(), dry_run=True).as_dict()
    assert again["jobs"]["count"] == again["output"]["jobs"] == again["artifacts"]["count"] == 0


def _running(ids: list[int]) -> int:
    db.session.rollback()
    query = select(Job.id).where(Job.id.in_(ids), Job.status == JobStatus.RUNNING.value)
    return len(list(db.session.scalars(query)))


def _drain_in(app: Flask) -> None:
    with app.app_context():
        drain(app)
        db.session.remove()


def test_company_override_blank_means_default(app: Flask, settings: Settings) -> None:
    from multiflexi_web.services.housekeeping.policy import (
        RetentionError,
        policy_for,
        set_overrides,
    )

    company = make_company()
    set_overrides(company, {"retain_jobs_days": "0", "artifact_budget_mb": " "})
    p = policy_for(company, settings)
    assert (p.jobs_days, p.output_days, p.budget_mb) == (0, 7, 0)
    assert p.failed_cutoff(utcnow()) is None  # jobs kept forever: failed ones too
    with pytest.raises(RetentionError, match="retain_output_days"):
        set_overrides(company, {"retain_output_days": "-1"})


def test_the_scheduler_runs_a_pass_once_per_interval(app: Flask, settings: Settings) -> None:
    from daemons.runtime import Runtime
    from daemons.scheduler import housekeeping

    rt_a = make_runtemplate(make_company())
    old_id = aged(make_job(rt_a, status=JobStatus.SUCCEEDED), 40).id
    make_job(rt_a, status=JobStatus.SUCCEEDED)  # the newest job is never pruned
    db.session.commit()
    rt = Runtime("scheduler", app)
    recent = time.monotonic()
    assert housekeeping(rt, recent) == recent  # not yet due: nothing done
    db.session.rollback()
    assert db.session.get(Job, old_id) is not None
    ran = housekeeping(rt, recent - settings.housekeeping_interval)
    assert ran > recent
    db.session.rollback()
    assert db.session.get(Job, old_id) is None
