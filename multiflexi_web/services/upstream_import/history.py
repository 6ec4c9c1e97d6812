"""With --include-history: upstream's finished jobs, their output lines and artifacts.

Upstream stores no status; it derives one (reference §2.1): exit code 0 succeeded, another exit
code failed, begun without an exit code "running". A job running upstream when it is moved can
never finish here, so it comes over as lost. Pending jobs are not carried: the RunTemplate's
next run (runtemplates.py) is where the schedule goes on, and an ad-hoc one is listed.
"""

from __future__ import annotations

import hashlib
import shlex
from typing import Any

from sqlalchemy import insert

from multiflexi_web.extensions import db
from multiflexi_web.models import Artifact, Job, JobOutput, JobStatus, RunTemplate
from multiflexi_web.models.job import made
from multiflexi_web.services.jobs.artifacts import mime_of, safe_name
from multiflexi_web.services.upstream_import.context import CREATED, UNCHANGED, Context, Refused
from multiflexi_web.services.upstream_import.reader import Row, text_of, to_utc
from multiflexi_web.services.upstream_import.runtemplates import EXECUTORS

BY = "upstream_import.history.import_jobs"
BATCH = 200
SUCCEEDED = made(BY, None, JobStatus.SUCCEEDED)
FAILED = made(BY, None, JobStatus.FAILED)
LOST = made(BY, None, JobStatus.LOST)
# Upstream's output line types -> our two streams.
STREAMS = {"stdout": "stdout", "success": "stdout", "info": "stdout", "debug": "stdout"}
STREAMS |= {"stderr": "stderr", "error": "stderr", "warning": "stderr"}


def import_jobs(ctx: Context) -> None:
    """Finished upstream jobs as finished jobs here (created directly in their end status).
    Jobs, output lines and artifacts are most of an installation's data: they are read and
    written a batch of jobs at a time, refusals decided before anything of a batch is written
    (so no savepoint per row is needed)."""
    job_ids = ctx.reader.ids("job")
    logins = {text_of(u.get("login")).strip(): u["id"] for u in ctx.reader.rows("user")}
    for start in range(0, len(job_ids), BATCH):
        ids = job_ids[start : start + BATCH]
        made: list[tuple[Row, Job]] = []
        for row in ctx.reader.rows_for("job", "id", ids):
            if ctx.ids.get("job", row["id"]) is not None:
                ctx.report.count("job", UNCHANGED)
                continue
            try:
                made.append((row, _job(ctx, row, logins)))
            except ValueError as exc:
                ctx.report.refuse("job", _label(row), str(exc))
        if made:
            _write(ctx, made, ids)


def _write(ctx: Context, made: list[tuple[Row, Job]], ids: list[Any]) -> None:
    db.session.add_all(job for _, job in made)
    db.session.flush()
    output = _by_job(ctx.reader.rows_for("job_output_lines", "job_id", ids))
    artifacts = _by_job(ctx.reader.rows_for("artifacts", "job_id", ids))
    chunks: list[dict[str, Any]] = []
    for row, job in made:
        chunks += _output(job, _lines(row, output.get(row["id"], [])))
        for art in artifacts.get(row["id"], []):
            _artifact(ctx, job, art)
        ctx.ids.put("job", row["id"], job.id)
        ctx.report.count("job", CREATED)
    if chunks:
        db.session.execute(insert(JobOutput), chunks)
    db.session.flush()


def _by_job(rows: list[Row]) -> dict[Any, list[Row]]:
    out: dict[Any, list[Row]] = {}
    for row in rows:
        out.setdefault(row["job_id"], []).append(row)
    return out


def _label(row: Row) -> str:
    return f"#{row.get('id')} (runtemplate {row.get('runtemplate_id')})"


def status_of(row: Row) -> JobStatus | None:
    if row.get("exitcode") is not None:
        return SUCCEEDED if int(row["exitcode"]) == 0 else FAILED
    return LOST if row.get("begin") is not None else None


def _job(ctx: Context, row: Row, logins: dict[str, Any]) -> Job:
    """The job to write, or Refused (nothing written yet)."""
    status = status_of(row)
    if status is None:
        raise Refused("pending upstream: not carried (the schedule goes on from its next run)")
    rt = db.session.get(
        RunTemplate, ctx.our("runtemplate", row.get("runtemplate_id"), "runtemplate")
    )
    assert rt is not None  # noqa: S101 - mapped in this transaction
    begin, end = to_utc(row.get("begin"), ctx.zone), to_utc(row.get("end"), ctx.zone)
    scheduled = to_utc(row.get("schedule"), ctx.zone) or begin or end
    if scheduled is None:
        raise Refused("no time at all (schedule, begin, end all empty)")
    return Job(
        runtemplate_id=rt.id,
        company_id=rt.company_id,
        application_id=rt.application_id,
        status=status.value,
        status_reason="running upstream when moved" if status is LOST else None,
        schedule_type=text_of(row.get("schedule_type"))[:32] or "adhoc",
        scheduled_for=scheduled,
        executor=EXECUTORS.get(text_of(row.get("executor")), "native"),
        command=_command(row.get("command")),
        started_at=begin,
        finished_at=end,
        exit_code=row.get("exitcode"),
        pid=row.get("pid"),
        # Upstream's column default 'n/a' means it was never known.
        app_version=_known(text_of(row.get("app_version"))[:64]),
        launched_by_id=ctx.ids.get("user", _launcher(row.get("launched_by"), logins)),
        stdout_bytes=0,
        stderr_bytes=0,
    )


def _launcher(raw: Any, logins: dict[str, Any]) -> Any:
    """Upstream's user id of who launched a job: an integer since its 2025-11 migration, before
    that a login or an id as text."""
    if raw is None or isinstance(raw, int):
        return raw
    text = text_of(raw).strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else logins.get(text)


def _known(version: str) -> str | None:
    return None if version.strip().lower() in ("", "n/a") else version


def _command(raw: Any) -> list[str] | None:
    text = text_of(raw).strip()
    if not text:
        return None
    try:
        return shlex.split(text)
    except ValueError:
        return [text]


def _lines(row: Row, lines: list[Row]) -> list[tuple[int, str, bytes]]:
    """(seq, stream, data): the lines table, or the stdout/stderr columns of older schemas."""
    out = [
        (int(r.get("seq") or i), STREAMS.get(text_of(r.get("type")), "stdout"), _bytes(r["line"]))
        for i, r in enumerate(lines)
    ]
    out = _line_breaks(out)
    if not out:
        for i, stream in enumerate(("stdout", "stderr")):
            if row.get(stream):
                out.append((i, stream, _bytes(row[stream])))
    return out


def _line_breaks(rows: list[tuple[int, str, bytes]]) -> list[tuple[int, str, bytes]]:
    """Upstream's lines table holds two kinds of rows: output read since 2026-06 keeps its line
    breaks, but its migration split the older jobs' stdout and stderr on "\n" and dropped
    them (and a text ending in "\n" left an empty last row). Every row but a stream's last
    gets back a break it lacks; an empty last row was that final break (upstream prints each
    row as a line, so a chunk cut mid-line reads as two lines there too)."""
    last = {stream: i for i, (_, stream, _) in enumerate(rows)}
    out = []
    for i, (seq, stream, data) in enumerate(rows):
        if last[stream] == i:
            if data:
                out.append((seq, stream, data))
        elif data.endswith(b"\n"):
            out.append((seq, stream, data))
        else:
            out.append((seq, stream, data + b"\n"))
    return out


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else text_of(value).encode()


def _output(job: Job, lines: list[tuple[int, str, bytes]]) -> list[dict[str, Any]]:
    rows = []
    for seq, stream, data in lines:
        rows.append({"job_id": job.id, "seq": seq, "stream": stream, "data": data})
        if stream == "stdout":
            job.stdout_bytes += len(data)
        else:
            job.stderr_bytes += len(data)
    return rows


def _artifact(ctx: Context, job: Job, row: Row) -> None:
    content = _bytes(row.get("artifact"))
    name = safe_name(text_of(row.get("filename")) or f"artifact-{row['id']}")
    db.session.add(
        Artifact(
            job_id=job.id,
            filename=name,
            mime_type=text_of(row.get("content_type")) or mime_of(content[:2048]),
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            content=content,
            note=text_of(row.get("note")) or None,
            created_at=to_utc(row.get("created_at"), ctx.zone)
            or job.finished_at
            or job.scheduled_for,
        )
    )


def pending_note(ctx: Context) -> None:
    """Without --include-history nothing of the jobs table comes over: say so once."""
    if ctx.reader.has("job"):
        ctx.report.note("jobs not carried over (add --include-history for finished ones)")
