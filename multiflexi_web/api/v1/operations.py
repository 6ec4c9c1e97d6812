"""Operations over the API: bulk retry, backfill of a RunTemplate, the SLA report."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from werkzeug.wrappers import Response

from multiflexi_web.api.v1 import access
from multiflexi_web.api.v1 import serialize as out
from multiflexi_web.api.v1.auth import caller
from multiflexi_web.api.v1.blueprint import bp
from multiflexi_web.api.v1.change import api_change
from multiflexi_web.api.v1.errors import ApiError, bad_request
from multiflexi_web.api.v1.params import bool_field, int_arg, int_field, json_body, text_field
from multiflexi_web.models import Company, Job, Role, RunTemplate, utcnow
from multiflexi_web.models.bounds import BIGINT_MAX, INT32_MAX
from multiflexi_web.services import settings
from multiflexi_web.services.accounts.access import company_ids_with
from multiflexi_web.services.jobs import bulk_retry
from multiflexi_web.services.jobs.adhoc import ADHOC_API
from multiflexi_web.services.jobs.bulk_retry import BulkRetryError, RetryFilter
from multiflexi_web.services.scheduling import backfill, sla
from multiflexi_web.services.scheduling.backfill import BackfillError
from multiflexi_web.services.timerange import TimeRangeError, month_start, parse_time
from multiflexi_web.views._change import Audit

EXIT_MIN = -(2**31)


def _operable() -> set[int] | None:
    """The caller's companies (within a token's) where it may re-run jobs; 403 if none."""
    seen, mine = access.visible(), company_ids_with(caller().user, Role.OPERATOR)
    ids = seen if mine is None else mine if seen is None else seen & mine
    if ids is not None and not ids:
        raise ApiError(403, "re-running jobs needs the operator role in a company")
    return ids


def _retry_filter(body: dict[str, Any]) -> RetryFilter:
    values = {}
    for name in ("company", "app", "runtemplate"):
        found = int_field(body, name)
        values[name] = "" if found is None else str(found)
    for name in ("since", "until"):
        values[name] = text_field(body, name, max_len=64) or ""
    statuses = body.get("status", [])
    if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses):
        raise bad_request("status: must be a list of statuses", "status")
    values["status"] = ",".join(statuses)
    code = body.get("exit_code")
    if "exit_code" in body and (
        isinstance(code, bool) or not isinstance(code, int) or not EXIT_MIN <= code <= INT32_MAX
    ):
        raise bad_request("exit_code: must be a whole number", "exit_code")
    values["exit_code"] = "" if code is None else str(code)
    try:
        return RetryFilter.parse(values, settings().timezone)
    except ValueError as exc:
        raise bad_request(str(exc), str(exc).split(":", 1)[0]) from None


def _job_ids(body: dict[str, Any]) -> set[int] | None:
    if "job_ids" not in body:
        return None
    ids = body["job_ids"]
    ok = isinstance(ids, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= BIGINT_MAX for i in ids
    )
    if not ok:
        raise bad_request("job_ids: must be a list of job ids", "job_ids")
    return set(ids)


def _row(job: Job, new_id: int | None) -> dict[str, Any]:
    return {"id": job.id, "runtemplate_id": job.runtemplate_id, "status": job.status,
            "exit_code": job.exit_code, "new_job_id": new_id}  # fmt: skip


@bp.post("/jobs/retry")
def retry_jobs() -> Response:
    """Re-run failed, lost and timed-out jobs chosen by a filter; dry_run only lists them."""
    body = json_body()
    filt, ids, dry = _retry_filter(body), _job_ids(body), bool_field(body, "dry_run") or False
    companies = _operable()
    if dry:
        found = bulk_retry.preview(filt, companies)
        if found.too_many:
            raise ApiError(422, f"filter: selects more than {bulk_retry.MAX_JOBS} jobs")
        rows = [_row(j, None) for j in found.jobs if ids is None or j.id in ids]
        return jsonify({"dry_run": True, "count": len(rows), "jobs": rows})

    def audit(done: list[bulk_retry.Retried]) -> Audit:
        details = {"filter": filt.as_args(), "jobs": {str(r.old.id): r.new.id for r in done}}
        return Audit("run", "job", None, f"bulk retry: {len(done)} job(s) re-run", details)

    def answer(done: list[bulk_retry.Retried]) -> dict[str, Any]:
        jobs = [_row(r.old, r.new.id) for r in done]
        return {"dry_run": False, "count": len(jobs), "jobs": jobs}

    return api_change(
        lambda: bulk_retry.retry(filt, companies, caller().user.id, ADHOC_API, ids),
        audit,
        answer,
        refused=(BulkRetryError,),
    )


@bp.post("/runtemplates/<int:rt_id>/backfill")
def backfill_runtemplate(rt_id: int) -> Response:
    """One job per slot of a past range; dry_run lists the slots (and the jobs they have)."""
    rt = access.owned(RunTemplate, rt_id, Role.OPERATOR)
    body = json_body()
    cfg = settings()
    try:
        raw_from = text_field(body, "from", required=True, max_len=64)
        raw_to = text_field(body, "to", required=True, max_len=64)
        start = parse_time(raw_from, "from", cfg.timezone)
        end = parse_time(raw_to, "to", cfg.timezone)
        if start is None or end is None:
            raise TimeRangeError("from: both from and to are required")
        window = backfill.Window(start, end, utcnow(), cfg.timezone, cfg.backfill_max_slots)
        slots = backfill.plan(rt, window)
    except (TimeRangeError, BackfillError) as exc:
        raise ApiError(422, str(exc)) from None
    rows: list[dict[str, Any]] = [
        {"slot_at": out.when(s.at), "job_id": s.job_id, "new": s.is_new} for s in slots
    ]
    answer = {"runtemplate_id": rt.id, "new": sum(1 for s in slots if s.is_new)}
    if bool_field(body, "dry_run"):
        return jsonify({**answer, "dry_run": True, "slots": rows})

    def done(made: list[Job]) -> dict[str, Any]:
        ids = {out.when(j.slot_at): j.id for j in made}
        slots_out = [{**r, "job_id": ids.get(r["slot_at"], r["job_id"])} for r in rows]
        return {**answer, "dry_run": False, "slots": slots_out}

    return api_change(
        lambda: backfill.run(rt, window, caller().user.id),
        lambda made: Audit("run", "runtemplate", rt.id, f"backfill through the API: "
                           f"{len(made)} job(s)", {"jobs": [j.id for j in made]}),
        done,
    )  # fmt: skip


@bp.get("/sla")
def sla_report() -> dict[str, Any]:
    """Per RunTemplate, how the slots of a period ended (default: this month so far)."""
    company, rt_id = int_arg("company"), int_arg("runtemplate")
    if company is not None:
        access.require(access.get(Company, company).id)
    if rt_id is not None:
        access.owned(RunTemplate, rt_id)
    cfg, now = settings(), utcnow()
    try:
        raw_from, raw_to = request.args.get("from"), request.args.get("to")
        start = parse_time(raw_from, "from", cfg.timezone) or month_start(now, cfg.timezone)
        end = parse_time(raw_to, "to", cfg.timezone) or now
        rts = sla.templates(access.visible(), company, rt_id)
        rep = sla.report(rts, start, end, now=now, zone=cfg.timezone, late_after=cfg.sla_late_after)
    except ValueError as exc:
        raise bad_request(str(exc), str(exc).split(":", 1)[0]) from None
    return sla.as_json(rep, cfg.sla_late_after)
