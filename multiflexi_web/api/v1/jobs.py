"""Jobs over the API: keyset list, detail, output after a chunk, cancel, re-run, artifacts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import request
from sqlalchemy import select
from sqlalchemy.orm import defer
from werkzeug.wrappers import Response

from multiflexi_web.api.v1 import access
from multiflexi_web.api.v1 import serialize as out
from multiflexi_web.api.v1.auth import caller
from multiflexi_web.api.v1.blueprint import bp
from multiflexi_web.api.v1.change import api_change
from multiflexi_web.api.v1.errors import ApiError, bad_request
from multiflexi_web.api.v1.params import envelope, int_arg, limit_arg, page
from multiflexi_web.extensions import db
from multiflexi_web.models import LIVE_STATUSES, Artifact, Job, Role
from multiflexi_web.models.bounds import BIGINT_MAX
from multiflexi_web.services.jobs import transitions as job_service
from multiflexi_web.services.jobs.adhoc import ADHOC_API, rerun
from multiflexi_web.services.jobs.output import STREAMS, chunks_after
from multiflexi_web.views._change import Audit
from multiflexi_web.views.jobs.artifacts import send_artifact
from multiflexi_web.views.jobs.queries import JobFilter, JobFilterError, list_jobs

FILTERS = ("company", "app", "runtemplate", "status", "since", "until")
OUTPUT_MAX = 500
# Metadata never loads the bytes (up to MULTIFLEXI_ARTIFACT_INLINE_MAX_MB each); a download does.
LIGHT = defer(Artifact.content)


@bp.get("/jobs")
def jobs() -> dict[str, Any]:
    """Newest first; `after` is the `next` of the previous page (new jobs never shift pages)."""
    for key in FILTERS:  # the portal's form sends empty fields; an API client means a value
        if key in request.args and not request.args[key].strip():
            raise bad_request(f"{key}: given empty (leave it out to not filter by it)", key)
    try:
        filt = JobFilter.from_args({k: request.args.get(k, "") for k in FILTERS})
    except JobFilterError as exc:
        raise bad_request(str(exc), str(exc).split(":", 1)[0]) from None
    filt = replace(filt, before=int_arg("after", BIGINT_MAX))
    result = list_jobs(filt, access.visible(), limit_arg())
    return envelope([out.job(j) for j in result.jobs], result.next_before)


@bp.get("/jobs/<int:job_id>")
def job(job_id: int) -> dict[str, Any]:
    return out.job_detail(access.owned(Job, job_id))


@bp.get("/jobs/<int:job_id>/output")
def output(job_id: int) -> dict[str, Any]:
    """Chunks after the chunk id `after`; `next` is null once the job ended and all was read."""
    found = access.owned(Job, job_id)
    after, stream = int_arg("after", BIGINT_MAX) or 0, request.args.get("stream") or None
    if stream is not None and stream not in STREAMS:
        raise bad_request(f"stream: must be one of {', '.join(STREAMS)}", "stream")
    asked = int_arg("limit")
    limit = OUTPUT_MAX if asked is None else asked
    if not 1 <= limit <= OUTPUT_MAX:
        raise bad_request(f"limit: must be 1 to {OUTPUT_MAX}", "limit")
    live = found.status in LIVE_STATUSES
    rows = chunks_after(db.session(), job_id, after, stream, limit)
    items = [
        {"id": r.id, "stream": r.stream, "text": bytes(r.data).decode("utf-8", "replace")}
        for r in rows
    ]
    more = len(rows) == limit or live
    cursor = (rows[-1].id if rows else after) if more else None
    return {**envelope(items, cursor), "status": found.status}


@bp.post("/jobs/<int:job_id>/cancel")
def cancel(job_id: int) -> Response:
    access.owned(Job, job_id, Role.OPERATOR)
    return api_change(
        lambda: job_service.cancel(job_id, by=caller().actor),
        lambda outcome: Audit("cancel", "job", job_id, f"job {job_id}: {outcome}"),
        lambda outcome: {"job_id": job_id, "outcome": outcome},
        refused=(job_service.JobError,),
        refused_status=409,
    )


@bp.post("/jobs/<int:job_id>/rerun")
def rerun_job(job_id: int) -> Response:
    found = access.owned(Job, job_id, Role.OPERATOR)
    return api_change(
        lambda: rerun(found, caller().user.id, ADHOC_API),
        lambda new: Audit("run", "job", new.id, f"job {new.id} re-run of job {job_id}"),
        lambda new: {"job": out.job(new)},
        status=201,
    )


@bp.get("/jobs/<int:job_id>/artifacts")
def job_artifacts(job_id: int) -> dict[str, Any]:
    access.owned(Job, job_id)
    query = select(Artifact).options(LIGHT).where(Artifact.job_id == job_id)
    return page(query, Artifact.id, out.artifact)


def _artifact(artifact_id: int) -> Artifact:
    found = None
    if artifact_id <= BIGINT_MAX:
        found = db.session.get(Artifact, artifact_id, options=[LIGHT])
    if found is None:
        raise ApiError(404, "")
    company_id = db.session.scalar(select(Job.company_id).where(Job.id == found.job_id))
    if company_id is None:
        raise ApiError(404, "")
    access.require(company_id)
    return found


@bp.get("/artifacts/<int:artifact_id>")
def artifact(artifact_id: int) -> dict[str, Any]:
    return out.artifact(_artifact(artifact_id))


@bp.get("/artifacts/<int:artifact_id>/download")
def download(artifact_id: int) -> Response:
    """The bytes with the portal's safe headers: attachment, sniffing off, sandbox CSP."""
    return send_artifact(_artifact(artifact_id), attachment=True)
