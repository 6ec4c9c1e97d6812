"""A schedule-a-run request: `when`, a one-time env with secret marks, files; JSON or multipart."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import request

from multiflexi_web.api.v1.errors import bad_request
from multiflexi_web.api.v1.params import str_list, str_map
from multiflexi_web.models import RunTemplate
from multiflexi_web.services.accounts.companies import ENV_KEY_RE
from multiflexi_web.services.jobs.adhoc import Upload
from multiflexi_web.services.jobs.artifacts import safe_name
from multiflexi_web.views.runtemplates.forms import MAX_ENV_ROWS, field_view


@dataclass(frozen=True)
class RunRequest:
    when: datetime | None = None
    env: dict[str, str] = field(default_factory=dict)
    secret: frozenset[str] = frozenset()
    uploads: list[Upload] = field(default_factory=list)


def parse_run_request(rt: RunTemplate) -> RunRequest:
    """JSON {"when", "env", "secret"}; or multipart with those as form fields (env and secret
    as JSON text) and one file part per file-path field of the application, named like it."""
    body: Any
    if request.mimetype == "multipart/form-data":
        body = {k: _json_text(k, request.form[k]) for k in ("env", "secret") if k in request.form}
        if request.form.get("when"):
            body["when"] = request.form["when"]
        uploads = _uploads(rt)
    else:
        body = request.get_json(silent=True) if request.get_data(cache=True) else {}
        if not isinstance(body, dict):
            raise bad_request("body: must be a JSON object (Content-Type: application/json)")
        uploads = []
    env = check_env(str_map(body, "env"))
    secret = frozenset(str_list(body, "secret"))
    unknown = sorted(secret - env.keys())
    if unknown:
        raise bad_request(f"secret: marks keys not in env: {', '.join(unknown)}", "secret")
    return RunRequest(parse_when(body["when"]) if "when" in body else None, env, secret, uploads)


def _json_text(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise bad_request(f"{name}: must be JSON text in a multipart request", name) from None


def parse_when(raw: Any) -> datetime:
    if not isinstance(raw, str):
        raise bad_request("when: must be an ISO 8601 date-time string", "when")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise bad_request(f"when: not an ISO 8601 date-time: {raw[:40]!r}", "when") from None
    if value.tzinfo is None:
        raise bad_request("when: must carry a UTC offset (like 2026-01-31T08:00:00+00:00)", "when")
    return value


def check_env(env: dict[str, str]) -> dict[str, str]:
    """The portal's rules for one-time names (the executor's allow-list applies at run time)."""
    if len(env) > MAX_ENV_ROWS:
        raise bad_request(f"env: at most {MAX_ENV_ROWS} variables at once", "env")
    for key in env:
        if not ENV_KEY_RE.match(key):
            msg = f"env {key[:64]!r}: names are letters, digits and _ and do not start with a digit"
            raise bad_request(msg, "env")
        if key.startswith("MULTIFLEXI_"):
            raise bad_request(f"env {key!r}: MULTIFLEXI_* variables are set by the platform", "env")
    return env


def _uploads(rt: RunTemplate) -> list[Upload]:
    allowed = {f.keyname for f in rt.application.fields if field_view(f).kind == "file"}
    out = []
    for part, storage in request.files.items(multi=True):
        if part not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise bad_request(f"file {part!r}: not a file field of the application ({names})", part)
        if storage.filename:
            out.append(Upload(part, safe_name(storage.filename), storage.read()))
    return out
