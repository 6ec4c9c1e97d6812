"""Our rows in upstream MultiFlexi's API shapes: its column names, its OpenAPI types.

Where upstream's PHP server and its own OpenAPI document (the one its generated client obeys)
disagree, the document wins, so that client works: lists are JSON arrays (not objects keyed by
id), a job's `env` and `launched_by` are strings, an app's `exitCodes` a list. Times are UTC in
upstream's SQL form "YYYY-MM-DD HH:MM:SS". Secrets are masked as everywhere (SPEC §15).
"""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime
from typing import Any

from multiflexi_web.models import (
    ActionConfig,
    Application,
    Company,
    Job,
    JobOutput,
    RunTemplate,
)
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services.catalogue.fields import is_secret_field, is_secret_name

# Upstream names its executor modules in CamelCase; ours are the lower-case keys.
EXECUTOR_NAMES = {
    "native": "Native",
    "docker": "Docker",
    "podman": "Podman",
    "kubernetes": "Kubernetes",
    "azure": "Azure",
    "fake": "Fake",
}
OUR_EXECUTORS = {v.lower(): k for k, v in EXECUTOR_NAMES.items()}
ACTION_MODES = {"success": "success", "failure": "fail"}


def when(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else None


def executor(name: str) -> str:
    return EXECUTOR_NAMES.get(name, name)


def company(c: Company) -> dict[str, Any]:
    """Upstream's `company` row; `code` is what upstream since renamed `slug` (both given)."""
    return {
        "id": c.id,
        "enabled": c.enabled,
        "settings": None,
        "logo": c.logo,
        "name": c.name,
        "code": c.slug,
        "slug": c.slug,
        "ic": c.ic,
        "DatCreate": when(c.created_at),
        "DatUpdate": when(c.updated_at),
        "customer": None,
        "email": c.email,
        "zabbix_host": c.zabbix_host,
    }


def app(a: Application, *, detail: bool = False) -> dict[str, Any]:
    """The `apps` row; the detail adds upstream's `environment` and `exitCodes`."""
    out: dict[str, Any] = {
        "id": a.id,
        "enabled": a.enabled,
        "image": a.icon or "",
        "name": a.name,
        "description": a.description,
        "executable": a.executable,
        "DatCreate": when(a.created_at),
        "DatUpdate": when(a.updated_at),
        "setup": a.setup,
        "cmdparams": a.cmdparams,
        "deploy": a.deploy,
        "homepage": a.homepage,
        "requirements": ",".join(a.requirements or []),
        "ociimage": a.ociimage or "",
        "version": a.version or "",
        "code": None,
        "uuid": a.uuid,
        "topics": ",".join(a.tags or []),
        "tags": [{"name": t} for t in a.tags or []],
        "resultfile": "",
        "artifacts": ",".join(str(x.get("path", "")) for x in a.artifacts or []),
    }
    if detail:
        out["environment"] = {
            f.keyname: {
                "type": f.type,
                "description": f.description,
                "defval": None if is_secret_field(f) else f.default,  # as the portal: hidden
                "required": f.required,
            }
            for f in a.fields
        }
        out["exitCodes"] = [
            {
                "code": e.code,  # upstream keys its map by the code; a list item carries it
                "severity": e.severity,
                "retry": bool(e.retry),
                "description": {"en": e.description, **_texts(e.translations)},
            }
            for e in sorted(a.exit_codes, key=lambda e: e.code)
        ]
    return out


def _texts(translations: Any) -> dict[str, str]:
    if not isinstance(translations, dict):
        return {}
    return {str(k): str(v) for k, v in translations.items() if isinstance(v, str)}


def runtemplate(rt: RunTemplate, actions: list[ActionConfig]) -> dict[str, Any]:
    """The `runtemplate` row; success/fail are upstream's {ActionName: enabled} maps."""
    modes: dict[str, dict[str, bool]] = {"success": {}, "fail": {}}
    for action in actions:
        if action.mode in ACTION_MODES:
            modes[ACTION_MODES[action.mode]][action.action] = action.enabled
    return {
        "id": rt.id,
        "app_id": rt.application_id,
        "company_id": rt.company_id,
        "interv": rt.interval,
        "prepared": None,  # upstream's "setup command not yet run": we have no such state
        "success": modes["success"],
        "fail": modes["fail"],
        "name": rt.name,
        "delay": rt.delay,
        "executor": executor(rt.executor),
        "active": rt.active,
        "cron": rt.cron,
        "last_schedule": when(rt.last_run_at),
        "next_schedule": when(rt.next_run_at),
        "note": rt.note,
        "DatCreate": when(rt.created_at),
        "DatSave": when(rt.updated_at),
        "successfull_jobs_count": rt.success_count,
        "failed_jobs_count": rt.failure_count,
    }


def job(j: Job) -> dict[str, Any]:
    """The `job` row. stdout/stderr are null here: `?output=true` fills them (output())."""
    return {
        "id": j.id,
        "app_id": j.application_id,
        "begin": when(j.started_at),
        "end": when(j.finished_at),
        "company_id": j.company_id,
        "exitcode": j.exit_code,
        "stdout": None,
        "stderr": None,
        "launched_by": None if j.launched_by_id is None else str(j.launched_by_id),
        "env": env_text(j.env),
        "command": shlex.join(j.command) if j.command else None,
        "schedule": when(j.scheduled_for),
        "schedule_type": j.schedule_type,
        "executor": executor(j.executor),
        "runtemplate_id": j.runtemplate_id,
        "app_version": j.app_version or "n/a",
    }


def env_text(rows: list[dict[str, Any]] | None) -> str | None:
    """The resolved environment as JSON text {KEY: value}, secret values masked.

    Upstream sends the unserialised object, but its OpenAPI (and so its client) types `env`
    as a string; JSON text keeps both readable."""
    if rows is None:
        return None
    shown = {}
    for row in rows:
        key = str(row.get("key", ""))
        secret = bool(row.get("secret")) or is_secret_name(key)
        shown[key] = MASK if secret else row.get("value")
    return json.dumps(shown, ensure_ascii=False)


def output(chunks: list[JobOutput]) -> dict[str, Any]:
    """`?output=true`: each stream assembled, and the raw chunks as upstream's output lines."""
    streams: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    lines = []
    for c in chunks:
        data = bytes(c.data)
        streams.setdefault(c.stream, []).append(data)
        lines.append(
            {
                "id": c.id,
                "job_id": c.job_id,
                "seq": c.seq,
                "type": c.stream,
                "line": data.decode("utf-8", "replace"),
                "created_at": when(c.created_at),
            }
        )
    return {
        "stdout": b"".join(streams["stdout"]).decode("utf-8", "replace"),
        "stderr": b"".join(streams["stderr"]).decode("utf-8", "replace"),
        "output_lines": lines,
    }


def created(j: Job) -> dict[str, Any]:
    """POST /job/: upstream answers {job_id, runtemplate_id, scheduled, executor,
    schedule_type}; the job's own fields ride along so the client's Job model is filled."""
    return {
        **job(j),
        "job_id": j.id,
        "scheduled": when(j.scheduled_for),
    }
