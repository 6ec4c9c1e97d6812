"""WebHook: POST the finished job as JSON, optionally signed (X-MultiFlexi-Signature)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from multiflexi_web.actions.base import ActionContext, AppRef, ConfigField, Outcome
from multiflexi_web.actions.delivery import missing, secret_values, send, settings

SIGNATURE_HEADER = "X-MultiFlexi-Signature"


def payload(ctx: ActionContext) -> dict[str, Any]:
    return {
        "job_id": ctx.job_id,
        "status": ctx.status,
        "exit_code": ctx.exit_code,
        "exit_meaning": ctx.exit_meaning,
        "company": {"id": ctx.company_id, "slug": ctx.company_slug, "name": ctx.company_name},
        "app": {"id": ctx.app.id, "name": ctx.app.name, "uuid": ctx.app.uuid},
        "runtemplate": {"id": ctx.runtemplate_id, "name": ctx.runtemplate_name},
        "links": {"job": ctx.job_url, "artifacts": dict(ctx.artifact_urls)},
        "stdout_tail": ctx.stdout_tail,
        "stderr_tail": ctx.stderr_tail,
        "delivery": ctx.idempotency_key,
        "attempt": ctx.attempt,
    }


def signature(secret: str, body: bytes, now: int) -> str:
    """The scheme our incoming webhooks check (services/events/intake.py): HMAC-SHA256 of
    f"{t}.{body}"."""
    mac = hmac.new(secret.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={now},v1={mac}"


def custom_headers(raw: str) -> dict[str, str]:
    if not raw.strip():
        return {}
    try:
        found = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"headers: not JSON ({exc.msg})") from None
    if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
        raise ValueError('headers: must be a JSON object of strings, e.g. {"X-Team": "ops"}')
    return {str(k): v for k, v in found.items()}


class WebHook:
    name = "WebHook"
    description = "POST the job's result as JSON to a URL (optionally HMAC-signed)"
    fields: tuple[ConfigField, ...] = (
        ConfigField("url", "url", "Where to POST", required=True, destination=True),
        ConfigField(
            "secret", "password", "HMAC-SHA256 key for X-MultiFlexi-Signature", secret=True
        ),
        ConfigField("headers", "text", 'Extra headers as a JSON object, e.g. {"X-Team": "ops"}'),
    )

    def usable_for(self, app: AppRef) -> str | None:
        return None

    def perform(self, ctx: ActionContext) -> Outcome:
        values = settings(self.fields, ctx)
        url = values.get("url") or values.get("uri", "")  # upstream's key: uri
        if not url and (problem := missing(self.fields, values, self.name)):
            return problem
        if not url.startswith(("http://", "https://")):
            return Outcome(False, error=f"WebHook url {url!r}: must be an http(s) URL")
        try:
            headers = custom_headers(values.get("headers", ""))
        except ValueError as exc:
            return Outcome(False, error=f"WebHook {exc}")
        body = json.dumps(payload(ctx)).encode()  # the exact bytes the signature covers
        headers["Content-Type"] = "application/json"
        if secret := values.get("secret", ""):
            headers[SIGNATURE_HEADER] = signature(secret, body, int(time.time()))
        _, outcome = send(
            "POST",
            url,
            ok=range(200, 300),
            secrets=secret_values(self.fields, values),
            timeout=ctx.timeout,
            idempotency_key=ctx.idempotency_key,
            headers=headers,
            data=body,
        )
        return outcome
