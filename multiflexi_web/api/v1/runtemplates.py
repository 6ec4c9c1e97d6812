"""RunTemplates over the API: CRUD, enable/disable, next runs, schedule a run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from werkzeug.wrappers import Response

from multiflexi_web.api.v1 import access
from multiflexi_web.api.v1 import serialize as out
from multiflexi_web.api.v1.auth import caller
from multiflexi_web.api.v1.blueprint import bp
from multiflexi_web.api.v1.change import api_change
from multiflexi_web.api.v1.errors import ApiError, unprocessable
from multiflexi_web.api.v1.params import (
    bool_field,
    int_arg,
    int_field,
    json_body,
    page,
    required_int,
    str_map,
    text_field,
)
from multiflexi_web.api.v1.run_request import parse_run_request
from multiflexi_web.models import Application, Company, Role, RunTemplate, utcnow
from multiflexi_web.models.bounds import INT32_MAX
from multiflexi_web.security.env_names import EnvNameError
from multiflexi_web.services import settings
from multiflexi_web.services.jobs.adhoc import ADHOC_API, run_now
from multiflexi_web.services.runtemplates import configure as rts
from multiflexi_web.services.runtemplates.configure import RunTemplateError, ScheduleSpec
from multiflexi_web.services.runtemplates.manage import (
    delete_runtemplate,
    preview,
    set_credentials,
)
from multiflexi_web.services.runtemplates.readiness import (
    inactive_warning,
    require_activatable,
    require_ready,
)
from multiflexi_web.services.scheduling.times import ScheduleError, refresh_next_run
from multiflexi_web.views._change import Audit

REFUSED = (RunTemplateError, ScheduleError, EnvNameError)


@bp.get("/runtemplates")
def runtemplates() -> dict[str, Any]:
    query = access.scoped(select(RunTemplate), RunTemplate.company_id)
    for arg, column in (("company", RunTemplate.company_id), ("app", RunTemplate.application_id)):
        value = int_arg(arg)
        if value is not None:
            query = query.where(column == value)
    return page(query, RunTemplate.id, out.runtemplate)


@bp.get("/runtemplates/<int:rt_id>")
def runtemplate(rt_id: int) -> dict[str, Any]:
    return out.runtemplate(access.owned(RunTemplate, rt_id), detail=True)


@bp.post("/runtemplates")
def create_runtemplate() -> Response:
    body = json_body()
    company_id = required_int(body, "company_id")
    access.require(company_id, Role.OPERATOR)
    company = access.get(Company, company_id)
    app = access.get(Application, required_int(body, "application_id"))
    name = text_field(body, "name", required=True, max_len=255) or ""
    config = _config(body, app)
    spec = rts.RunTemplateSpec(
        name=name,
        schedule=_schedule(body, ScheduleSpec()),
        executor=text_field(body, "executor", max_len=32) or "native",
        config=config,
        timeout=int_field(body, "timeout", nullable=True),
        active=_flag(body, "active", True),
        admin=access.acts_as_global_admin(),
    )
    chosen = _credentials(body)

    def change() -> tuple[RunTemplate, list[str]]:
        rt = rts.create_runtemplate(company, app, spec)
        set_credentials(rt, chosen)
        return rt, require_ready(rt)

    return api_change(
        change,
        lambda r: Audit("create", "runtemplate", r[0].id, f"runtemplate {r[0].name} created"),
        lambda r: _saved(*r),
        status=201,
        refused=REFUSED,
    )


@bp.patch("/runtemplates/<int:rt_id>")
def update_runtemplate(rt_id: int) -> Response:
    body = json_body()
    rt = access.owned(RunTemplate, rt_id, Role.OPERATOR)
    config, chosen = _config(body, rt.application), _credentials(body)
    current = ScheduleSpec(rt.interval, rt.cron, rt.delay, rt.timezone)

    def change() -> tuple[RunTemplate, list[str]]:
        name = text_field(body, "name", max_len=255)
        if name is not None:
            if not name.strip():
                raise RunTemplateError("name: must not be empty")
            rt.name = name.strip()
        if "executor" in body:
            rts.set_executor(rt, text_field(body, "executor", max_len=32) or "native")
        if "timeout" in body:
            rts.set_timeout(rt, int_field(body, "timeout", nullable=True))
        rt.active = _flag(body, "active", rt.active)
        rts.set_schedule(rt, _schedule(body, current))
        rts.set_config(rt, config, admin=access.acts_as_global_admin())
        set_credentials(rt, chosen)
        return rt, require_ready(rt)

    return api_change(
        change,
        lambda _: Audit("update", "runtemplate", rt.id, f"runtemplate {rt.name} updated"),
        lambda r: _saved(*r),
        refused=REFUSED,
    )


@bp.delete("/runtemplates/<int:rt_id>")
def delete(rt_id: int) -> Response:
    rt = access.owned(RunTemplate, rt_id, Role.OPERATOR)
    name = rt.name
    return api_change(
        lambda: delete_runtemplate(rt),
        lambda _: Audit("delete", "runtemplate", rt_id, f"runtemplate {name} deleted"),
        lambda _: {"id": rt_id, "deleted": True},
        refused=(RunTemplateError,),
        refused_status=409,
    )


@bp.post("/runtemplates/<int:rt_id>/enable")
def enable(rt_id: int) -> Response:
    return _set_active(rt_id, True)


@bp.post("/runtemplates/<int:rt_id>/disable")
def disable(rt_id: int) -> Response:
    return _set_active(rt_id, False)


def _set_active(rt_id: int, active: bool) -> Response:
    rt = access.owned(RunTemplate, rt_id, Role.OPERATOR)

    def change() -> RunTemplate:
        if active:
            require_activatable(rt)
        rt.active = active
        refresh_next_run(rt, utcnow(), settings().timezone)
        return rt

    word = "enabled" if active else "disabled"
    return api_change(
        change,
        lambda _: Audit("update", "runtemplate", rt.id, f"runtemplate {rt.name} {word}"),
        lambda _: out.runtemplate(rt, detail=True),
        refused=REFUSED,
    )


@bp.get("/runtemplates/<int:rt_id>/next-runs")
def next_runs(rt_id: int) -> dict[str, Any]:
    rt = access.owned(RunTemplate, rt_id)
    spec = ScheduleSpec(rt.interval, rt.cron, rt.delay, rt.timezone)
    try:
        times = preview(spec, settings().timezone) if rt.active else []
    except ScheduleError as exc:
        raise unprocessable(str(exc)) from None
    return {"runtemplate_id": rt.id, "active": rt.active, "next_runs": [out.when(t) for t in times]}


@bp.post("/runtemplates/<int:rt_id>/schedule")
def schedule(rt_id: int) -> Response:
    """An ad-hoc job now or at `when`, with a one-time environment and files (multipart)."""
    rt = access.owned(RunTemplate, rt_id, Role.OPERATOR)
    run = parse_run_request(rt)
    user_id = caller().user.id

    return api_change(
        lambda: run_now(
            rt,
            run.env,
            run.uploads,
            user_id,
            run.secret,
            admin=access.acts_as_global_admin(),
            schedule_type=ADHOC_API,
            when=run.when,
        ),
        lambda job: Audit(
            "run",
            "runtemplate",
            rt.id,
            f"job {job.id} scheduled through the API",
            details={"job_id": job.id, "env_keys": sorted(run.env)},
        ),
        lambda job: {"job": out.job(job)},
        status=201,
        refused=REFUSED,
    )


def _schedule(body: dict[str, Any], current: ScheduleSpec) -> ScheduleSpec:
    """The posted schedule keys over `current` (a key sent as null clears cron or timezone)."""
    delay = int_field(body, "delay")
    return ScheduleSpec(
        interval=text_field(body, "interval", max_len=16) or current.interval,
        cron=text_field(body, "cron", max_len=255, nullable=True)
        if "cron" in body
        else current.cron,
        delay=current.delay if delay is None else delay,
        timezone=text_field(body, "timezone", max_len=64)
        if "timezone" in body
        else current.timezone,
    )


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = bool_field(body, name)
    return default if value is None else value


def _config(body: dict[str, Any], app: Application) -> dict[str, str]:
    config = str_map(body, "config")
    unknown = sorted(k for k in config if app.field(k) is None)
    if unknown:
        raise ApiError(
            422, f"config: not fields of {app.name!r}: {', '.join(unknown)}", {"field": "config"}
        )
    return config


def _credentials(body: dict[str, Any]) -> dict[str, int | None]:
    if "credentials" not in body:
        return {}
    raw = body["credentials"]
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and (v is None or (type(v) is int and 0 <= v <= INT32_MAX))
        for k, v in raw.items()
    ):
        raise ApiError(
            400,
            "credentials: must be an object of requirement -> credential id (or null)",
            {"field": "credentials"},
        )
    return dict(raw)


def _saved(rt: RunTemplate, unmet: list[str]) -> dict[str, Any]:
    """The template, with a warning when it was saved inactive for want of credentials."""
    body = out.runtemplate(rt, detail=True)
    if unmet:
        body["warnings"] = [inactive_warning(unmet)]
    return body
