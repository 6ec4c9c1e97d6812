"""Rows as API JSON; secrets masked exactly as the portal masks them (MASK, never the value)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from multiflexi_web.models import (
    ApiToken,
    Application,
    Artifact,
    Company,
    Credential,
    Event,
    EventRule,
    EventSource,
    Job,
    Pause,
    RunTemplate,
    Worker,
)
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services.accounts.companies import shown_env
from multiflexi_web.services.catalogue.credentials import masked_values
from multiflexi_web.services.catalogue.fields import is_secret_field
from multiflexi_web.services.events.catalog import redacted_config
from multiflexi_web.services.jobs.adhoc import one_time_env
from multiflexi_web.services.runtemplates.readiness import unmet_requirements
from multiflexi_web.views.jobs.queries import JobRow


def when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def company(c: Company, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"id": c.id, "name": c.name, "slug": c.slug, "enabled": c.enabled}
    if detail:
        out.update(email=c.email, zabbix_host=c.zabbix_host, env=shown_env(c))
        out.update(created_at=when(c.created_at), updated_at=when(c.updated_at))
    return out


def application(a: Application, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": a.id,
        "uuid": a.uuid,
        "name": a.name,
        "version": a.version,
        "enabled": a.enabled,
        "tags": list(a.tags or []),
    }
    if detail:
        out.update(
            description=a.description,
            executable=a.executable,
            homepage=a.homepage,
            ociimage=a.ociimage,
            requirements=list(a.requirements or []),
            fields=[_field(f) for f in a.fields],
        )
    return out


def _field(f: Any) -> dict[str, Any]:
    secret = is_secret_field(f)
    return {
        "keyname": f.keyname,
        "type": f.type,
        "description": f.description,
        "required": f.required,
        "secret": secret,
        "default": None if secret else f.default,  # the portal shows "hidden"
    }


def credential(c: Credential, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "company_id": c.company_id,
        "name": c.name,
        "prototype": c.credential_type.prototype.code,
    }
    if detail:
        out.update(values=masked_values(c), updated_at=when(c.updated_at))
    return out


def runtemplate(rt: RunTemplate, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": rt.id,
        "company_id": rt.company_id,
        "application_id": rt.application_id,
        "name": rt.name,
        "active": rt.active,
        "interval": rt.interval,
        "cron": rt.cron,
        "next_run_at": when(rt.next_run_at),
        "last_run_at": when(rt.last_run_at),
    }
    if detail:
        out.update(
            delay=rt.delay,
            timezone=rt.timezone,
            executor=rt.executor,
            timeout=rt.timeout,
            success_count=rt.success_count,
            failure_count=rt.failure_count,
            note=rt.note,
            config={c.key: _config_value(c) for c in rt.config},
            credentials={link.requirement: link.credential_id for link in rt.credentials},
            unmet_requirements=unmet_requirements(rt),
        )
    return out


def _config_value(c: Any) -> str:
    if c.secret:
        return MASK if c.value else "(not set)"
    return str(c.value)


def job(j: Job | JobRow) -> dict[str, Any]:
    return {
        "id": j.id,
        "status": j.status,
        "schedule_type": j.schedule_type,
        "company_id": j.company_id,
        "application_id": j.application_id,
        "runtemplate_id": j.runtemplate_id,
        "scheduled_for": when(j.scheduled_for),
        "started_at": when(j.started_at),
        "finished_at": when(j.finished_at),
        "exit_code": j.exit_code,
        "executor": j.executor,
        "attempt": j.attempt,
        "cancel_requested": j.cancel_requested,
    }


def job_detail(j: Job) -> dict[str, Any]:
    out = job(j)
    out.update(
        status_reason=j.status_reason,
        command=list(j.command or []),  # stored with secrets already masked
        env=[_env_row(e) for e in j.env or []],
        one_time_keys=sorted(one_time_env(j)),
        worker_id=j.worker_id,
        retry_of_id=j.retry_of_id,
        event_id=j.event_id,
        stdout_bytes=j.stdout_bytes,
        stderr_bytes=j.stderr_bytes,
    )
    return out


def _env_row(row: dict[str, Any]) -> dict[str, Any]:
    """A stored env row (redacted when written); its secret flag decides, as on the page."""
    key = str(row.get("key", ""))
    secret = bool(row.get("secret"))
    value = MASK if secret else row.get("value")
    return {"key": key, "value": value, "source": row.get("source"), "secret": secret}


def artifact(a: Artifact) -> dict[str, Any]:
    return {
        "id": a.id,
        "job_id": a.job_id,
        "filename": a.filename,
        "mime_type": a.mime_type,
        "size": a.size,
        "sha256": a.sha256,
        "created_at": when(a.created_at),
    }


def event_source(s: EventSource, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": s.id,
        "name": s.name,
        "kind": s.kind,
        "company_id": s.company_id,
        "enabled": s.enabled,
    }
    if detail:  # the webhook token and signing secret are never shown
        out.update(config=redacted_config(dict(s.config or {})), last_error=s.last_error)
        out.update(has_secret=bool(s.secret), last_error_at=when(s.last_error_at))
    return out


def event_rule(r: EventRule) -> dict[str, Any]:
    return {
        "id": r.id,
        "source_id": r.source_id,
        "name": r.name,
        "runtemplate_id": r.runtemplate_id,
        "conditions": list(r.conditions or []),
        "env_mapping": dict(r.env_mapping or {}),
        "priority": r.priority,
        "enabled": r.enabled,
    }


def event(e: Event, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": e.id,
        "source_id": e.source_id,
        "status": e.status,
        "received_at": when(e.received_at),
        "processed_at": when(e.processed_at),
        "matched_rules": list(e.matched_rules or []),
    }
    if detail:
        out.update(payload=e.payload, error=e.error, delivery_id=e.delivery_id)
    return out


def worker(w: Worker) -> dict[str, Any]:
    return {
        "id": w.id,
        "kind": w.kind,
        "hostname": w.hostname,
        "pid": w.pid,
        "status": w.status,
        "started_at": when(w.started_at),
        "heartbeat_at": when(w.heartbeat_at),
        "stopped_at": when(w.stopped_at),
        "drain_requested_at": when(w.drain_requested_at),
    }


def pause(p: Pause) -> dict[str, Any]:
    return {
        "id": p.id,
        "scope": p.scope,
        "target_id": p.target_id,
        "created_at": when(p.created_at),
        "actor": p.actor,
        "reason": p.reason,
    }


def token(t: ApiToken, state: str) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "user_id": t.user_id,
        "read_only": t.scope != "write",
        "company_id": t.company_id,
        "created_at": when(t.created_at),
        "expires_at": when(t.expires_at),
        "last_used_at": when(t.last_used_at),
        "state": state,
    }
