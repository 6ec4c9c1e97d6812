"""Operations pages: bulk retry of failed jobs, backfill of a RunTemplate, the SLA view."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, request
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from multiflexi_web.db.engine import begin_write
from multiflexi_web.extensions import db
from multiflexi_web.models import Company, Role, RunTemplate, utcnow
from multiflexi_web.models.bounds import parse_id
from multiflexi_web.services import settings
from multiflexi_web.services.accounts.access import (
    company_ids_with,
    require_role,
    visible_company_ids,
)
from multiflexi_web.services.jobs import bulk_retry
from multiflexi_web.services.jobs.adhoc import ADHOC_WEB
from multiflexi_web.services.jobs.bulk_retry import RetryFilter
from multiflexi_web.services.scheduling import backfill, sla
from multiflexi_web.services.timerange import TimeRangeError, month_start, parse_time
from multiflexi_web.views._change import Audit, Page, commit_change, flash_redirect
from multiflexi_web.views._helpers import get_or_404, me, owned_by_company, render

bp = Blueprint("operations", __name__)
RETRY_FIELDS = ("company", "app", "runtemplate", "since", "until", "status", "exit_code")
SLA_FIELDS = ("company", "runtemplate", "from", "to")


def _company_choices(ids: set[int] | None) -> list[tuple[int, str]]:
    q = select(Company.id, Company.name).order_by(Company.name)
    if ids is not None:
        q = q.where(Company.id.in_(ids or {-1}))
    return [(i, name) for i, name in db.session.execute(q)]


def _values(source: MultiDict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {n: source.get(n, "").strip()[:64] for n in names}


def _operable() -> set[int] | None:
    """Companies whose jobs the user may re-run (operator or more); 403 when there are none."""
    ids = company_ids_with(me(), Role.OPERATOR)
    if ids is not None and not ids:
        abort(403, description="re-running jobs needs the operator role in a company")
    return ids


@bp.route("/jobs/retry", methods=["GET", "POST"])
def retry() -> Page:
    """The filter and its preview (GET), the re-run of the previewed jobs (POST)."""
    if request.method == "POST":
        begin_write()
    companies = _operable()
    source = request.form if request.method == "POST" else request.args
    values = _values(source, RETRY_FIELDS)
    try:
        filt = RetryFilter.parse(values, settings().timezone)
    except ValueError as exc:
        return _retry_page(values, None, str(exc)), 400
    if request.method == "POST":
        ids = {i for i in map(parse_id, request.form.getlist("job")) if i is not None}
        return _confirm(filt, companies, ids, values)
    shown = bulk_retry.preview(filt, companies) if request.args.get("preview") else None
    return _retry_page(values, shown, None)


def _retry_page(values: dict[str, str], shown: Any, error: str | None) -> str:
    visible = company_ids_with(me(), Role.OPERATOR)
    return render_template(
        "operations/retry.html",
        values=values,
        preview=shown,
        error=error,
        companies=_company_choices(visible),
        statuses=[s.value for s in bulk_retry.STATUSES],
        max_jobs=bulk_retry.MAX_JOBS,
    )


def _confirm(filt: RetryFilter, companies: set[int] | None, ids: set[int], values: Any) -> Page:
    def audit(done: list[bulk_retry.Retried]) -> Audit:
        details = {"filter": filt.as_args(), "jobs": {str(r.old.id): r.new.id for r in done}}
        return Audit("run", "job", None, f"bulk retry: {len(done)} job(s) re-run", details)

    return commit_change(
        lambda: bulk_retry.retry(filt, companies, me().id, ADHOC_WEB, ids),
        audit,
        lambda done: flash_redirect(
            f"{len(done)} job(s) queued again: a re-run of each.", "jobs.index", status="scheduled"
        ),
        lambda exc: (_retry_page(values, None, str(exc)), 400),
        (bulk_retry.BulkRetryError,),
    )


@bp.route("/runtemplates/<int:rt_id>/backfill", methods=["GET", "POST"])
def backfill_view(rt_id: int) -> Page:
    """Slots of a past range (GET: the preview), one job for each new one (POST)."""
    if request.method == "POST":
        begin_write()
    rt = owned_by_company(RunTemplate, rt_id, Role.OPERATOR)
    source = request.form if request.method == "POST" else request.args
    values = _values(source, ("from", "to"))
    if not values["from"] and not values["to"]:
        return _backfill_page(rt, values, None, None)
    try:
        window = _window(values)
        slots = backfill.plan(rt, window)
    except ValueError as exc:
        return _backfill_page(rt, values, None, str(exc)), 400
    if request.method == "GET":
        return _backfill_page(rt, values, slots, None)
    return commit_change(
        lambda: backfill.run(rt, window, me().id),
        lambda made: Audit(
            "run", "runtemplate", rt.id, f"backfill {values['from']} to {values['to']}: "
            f"{len(made)} job(s)", {"jobs": [j.id for j in made]},
        ),
        lambda made: flash_redirect(
            f"Backfill: {len(made)} job(s) queued, one per slot.", "runtemplates.detail",
            rt_id=rt.id, tab="jobs",
        ),
    )  # fmt: skip


def _window(values: dict[str, str]) -> backfill.Window:
    cfg = settings()
    start = parse_time(values["from"], "from", cfg.timezone)
    end = parse_time(values["to"], "to", cfg.timezone)
    if start is None or end is None:
        raise TimeRangeError("from: both from and to are required")
    return backfill.Window(start, end, utcnow(), cfg.timezone, cfg.backfill_max_slots)


def _backfill_page(rt: RunTemplate, values: Any, slots: Any, error: str | None) -> str:
    return render_template(
        "operations/backfill.html",
        rt=rt,
        values=values,
        slots=slots,
        new=sum(1 for s in slots or [] if s.is_new),
        error=error,
        zone=rt.timezone or settings().timezone,
        cap=settings().backfill_max_slots,
    )


@bp.get("/sla")
def sla_view() -> Page:
    """Cards, a calendar strip per template and the slots that did not succeed; the report
    alone when htmx asks (the filter form swaps it in)."""
    values = _values(request.args, SLA_FIELDS)
    visible = visible_company_ids(me())
    cfg, now = settings(), utcnow()
    try:
        company, rt_id = _sla_scope(values)
        start = parse_time(values["from"], "from", cfg.timezone) or month_start(now, cfg.timezone)
        end = parse_time(values["to"], "to", cfg.timezone) or now
        rts = sla.templates(visible, company, rt_id)
        rep = sla.report(rts, start, end, now=now, zone=cfg.timezone, late_after=cfg.sla_late_after)
        error = None
    except ValueError as exc:
        rep, error = None, str(exc)
    names = {rt.id: rt.name for rt in sla.templates(visible, None, None)}
    return render(
        "operations/sla.html",
        "operations/_sla_report.html",
        values=values,
        report=rep,
        error=error,
        outcomes=list(sla.Outcome),
        names=names,
        companies=_company_choices(visible),
        late_after=cfg.sla_late_after,
    )


def _row_id(raw: str) -> int | None:
    """An id from the query string; one that cannot be a row (text, too large) answers 404."""
    if not raw:
        return None
    found = parse_id(raw)
    if found is None:
        abort(404)
    return found


def _sla_scope(values: dict[str, str]) -> tuple[int | None, int | None]:
    """The company and template asked for, each checked: another company's answers 404."""
    company, rt_id = _row_id(values["company"]), _row_id(values["runtemplate"])
    if company is not None:
        require_role(me(), get_or_404(Company, company).id, Role.VIEWER)
    if rt_id is not None:
        owned_by_company(RunTemplate, rt_id, Role.VIEWER)
    return company, rt_id
