"""Jobs: upstream's listing and detail (`?output=true`), and POST /job/ that queues a run."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import jsonify, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from multiflexi_web.api.upstream import shapes
from multiflexi_web.api.upstream.blueprint import bp
from multiflexi_web.api.upstream.common import check_suffix, descending, limit_offset
from multiflexi_web.api.v1 import access
from multiflexi_web.api.v1.auth import caller
from multiflexi_web.api.v1.change import api_change
from multiflexi_web.api.v1.errors import ApiError, bad_request, unprocessable
from multiflexi_web.api.v1.params import str_map
from multiflexi_web.api.v1.run_request import check_env, parse_when
from multiflexi_web.api.v1.runtemplates import REFUSED
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobOutput, Role, RunTemplate
from multiflexi_web.models.bounds import BIGINT_MAX, INT32_MAX, parse_id
from multiflexi_web.services import settings
from multiflexi_web.services.catalogue.fields import is_secret_name
from multiflexi_web.services.jobs.adhoc import ADHOC_API, rerun, run_now
from multiflexi_web.views._change import Audit

TRUE_WORDS = {"true", "1", "yes", "on"}


@bp.get("/jobs.<suffix>")
def jobs(suffix: str) -> Response:
    """`limit` (default 20, at most 1000), `offset`, `order` A/D by id, as upstream."""
    check_suffix(suffix)
    limit, offset = limit_offset()
    order = Job.id.desc() if descending() else Job.id
    query = access.scoped(select(Job), Job.company_id).order_by(order)
    return jsonify([shapes.job(j) for j in db.session.scalars(query.limit(limit).offset(offset))])


@bp.get("/job/<int:job_id>.<suffix>")
def job(job_id: int, suffix: str) -> dict[str, Any]:
    """`?output=true` adds the assembled stdout and stderr and the raw `output_lines`."""
    check_suffix(suffix)
    found = access.owned(Job, job_id)
    out = shapes.job(found)
    if request.args.get("output", "").lower() in TRUE_WORDS:
        query = select(JobOutput).where(JobOutput.job_id == job_id).order_by(JobOutput.id)
        out.update(shapes.output(list(db.session.scalars(query))))
    return out


@bp.post("/job/")
@bp.post("/job")
def create_job() -> Response:
    """Queue a job as upstream's server does: `runtemplate_id` (JSON or form body, or query),
    optional `scheduled` ("now" or a time), `executor` and `env` (one-time variables).

    `jobId` alone (all upstream's generated client can send) queues a new run of that job's
    RunTemplate with the same one-time environment: jobs are history here, never edited.
    Same rules, services and audit as /api/v1's schedule-a-run (operator role or above)."""
    body = _body()
    rt_id = _id(body.get("runtemplate_id", request.args.get("runtemplate_id")), "runtemplate_id")
    job_id = _id(body.get("jobId", request.args.get("jobId")), "jobId")
    if rt_id is not None:
        return _schedule(access.owned(RunTemplate, rt_id, Role.OPERATOR), body)
    if job_id is not None:
        return _rerun(access.owned(Job, job_id, Role.OPERATOR))
    raise bad_request("Missing runtemplate_id", "runtemplate_id")


def _schedule(rt: RunTemplate, body: dict[str, Any]) -> Response:
    env = check_env(str_map({"env": _strings(body.get("env"))}, "env"))
    when = _when(body.get("scheduled"))
    wanted = body.get("executor")
    if wanted not in (None, "") and shapes.OUR_EXECUTORS.get(str(wanted).lower()) != rt.executor:
        msg = f"executor: this RunTemplate runs on {shapes.executor(rt.executor)}; change it there"
        raise unprocessable(msg, "executor")
    user = caller().user
    return api_change(
        lambda: run_now(
            rt,
            env,
            [],
            user.id,
            {k for k in env if is_secret_name(k)},  # upstream has no secret marks
            admin=access.acts_as_global_admin(),
            schedule_type=ADHOC_API,
            when=when,
        ),
        lambda new: Audit(
            "run",
            "runtemplate",
            rt.id,
            f"job {new.id} scheduled through the upstream-compatible API",
            details={"job_id": new.id, "env_keys": sorted(env)},
        ),
        shapes.created,
        status=201,
        refused=REFUSED,
    )


def _rerun(old: Job) -> Response:
    return api_change(
        lambda: rerun(old, caller().user.id, ADHOC_API),
        lambda new: Audit(
            "run",
            "job",
            new.id,
            f"job {new.id} re-run of job {old.id} through the upstream-compatible API",
        ),
        shapes.created,
        status=201,
    )


def _body() -> dict[str, Any]:
    if request.mimetype in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        return dict(request.form)
    if not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise bad_request("body: must be a JSON object (Content-Type: application/json)")
    return body


def _id(raw: Any, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    limit = BIGINT_MAX if name == "jobId" else INT32_MAX
    value = parse_id(text, limit)
    if value is None or isinstance(raw, bool):
        raise bad_request(f"{name}: must be a whole number, got {text[:40]!r}", name)
    return value


def _strings(env: Any) -> Any:
    """Upstream casts each value to a string; so do we (numbers, booleans), nothing deeper."""
    if not isinstance(env, dict):
        return env if env not in (None, "", []) else {}
    out: dict[Any, Any] = {}
    for k, v in env.items():
        if isinstance(v, bool):
            out[k] = "1" if v else ""  # PHP's (string) true / false
        elif isinstance(v, int | float):
            out[k] = str(v)
        else:
            out[k] = v
    return out


def _when(raw: Any) -> datetime | None:
    """ "now" (or nothing); upstream's "YYYY-MM-DD HH:MM:SS" in the configured time zone;
    or ISO 8601 with an offset."""
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in {"", "now"}):
        return None
    if not isinstance(raw, str):
        raise bad_request('scheduled: must be "now" or a date-time string', "scheduled")
    try:
        naive = datetime.strptime(raw.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        try:
            return parse_when(raw)
        except ApiError:
            forms = '"now", YYYY-MM-DD HH:MM:SS or ISO 8601 with an offset'
            msg = f"scheduled: {forms}, got {raw[:40]!r}"
            raise bad_request(msg, "scheduled") from None
    return naive.replace(tzinfo=ZoneInfo(settings().timezone))
