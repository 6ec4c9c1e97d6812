"""`multiflexi runtemplate schedule`, `job list|show|output|cancel`, `artifact list|get`."""

from __future__ import annotations

import shlex
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy import select

from multiflexi_web.cli.common import (
    BIG_ID,
    ROW_ID,
    domain_errors,
    emit,
    format_option,
    parse_pairs,
    writer,
)
from multiflexi_web.cli.runtemplates import runtemplate_group
from multiflexi_web.extensions import db
from multiflexi_web.models import Artifact, Job, JobStatus, utcnow
from multiflexi_web.security.env_names import EnvNameError
from multiflexi_web.services import audit, settings
from multiflexi_web.services.jobs import artifacts, output
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.adhoc import check_one_time_env
from multiflexi_web.services.jobs.transitions import JobError
from multiflexi_web.services.runtemplates.configure import RunTemplateError, get_runtemplate

COLUMNS = [
    "id",
    "status",
    "exit_code",
    "runtemplate_id",
    "schedule_type",
    "scheduled_for",
    "started_at",
    "finished_at",
]
ARTIFACT_COLUMNS = ["id", "job_id", "filename", "mime_type", "size", "sha256"]


def job_row(job: Job, *, detail: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {c: getattr(job, c) for c in COLUMNS}
    row.update(attempt=job.attempt, executor=job.executor, worker_id=job.worker_id)
    if detail:
        row.update(
            status_reason=job.status_reason,
            command=job.command,
            pid=job.pid,
            retry_of_id=job.retry_of_id,
            cancel_requested=job.cancel_requested,
            stdout_bytes=job.stdout_bytes,
            stderr_bytes=job.stderr_bytes,
            stdout_dropped=job.stdout_dropped,
            stderr_dropped=job.stderr_dropped,
            env={e["key"]: f"{e['value']} ({e['source']})" for e in job.env or []},
        )
    return row


def _get_job(job_id: int) -> Job:
    job = db.session.get(Job, job_id)
    if job is None:
        raise JobError(f"job {job_id}: not found")
    return job


def parse_when(raw: str) -> datetime:
    """'now' or ISO 8601; a time without a zone is in MULTIFLEXI_TIMEZONE."""
    if raw.strip().lower() == "now":
        return utcnow()
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise click.BadParameter(f"{raw!r}: expected 'now' or an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(settings().timezone))
    return when


@runtemplate_group.command("schedule")
@click.argument("rt_id", type=ROW_ID)
@click.option("--when", "when_raw", default="now", show_default=True, help="now or ISO 8601.")
@click.option("--env", "env", multiple=True, metavar="K=V", help="One-time environment.")
@click.option(
    "--secret-env",
    "secret_env",
    multiple=True,
    metavar="K=V",
    help="One-time environment value marked secret (masked everywhere, also in the output).",
)
@click.option("--count", type=click.IntRange(1, 10000), default=1, show_default=True)
@format_option
@domain_errors(RunTemplateError, EnvNameError)
@writer
def schedule(
    rt_id: int,
    when_raw: str,
    env: tuple[str, ...],
    secret_env: tuple[str, ...],
    count: int,
    fmt: str,
) -> None:
    """Queue a run of a RunTemplate (it never moves the template's schedule)."""
    when, secret = parse_when(when_raw), parse_pairs(secret_env, "--secret-env")
    override = {**parse_pairs(env), **secret}
    rt = get_runtemplate(rt_id)
    check_one_time_env(rt, override, admin=True)  # the platform operator's; never LD_* etc.
    made = jobs.enqueue_many(  # one statement however many
        rt,
        count,
        schedule_type="adhoc-cli",
        when=when,
        env_override=override or None,
        secret_keys=secret,
    )
    audit.record("schedule", "runtemplate", rt.id, f"{count} job(s) scheduled", actor="cli")
    db.session.commit()
    if fmt == "json":
        emit([job_row(j) for j in made], fmt, COLUMNS)
    else:
        for j in made:
            click.echo(j.id)


@click.group("job")
def job_group() -> None:
    """Jobs: list, show, follow output, cancel."""


@job_group.command("list")
@click.option("--status", type=click.Choice([s.value for s in JobStatus]))
@click.option("--runtemplate", "rt_id", type=ROW_ID)
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@format_option
def list_(status: str | None, rt_id: int | None, limit: int, fmt: str) -> None:
    """Newest jobs first."""
    q = select(Job).order_by(Job.id.desc()).limit(limit)
    if status:
        q = q.where(Job.status == status)
    if rt_id is not None:
        q = q.where(Job.runtemplate_id == rt_id)
    emit([job_row(j) for j in db.session.scalars(q)], fmt, COLUMNS)


@job_group.command("show")
@click.argument("job_id", type=BIG_ID)
@format_option
@domain_errors(JobError)
def show(job_id: int, fmt: str) -> None:
    """One job with its command, environment (secrets masked) and counters."""
    row = job_row(_get_job(job_id), detail=True)
    if fmt == "text" and row["command"]:
        # As a shell would read it, as the job page shows it (JSON keeps the argv list); the
        # text table's comma-joined list cannot tell "a,b" from two arguments.
        row["command"] = shlex.join(row["command"])
    emit(row, fmt, COLUMNS)


@job_group.command("output")
@click.argument("job_id", type=BIG_ID)
@click.option("--stream", type=click.Choice(output.STREAMS))
@click.option("--follow", is_flag=True, help="Keep printing until the job ends.")
@domain_errors(JobError)
def output_(job_id: int, stream: str | None, follow: bool) -> None:
    """Print a job's stored output as raw bytes (both streams in order unless --stream)."""
    _get_job(job_id)
    last = _print_new(job_id, 0, stream)
    while follow:
        db.session.rollback()  # a fresh snapshot for each look
        ended = _get_job(job_id).status not in ("scheduled", "running", "blocked")
        last = _print_new(job_id, last, stream)  # read after the status: nothing is missed
        if ended:
            return
        time.sleep(0.5)


def _print_new(job_id: int, last: int, stream: str | None) -> int:
    while chunks := output.chunks_after(db.session(), job_id, last, stream):
        for chunk in chunks:
            sys.stdout.buffer.write(bytes(chunk.data))
            last = chunk.id
        sys.stdout.buffer.flush()
    return last


@job_group.command("cancel")
@click.argument("job_id", type=BIG_ID)
@domain_errors(JobError)
@writer
def cancel(job_id: int) -> None:
    """Cancel a waiting job, or stop a running one (its executor kills the process group)."""
    result = jobs.cancel(job_id, by="cli")
    audit.record("cancel", "job", job_id, result, actor="cli")
    db.session.commit()
    click.echo(f"job {job_id}: {result}")


@click.group("artifact")
def artifact_group() -> None:
    """Files kept from jobs."""


def _artifact_row(a: Artifact) -> dict[str, Any]:
    return {c: getattr(a, c) for c in ARTIFACT_COLUMNS}


@artifact_group.command("list")
@click.argument("job_id", type=BIG_ID)
@format_option
@domain_errors(JobError)
def artifact_list(job_id: int, fmt: str) -> None:
    _get_job(job_id)
    emit(
        [_artifact_row(a) for a in artifacts.list_for_job(db.session(), job_id)],
        fmt,
        ARTIFACT_COLUMNS,
    )


@artifact_group.command("get")
@click.argument("artifact_id", type=BIG_ID)
@click.option(
    "-o",
    "--output",
    "dest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
@domain_errors(JobError, OSError)
def artifact_get(artifact_id: int, dest: Path | None) -> None:
    art = db.session.get(Artifact, artifact_id)
    if art is None:
        raise JobError(f"artifact {artifact_id}: not found")
    data = artifacts.content_of(art)
    if dest is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        dest.write_bytes(data)
        click.echo(f"artifact {artifact_id}: {len(data)} bytes written to {dest}", err=True)
