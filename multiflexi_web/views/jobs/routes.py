"""Jobs: the live list, the detail page with live output, cancel and re-run."""

from __future__ import annotations

from collections.abc import Iterator

from flask import (
    Blueprint,
    abort,
    render_template,
    request,
    stream_with_context,
)
from werkzeug.wrappers import Response

from multiflexi_web.db.engine import begin_write
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus, Role
from multiflexi_web.models.bounds import BIGINT_MAX, parse_id
from multiflexi_web.services.accounts.access import require_role, visible_company_ids
from multiflexi_web.services.jobs import transitions as job_service
from multiflexi_web.services.jobs.adhoc import rerun
from multiflexi_web.services.jobs.output import STREAMS, stream_bytes
from multiflexi_web.views._change import (
    Audit,
    Page,
    commit_change,
    flash_error_redirect,
    flash_redirect,
)
from multiflexi_web.views._helpers import is_htmx, me, owned_by_company, render
from multiflexi_web.views.jobs.live_output import read_batch
from multiflexi_web.views.jobs.page import details_context, load_job, summary_context
from multiflexi_web.views.jobs.queries import (
    JobFilter,
    JobFilterError,
    duration_text,
    filter_choices,
    list_jobs,
)

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
        choices={} if is_htmx() else filter_choices(visible, filt.company),
        statuses=[s.value for s in JobStatus],
        duration=duration_text,
    )


@bp.get("/<int:job_id>")
def detail(job_id: int) -> str:
    """The job page; its details part polls on its own (`part=details`), the header comes with
    the output poll."""
    details = is_htmx() and request.args.get("part") == "details"
    job = load_job(job_id, named=not details)
    if job is None:
        abort(404)
    role = require_role(me(), job.company_id, Role.VIEWER)
    if details:
        return render_template("jobs/_details.html", **details_context(job))
    batch = read_batch(job.id, 0, byte_cap=INITIAL_OUTPUT_BYTES)
    context = {**summary_context(job, role), **details_context(job)}
    return render_template("jobs/detail.html", batch=batch, shown=job.status, **context)


@bp.get("/<int:job_id>/output")
def output(job_id: int) -> str:
    """New output after `after` (a chunk id) as a fragment; its poller stops once the job ended.

    `shown` is the status the page's header shows: when the job's differs, the new header and
    details come in the same answer (out of band), so header, output and artifacts never
    disagree for long; while the status stays, a poll is the one read of the job and its output."""
    raw = request.args.get("after", "0")
    after = parse_id(raw, BIGINT_MAX)
    if after is None:
        abort(400, description=f"after: must be a chunk id (a whole number), got {raw[:40]!r}")
    batch = read_batch(job_id, after)
    if batch is None:
        abort(404)
    role = require_role(me(), batch.company_id, Role.VIEWER)
    shown = request.args.get("shown", "")
    job = load_job(job_id, named=True) if batch.status != shown else None
    if job is None:
        return render_template("jobs/_output_update.html", batch=batch, shown=shown)
    # The details too: artifacts are stored in the same commit as the final status.
    context = {**summary_context(job, role), **details_context(job)}
    return render_template("jobs/_output_update.html", batch=batch, shown=job.status, **context)


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
def cancel(job_id: int) -> Page:
    begin_write()
    job = owned_by_company(Job, job_id, Role.OPERATOR)
    return commit_change(
        lambda: job_service.cancel(job.id, by=me().login),
        lambda outcome: Audit("cancel", "job", job_id, f"job {job_id}: {outcome}"),
        lambda outcome: flash_redirect(f"Job {job_id}: {outcome}.", "jobs.detail", job_id=job_id),
        lambda exc: flash_error_redirect(exc, "jobs.detail", job_id=job_id),
        (job_service.JobError,),
    )


@bp.post("/<int:job_id>/rerun")
def rerun_job(job_id: int) -> Page:
    begin_write()
    job = owned_by_company(Job, job_id, Role.OPERATOR)
    return commit_change(
        lambda: rerun(job, launched_by_id=me().id),
        lambda new: Audit("run", "job", new.id, f"job {new.id} re-run of job {job.id}"),
        lambda new: flash_redirect(
            f"Job {new.id} queued: a re-run of job {job.id}.", "jobs.detail", job_id=new.id
        ),
    )
