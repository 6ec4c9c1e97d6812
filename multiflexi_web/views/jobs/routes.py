"""Jobs: the live list, the detail page with live output, cancel and re-run."""

from __future__ import annotations

import shlex
from collections.abc import Iterator

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from sqlalchemy import select
from sqlalchemy.orm import load_only
from werkzeug.wrappers import Response

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    LIVE_STATUSES,
    ActionRun,
    Application,
    Artifact,
    Company,
    FileUpload,
    Job,
    JobStatus,
    Role,
    RunTemplate,
    User,
    Worker,
    utcnow,
)
from multiflexi_web.models.bounds import BIGINT_MAX, parse_id
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services.accounts.access import RANK, require_role, role_in, visible_company_ids
from multiflexi_web.services.audit import record
from multiflexi_web.services.jobs import transitions as job_service
from multiflexi_web.services.jobs.adhoc import exit_meaning, one_time_env, rerun
from multiflexi_web.services.jobs.output import STREAMS, stream_bytes
from multiflexi_web.views._helpers import is_htmx, me, owned_by_company, render
from multiflexi_web.views.jobs.live_output import read_batch
from multiflexi_web.views.jobs.queries import JobFilter, JobFilterError, duration_text, list_jobs
from multiflexi_web.views.runtemplates.forms import begin_write

bp = Blueprint("jobs", __name__, url_prefix="/jobs")
# The detail page renders this much stored output; the rest streams in through the poller.
INITIAL_OUTPUT_BYTES = 512 * 1024


@bp.get("/")
def index() -> str | tuple[str, int]:
    try:
        filt = JobFilter.from_args(request.args)
    except JobFilterError as exc:
        return render_template(
            "errors/error.html", code=400, title="Bad filter", message=str(exc)
        ), 400
    visible = visible_company_ids(me())
    page = list_jobs(filt, visible)
    return render(
        "jobs/index.html",
        "jobs/_table.html",
        page=page,
        filt=filt,
        choices=_filter_choices(visible, filt),
        statuses=[s.value for s in JobStatus],
        duration=duration_text,
    )


def _filter_choices(visible: set[int] | None, filt: JobFilter) -> dict[str, list[tuple[int, str]]]:
    """Options of the filter selects (only what the user may see); skipped for htmx polls.
    RunTemplates are offered once a company is chosen (there can be thousands)."""
    if is_htmx():
        return {}
    companies = select(Company.id, Company.name).order_by(Company.name)
    if visible is not None:
        companies = companies.where(Company.id.in_(visible or {-1}))
    apps = select(Application.id, Application.name).order_by(Application.name)
    choices = {
        "companies": [(r.id, r.name) for r in db.session.execute(companies)],
        "apps": [(r.id, r.name) for r in db.session.execute(apps)],
        "runtemplates": [],
    }
    if filt.company is not None and (visible is None or filt.company in visible):
        rts = (
            select(RunTemplate.id, RunTemplate.name)
            .where(RunTemplate.company_id == filt.company)
            .order_by(RunTemplate.name)
            .limit(500)
        )
        choices["runtemplates"] = [(r.id, r.name) for r in db.session.execute(rts)]
    return choices


@bp.get("/<int:job_id>")
def detail(job_id: int) -> str:
    job = owned_by_company(Job, job_id, Role.VIEWER)
    context = _detail_context(job)
    if is_htmx():
        part = "details" if request.args.get("part") == "details" else "summary"
        return render_template(f"jobs/_{part}.html", **context)
    batch = read_batch(job.id, 0, byte_cap=INITIAL_OUTPUT_BYTES)
    return render_template("jobs/detail.html", batch=batch, **context)


def _detail_context(job: Job) -> dict[str, object]:
    role = role_in(me(), job.company_id)
    artifacts = db.session.scalars(
        select(Artifact)
        .options(
            load_only(
                Artifact.id,
                Artifact.filename,
                Artifact.mime_type,
                Artifact.size,
                Artifact.sha256,
                Artifact.note,
            )
        )
        .where(Artifact.job_id == job.id)
        .order_by(Artifact.id)
    ).all()
    uploads = db.session.scalars(
        select(FileUpload)
        .options(load_only(FileUpload.id, FileUpload.field, FileUpload.filename))
        .where(FileUpload.job_id == job.id)
        .order_by(FileUpload.id)
    ).all()
    actions = db.session.scalars(
        select(ActionRun).where(ActionRun.job_id == job.id).order_by(ActionRun.id)
    ).all()
    return {
        "job": job,
        "live": job.status in LIVE_STATUSES,
        "mask": MASK,
        "command_text": shlex.join(job.command) if job.command else "",
        "one_time_keys": sorted(one_time_env(job)),
        "launched_by": db.session.get(User, job.launched_by_id) if job.launched_by_id else None,
        "worker": db.session.get(Worker, job.worker_id) if job.worker_id else None,
        "can_operate": role is not None and RANK[role] >= RANK[Role.OPERATOR],
        "meaning": exit_meaning(job),
        "artifacts": artifacts,
        "uploads": uploads,
        "actions": actions,
        "duration": duration_text(job.started_at, job.finished_at or (job.started_at and utcnow())),
    }


@bp.get("/<int:job_id>/output")
def output(job_id: int) -> str:
    """New output after `after` (a chunk id) as a fragment; its poller stops once the job ended."""
    raw = request.args.get("after", "0")
    after = parse_id(raw, BIGINT_MAX)
    if after is None:
        abort(400, description=f"after: must be a chunk id (a whole number), got {raw[:40]!r}")
    batch = read_batch(job_id, after)
    if batch is None:
        abort(404)
    require_role(me(), batch.company_id, Role.VIEWER)
    return render_template("jobs/_output_update.html", batch=batch)


@bp.get("/<int:job_id>/output/<stream>.txt")
def output_text(job_id: int, stream: str) -> Response:
    """One stream's whole stored output as a text download, streamed a few rows at a time."""
    job = owned_by_company(Job, job_id, Role.VIEWER)
    if stream not in STREAMS:
        abort(404)

    def body() -> Iterator[bytes]:
        yield from stream_bytes(db.session(), job.id, stream)

    resp = Response(stream_with_context(body()), mimetype="text/plain; charset=utf-8")
    resp.headers["Content-Disposition"] = f'attachment; filename="job-{job.id}-{stream}.txt"'
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


@bp.post("/<int:job_id>/cancel")
def cancel(job_id: int) -> Response:
    begin_write()
    job = owned_by_company(Job, job_id, Role.OPERATOR)
    try:
        outcome = job_service.cancel(job.id, by=me().login)
    except job_service.JobError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("jobs.detail", job_id=job_id))
    record("cancel", "job", job_id, f"job {job_id}: {outcome}")
    db.session.commit()
    flash(f"Job {job_id}: {outcome}.", "info")
    return redirect(url_for("jobs.detail", job_id=job_id))


@bp.post("/<int:job_id>/rerun")
def rerun_job(job_id: int) -> Response:
    begin_write()
    job = owned_by_company(Job, job_id, Role.OPERATOR)
    new = rerun(job, launched_by_id=me().id)
    record("run", "job", new.id, f"job {new.id} re-run of job {job.id}")
    db.session.commit()
    flash(f"Job {new.id} queued: a re-run of job {job.id}.", "info")
    return redirect(url_for("jobs.detail", job_id=new.id))
