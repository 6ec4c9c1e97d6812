"""`multiflexi job retry`, `runtemplate backfill` and `sla`: operations over many jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from multiflexi_web.cli.common import (
    ROW_ID,
    application_id,
    company_id,
    domain_errors,
    echo_json,
    emit,
    format_option,
    writer,
)
from multiflexi_web.extensions import db
from multiflexi_web.models import utcnow
from multiflexi_web.services import audit, settings
from multiflexi_web.services.accounts.companies import CompanyError
from multiflexi_web.services.catalogue.applications import ApplicationError
from multiflexi_web.services.jobs import bulk_retry
from multiflexi_web.services.jobs.bulk_retry import BulkRetryError, RetryFilter
from multiflexi_web.services.runtemplates.configure import RunTemplateError, get_runtemplate
from multiflexi_web.services.scheduling import backfill, sla
from multiflexi_web.services.scheduling.backfill import BackfillError
from multiflexi_web.services.scheduling.sla import SlaError
from multiflexi_web.services.timerange import TimeRangeError, month_start, parse_time

ADHOC_CLI = "adhoc-cli"
RETRY_COLUMNS = ["id", "runtemplate_id", "status", "exit_code", "scheduled_for", "new_job_id"]
SLOT_COLUMNS = ["slot_at", "job_id", "new"]
SLA_COLUMNS = ["runtemplate_id", "name", *(o.value for o in sla.Outcome)]


def _dump(payload: dict[str, Any]) -> None:
    echo_json(payload, default=_plain)


def _plain(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


@click.command("retry")
@click.option("--company", metavar="ID|SLUG", help="Only this company's jobs.")
@click.option("--app", metavar="ID|UUID", help="Only this application's jobs.")
@click.option("--runtemplate", type=ROW_ID, help="Only this RunTemplate's jobs.")
@click.option("--since", help="Due at or after (ISO 8601; no zone: MULTIFLEXI_TIMEZONE).")
@click.option("--until", help="Due before (ISO 8601).")
@click.option("--status", default="", help="failed,lost,timed_out (default: all three).")
@click.option("--exit-code", "exit_code", default="", help="Only jobs that exited with this.")
@click.option("--dry-run", "dry_run", is_flag=True, help="List the jobs, re-run nothing.")
@format_option
@domain_errors(BulkRetryError, TimeRangeError, CompanyError, ApplicationError)
@writer
def retry(dry_run: bool, fmt: str, **values: Any) -> None:
    """Re-run failed, lost and timed-out jobs chosen by a filter (each like the Re-run button)."""
    values.update(company=company_id(values["company"]), app=application_id(values["app"]))
    text = {k: "" if v is None else str(v) for k, v in values.items()}
    filt = RetryFilter.parse(text, settings().timezone)
    if dry_run:
        found = bulk_retry.preview(filt, None)
        if found.too_many:
            raise BulkRetryError(f"filter: selects more than {bulk_retry.MAX_JOBS} jobs")
        rows = [_retry_row(j, None) for j in found.jobs]
    else:
        done = bulk_retry.retry(filt, None, None, ADHOC_CLI)
        summary = f"bulk retry: {len(done)} job(s) re-run"
        details = {"filter": filt.as_args(), "jobs": {str(r.old.id): r.new.id for r in done}}
        audit.record("run", "job", None, summary, details, actor="cli")
        db.session.commit()
        rows = [_retry_row(r.old, r.new.id) for r in done]
    if fmt == "json":
        _dump({"dry_run": dry_run, "count": len(rows), "jobs": rows})
    else:
        emit(rows, fmt, RETRY_COLUMNS)


def _retry_row(job: Any, new_id: int | None) -> dict[str, Any]:
    row = {c: getattr(job, c) for c in RETRY_COLUMNS[:-1]}
    row.update(company_id=job.company_id, application_id=job.application_id, new_job_id=new_id)
    return row


@click.command("backfill")
@click.argument("rt_id", type=ROW_ID)
@click.option("--from", "from_raw", required=True, help="First slot at or after (ISO 8601).")
@click.option("--to", "to_raw", required=True, help="Slots before this (ISO 8601, past).")
@click.option("--dry-run", "dry_run", is_flag=True, help="List the slots, create nothing.")
@format_option
@domain_errors(RunTemplateError, BackfillError, TimeRangeError)
@writer
def backfill_command(rt_id: int, from_raw: str, to_raw: str, dry_run: bool, fmt: str) -> None:
    """Run a RunTemplate once for every slot of a past time range (MULTIFLEXI_SLOT_AT set)."""
    cfg = settings()
    start = parse_time(from_raw, "from", cfg.timezone)
    end = parse_time(to_raw, "to", cfg.timezone)
    if start is None or end is None:
        raise click.UsageError("--from and --to: both are required")
    rt = get_runtemplate(rt_id)
    window = backfill.Window(start, end, utcnow(), cfg.timezone, cfg.backfill_max_slots)
    rows: list[dict[str, Any]] = [
        {"slot_at": s.at, "job_id": s.job_id, "new": s.is_new} for s in backfill.plan(rt, window)
    ]
    if not dry_run:
        made = {j.slot_at: j.id for j in backfill.run(rt, window, None)}
        rows = [{**r, "job_id": made.get(r["slot_at"], r["job_id"])} for r in rows]
        summary = f"backfill {start.isoformat()} to {end.isoformat()}: {len(made)} job(s)"
        audit.record("run", "runtemplate", rt.id, summary, actor="cli")
        db.session.commit()
    created = sum(1 for r in rows if r["new"])
    if fmt == "json":
        _dump({"runtemplate_id": rt.id, "from": start, "to": end, "dry_run": dry_run,
               "new": created, "slots": rows})  # fmt: skip
    else:
        emit(rows, fmt, SLOT_COLUMNS)


@click.command("sla")
@click.option("--company", metavar="ID|SLUG", help="Only this company's RunTemplates.")
@click.option("--runtemplate", type=ROW_ID, help="Only this RunTemplate.")
@click.option("--from", "from_raw", default="", help="Period start (default: this month).")
@click.option("--to", "to_raw", default="", help="Period end, exclusive (default: now).")
@click.option("--problems", is_flag=True, help="Text: list every slot that did not succeed.")
@format_option
@domain_errors(SlaError, TimeRangeError, CompanyError)
def sla_command(
    company: str | None,
    runtemplate: int | None,
    from_raw: str,
    to_raw: str,
    problems: bool,
    fmt: str,
) -> None:
    """How each slot of a period ended: fulfilled, late, failed, missed, skipped, pending."""
    cfg, now = settings(), utcnow()
    start = parse_time(from_raw, "from", cfg.timezone) or month_start(now, cfg.timezone)
    end = parse_time(to_raw, "to", cfg.timezone) or now
    rts = sla.templates(None, company_id(company), runtemplate)
    rep = sla.report(rts, start, end, now=now, zone=cfg.timezone, late_after=cfg.sla_late_after)
    if fmt == "json":
        _dump(sla.as_json(rep, cfg.sla_late_after))
        return
    rows = [{"runtemplate_id": t.runtemplate_id, "name": t.name} for t in rep.templates]
    rows = [{**r, **t.count_values()} for r, t in zip(rows, rep.templates, strict=True)]
    emit(rows, fmt, SLA_COLUMNS)
    for p in rep.problems if problems else []:
        click.echo(f"{p.slot_at:%Y-%m-%d %H:%M}Z  rt {p.runtemplate_id}  {p.outcome}  "
                   f"job {p.job_id or '-'}")  # fmt: skip


def attach(runtemplate_group: click.Group, job_group: click.Group) -> list[click.Command]:
    """Add `job retry` and `runtemplate backfill`; the top-level commands to register."""
    job_group.add_command(retry)
    runtemplate_group.add_command(backfill_command)
    return [sla_command]
