"""Upstream `runtemplate` with its configuration, assigned credentials and topics."""

from __future__ import annotations

from functools import partial
from typing import Any

from multiflexi_web.extensions import db
from multiflexi_web.models import Application, Company, Interval, RetryBackoff, RunTemplate
from multiflexi_web.models.base import utcnow
from multiflexi_web.services import settings
from multiflexi_web.services.catalogue.fields import is_secret_field, is_secret_name
from multiflexi_web.services.runtemplates.configure import (
    RunTemplateError,
    assign_credential,
    plain_config,
    set_config,
    set_executor,
)
from multiflexi_web.services.scheduling import times
from multiflexi_web.services.upstream_import.context import Context, Refused, apply, outcome
from multiflexi_web.services.upstream_import.reader import Row, flag, text_of, to_utc

# Upstream executor class names -> our modules.
EXECUTORS = {"Native": "native", "Docker": "docker", "Podman": "podman"}
EXECUTORS |= {"Kubernetes": "kubernetes", "Azure": "azure"}
INTERVALS = {i.value for i in Interval}


def import_runtemplates(ctx: Context) -> None:
    config = ctx.grouped("configuration", "runtemplate_id")
    topics = _topics(ctx)
    rows = ctx.reader.rows("runtemplate")
    ctx.each("runtemplate", rows, lambda r: _runtemplate(ctx, r, topics.get(r["id"], [])))
    for rt_id, items in config.items():
        our = ctx.ids.get("runtemplate", rt_id)
        if our is not None:
            ctx.each("configuration", items, partial(_config, our))
    for row in ctx.reader.rows("runtplcreds"):
        if ctx.ids.get("runtemplate", row.get("runtemplate_id")) is not None:
            ctx.each("runtplcreds", [row], lambda r: _credential(ctx, r), _cred_label)


def _topics(ctx: Context) -> dict[Any, list[str]]:
    names = {t["id"]: text_of(t.get("topic")) for t in ctx.reader.rows("topic")}
    out: dict[Any, list[str]] = {}
    for link in ctx.reader.rows("runtemplate_topics"):
        if link.get("topic_id") in names:
            out.setdefault(link["runtemplate_id"], []).append(names[link["topic_id"]])
    return out


def _schedule(row: Row) -> tuple[str, str | None]:
    interval = text_of(row.get("interv")).strip() or "n"
    cron = text_of(row.get("cron")).strip() or None
    if interval not in INTERVALS:
        raise Refused(f"interval {interval!r}: unknown (known: {', '.join(sorted(INTERVALS))})")
    if interval == Interval.CUSTOM and not cron:
        return Interval.MANUAL.value, None  # as upstream's scheduler does with it
    return interval, cron if interval == Interval.CUSTOM else None


def _runtemplate(ctx: Context, row: Row, topics: list[str]) -> str:
    company = db.session.get(Company, ctx.our("company", row.get("company_id"), "company"))
    app = db.session.get(Application, ctx.our("apps", row.get("app_id"), "application"))
    assert company is not None and app is not None  # noqa: S101 - mapped in this transaction
    executor = EXECUTORS.get(text_of(row.get("executor")).strip() or "Native")
    if executor is None:
        known = ", ".join(EXECUTORS)
        raise Refused(f"executor {row.get('executor')!r}: unknown (known: {known})")
    interval, cron = _schedule(row)
    our_id = ctx.ids.get("runtemplate", row["id"])
    rt = db.session.get(RunTemplate, our_id) if our_id else None
    created = rt is None
    if rt is None:
        rt = RunTemplate(company_id=company.id, application_id=app.id)
        rt.company, rt.application = company, app
    values = {
        "name": text_of(row.get("name")).strip() or app.name,
        "interval": interval,
        "cron": cron,
        "delay": int(row.get("delay") or 0),
        "timezone": _zone_name(ctx),
        "active": flag(row.get("active", True)),
        "note": row.get("note") or None,
        "topics": topics,
        **_retries(row),
    }
    try:
        times.validate(interval, cron, values["timezone"], values["delay"])
    except times.ScheduleError as exc:
        raise Refused(str(exc)) from None
    before = (rt.interval, rt.cron, rt.delay, rt.timezone, rt.active)
    changed = apply(rt, values)
    if not created and before != (rt.interval, rt.cron, rt.delay, rt.timezone, rt.active):
        times.refresh_next_run(rt, utcnow(), settings().timezone)
    if rt.executor != executor or created:
        set_executor(rt, executor)  # refuses a module that cannot run this app
        changed = True
    if created:
        _continue_schedule(ctx, rt, row)
        db.session.add(rt)
    db.session.flush()
    ctx.ids.put("runtemplate", row["id"], rt.id)
    return outcome(created, changed)


def _zone_name(ctx: Context) -> str | None:
    """Upstream did its cron math in its own zone: so do we for its templates (daily + 7200
    stays 02:00 there), unless that is our default zone anyway."""
    return None if ctx.zone.key == settings().timezone else ctx.zone.key


def _retries(row: Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if row.get("max_attempts") is not None:
        out["max_attempts"] = max(1, int(row["max_attempts"]))
    backoff = text_of(row.get("retry_backoff")).strip()
    if backoff:
        if backoff not in {b.value for b in RetryBackoff}:
            raise Refused(f"retry_backoff {backoff!r}: unknown")
        out["retry_backoff"] = backoff
    if row.get("retry_min_gap") is not None:
        out["retry_min_gap"] = int(row["retry_min_gap"])
    return out


def _continue_schedule(ctx: Context, rt: RunTemplate, row: Row) -> None:
    """Where upstream left off: its queued slot (next_schedule) becomes our next run, so the
    scheduler makes that one job (or, when it is long past, the misfire policy decides);
    without one the template starts at its next slot, never at a past one. Only when the
    template is created: a later run must not move a schedule that has gone on here."""
    rt.last_run_at = to_utc(row.get("last_schedule"), ctx.zone)
    rt.success_count = int(row.get("successfull_jobs_count") or 0)
    rt.failure_count = int(row.get("failed_jobs_count") or 0)
    upstream_next = to_utc(row.get("next_schedule"), ctx.zone)
    if rt.active and rt.interval != Interval.MANUAL and upstream_next is not None:
        rt.next_run_at = upstream_next
    else:
        times.refresh_next_run(rt, utcnow(), settings().timezone)


def _config(rt_id: int, row: Row) -> str:
    rt = db.session.get(RunTemplate, rt_id)
    assert rt is not None  # noqa: S101 - mapped in this transaction
    key, value = text_of(row.get("name")).strip(), text_of(row.get("value"))
    current = plain_config(rt)
    if current.get(key) == value:
        return outcome(False, False)
    try:
        set_config(rt, {key: value}, admin=True)
    except RunTemplateError as exc:
        if is_secret_field(rt.application.field(key)) or is_secret_name(key):
            raise Refused(f"config {key}: not valid for its field (value not shown)") from None
        raise Refused(str(exc)) from None
    db.session.flush()
    return outcome(key not in current, True)


def _credential(ctx: Context, row: Row) -> str:
    rt = db.session.get(RunTemplate, ctx.our("runtemplate", row["runtemplate_id"], "runtemplate"))
    cred_id = ctx.our("credentials", row.get("credentials_id"), "credential")
    assert rt is not None  # noqa: S101 - mapped in this transaction
    if any(link.credential_id == cred_id for link in rt.credentials):
        return outcome(False, False)
    try:
        assign_credential(rt, cred_id)
    except RunTemplateError as exc:
        raise Refused(str(exc)) from None
    db.session.flush()
    return outcome(True, True)


def _cred_label(row: Row) -> str:
    return f"runtemplate {row.get('runtemplate_id')} credential {row.get('credentials_id')}"
