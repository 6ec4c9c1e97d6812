"""Applying the effects a plug-in returned (jobs to enqueue, schedules to stop), inside the
transaction that records the run's success; a refused effect fails the run, never the job."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from multiflexi_web.actions.base import DisableSchedule, Effect, EnqueueJob
from multiflexi_web.extensions import db
from multiflexi_web.models import FileUpload, Job, RunTemplate, utcnow
from multiflexi_web.services import audit
from multiflexi_web.services.actions.context import produced_artifacts
from multiflexi_web.services.jobs import onetime
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.artifacts import content_of
from multiflexi_web.services.runtemplates.configure import ScheduleSpec, set_schedule


class EffectRefused(ValueError):
    """An effect is not allowed (another company, chain too deep, template gone)."""


def apply(job: Job, effects: tuple[Effect, ...], max_depth: int) -> list[str]:
    """Apply every effect (the caller's savepoint undoes them all if one is refused)."""
    done = []
    for effect in effects:
        if isinstance(effect, EnqueueJob):
            done.append(_enqueue(job, effect, max_depth))
        elif isinstance(effect, DisableSchedule):
            done.append(_disable(job, effect))
    return done


def _target(job: Job, rt_id: int) -> RunTemplate:
    rt = db.session.get(RunTemplate, rt_id)
    if rt is None:
        raise EffectRefused(f"RunTemplate {rt_id}: not found")
    if rt.company_id != job.company_id:
        raise EffectRefused(f"RunTemplate {rt_id}: belongs to another company, refused")
    return rt


def _enqueue(job: Job, e: EnqueueJob, max_depth: int) -> str:
    rt = _target(job, e.runtemplate_id)
    depth = job.chain_depth + 1
    if depth > max_depth:
        raise EffectRefused(
            f"RunTemplate {rt.id}: chain depth {depth} exceeds MULTIFLEXI_CHAIN_MAX_DEPTH="
            f"{max_depth} (a loop of chained or rescheduled jobs?)"
        )
    env, secret = _passed_env(job) if e.pass_env else ({}, frozenset[str]())
    when = utcnow() + timedelta(seconds=e.delay_seconds)
    new = jobs.enqueue(
        rt, schedule_type=e.schedule_type, when=when, env_override=env or None, secret_keys=secret
    )
    new.chain_depth = depth
    files = _pass_files(job, rt, new) if e.pass_files else 0
    return f"job {new.id} ({e.schedule_type}, RunTemplate {rt.id}, {len(env)} env, {files} files)"


# Layers of a job's environment passed on: what its app, company and RunTemplate set. Not the
# daemon's, system or platform variables (the next job gets its own), nor credentials (the next
# template resolves its own), nor upload paths (in a work directory that is gone).
PASSED_SOURCES = frozenset({"application", "company", "runtemplate", "override"})


def _passed_env(job: Job) -> tuple[dict[str, str], frozenset[str]]:
    """The job's non-secret environment, and its one-time values (secret ones stay secret)."""
    env = {
        str(e["key"]): str(e.get("value", ""))
        for e in job.env or []
        if not e.get("secret") and e.get("source") in PASSED_SOURCES
    }
    override = onetime.unseal(job.env_override)
    env.update(override.values)
    return env, frozenset(override.secret)


def _pass_files(job: Job, rt: RunTemplate, new: Job) -> int:
    """Produced files whose name the next app consumes become its job's uploads (field: the
    consume entry's target, else its name)."""
    consumes: dict[str, Any] = rt.application.consumes or {}
    produced = produced_artifacts(db.session(), job.id, job.application.produces or {})
    n = 0
    for name, art in produced.items():
        if name not in consumes:
            continue
        field = str((consumes[name] or {}).get("target") or name)
        db.session.add(
            FileUpload(job_id=new.id, field=field, filename=art.filename, content=content_of(art))
        )
        n += 1
    return n


def _disable(job: Job, e: DisableSchedule) -> str:
    rt = _target(job, e.runtemplate_id)
    before = rt.interval
    set_schedule(rt, ScheduleSpec(interval="n", cron=None, delay=rt.delay, timezone=rt.timezone))
    audit.record(
        "runtemplate.schedule_stopped",
        "runtemplate",
        rt.id,
        f"Stop action of job {job.id}: schedule {before!r} -> manual",
        {"job_id": job.id, "interval_before": before},
        actor="action:Stop",
    )
    return f"RunTemplate {rt.id} schedule set to manual"
