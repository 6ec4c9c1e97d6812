"""TriggerJenkins: start a parameterised Jenkins build with the job's id, status and exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from multiflexi_web.actions.base import ActionContext, AppRef, ConfigField, Outcome
from multiflexi_web.actions.delivery import (
    bounded,
    missing,
    new_session,
    secret_values,
    send,
    settings,
)
from multiflexi_web.actions.render import render

if TYPE_CHECKING:
    import requests

# Jenkins 2.x answers 201 with the queue item's Location; older releases answer 200 or a
# 302 to the job page. All mean "queued".
BUILD_QUEUED = frozenset({200, 201, 302})


class TriggerJenkins:
    name = "TriggerJenkins"
    description = "Start a Jenkins build (buildWithParameters) with the job's result"
    fields: tuple[ConfigField, ...] = (
        ConfigField("url", "url", "Jenkins base URL", True, destination=True),
        ConfigField("job_name", "string", "Job name (folders as a/b)", True),
        ConfigField("user", "string", "User for basic auth"),
        ConfigField("api_token", "password", "That user's API token", secret=True),
        ConfigField("token", "password", "The job's remote build token", secret=True),
        ConfigField("params", "text", "Extra parameters, NAME=value per line (templates allowed)"),
    )

    def usable_for(self, app: AppRef) -> str | None:
        return None

    def perform(self, ctx: ActionContext) -> Outcome:
        values = settings(self.fields, ctx)
        if problem := missing(self.fields, values, self.name):
            return problem
        secrets = secret_values(self.fields, values)
        # Cookies kept for this build only: Jenkins ties its crumb to the session's cookie.
        with new_session(values["url"]) as session:
            if values.get("user"):
                session.auth = (values["user"], values.get("api_token", ""))
            crumb = fetch_crumb(session, values["url"], ctx, secrets)
            if isinstance(crumb, Outcome):
                return crumb
            session.headers.update(crumb)
            return self.build(session, ctx, values, secrets)

    def build(
        self,
        session: requests.Session,
        ctx: ActionContext,
        values: dict[str, str],
        secrets: list[str],
    ) -> Outcome:
        query = {"token": values["token"]} if values.get("token") else {}
        response, outcome = send(
            "POST",
            build_url(values["url"], values["job_name"]),
            ok=BUILD_QUEUED,
            secrets=secrets,
            timeout=ctx.timeout,
            idempotency_key=ctx.idempotency_key,
            session=session,
            params=query,
            data=parameters(ctx, values.get("params", "")),
        )
        if outcome.ok and response is not None and response.headers.get("Location"):
            location = response.headers["Location"]
            return Outcome(
                ok=True,
                response=bounded(f"HTTP {response.status_code}: queued {location}", secrets),
            )
        return outcome


def build_url(base: str, job_name: str) -> str:
    path = "/job/".join(quote(part, safe="") for part in job_name.strip("/").split("/"))
    return f"{base.rstrip('/')}/job/{path}/buildWithParameters"


def fetch_crumb(
    session: requests.Session, base: str, ctx: ActionContext, secrets: list[str]
) -> dict[str, str] | Outcome:
    """The CSRF crumb header when the server issues one; {} when it has no crumb issuer (404)."""
    response, outcome = send(
        "GET",
        f"{base.rstrip('/')}/crumbIssuer/api/json",
        ok={200},
        secrets=secrets,
        timeout=ctx.timeout,
        idempotency_key=ctx.idempotency_key,
        session=session,
    )
    if response is not None and response.status_code == 404:
        return {}
    if not outcome.ok or response is None:
        return Outcome(ok=False, error=f"crumb: {outcome.error}", retryable=outcome.retryable)
    try:
        body = response.json()
        return {str(body["crumbRequestField"]): str(body["crumb"])}
    except (ValueError, KeyError, TypeError):
        return Outcome(
            ok=False, error=bounded(f"crumb: unexpected answer {response.text}", secrets)
        )


def parameters(ctx: ActionContext, extra: str) -> dict[str, str]:
    """The job's result as build parameters, then the configured NAME=value lines."""
    params = {
        "MULTIFLEXI_JOB_ID": str(ctx.job_id),
        "MULTIFLEXI_JOB_STATUS": ctx.status,
        "MULTIFLEXI_EXIT_CODE": "" if ctx.exit_code is None else str(ctx.exit_code),
        "MULTIFLEXI_JOB_URL": ctx.job_url,
    }
    for line in extra.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip():
            params[name.strip()] = render(value.strip(), ctx)
    return params
