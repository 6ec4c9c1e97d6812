"""The RunTemplate wizard (company -> application -> one form -> its actions) and the edit form
it shares."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import flash, redirect, render_template, request, url_for

from multiflexi_web.db.engine import begin_write
from multiflexi_web.extensions import db
from multiflexi_web.models import (
    Application,
    Company,
    MisfirePolicy,
    OverlapPolicy,
    RetryBackoff,
    Role,
    RunTemplate,
)
from multiflexi_web.models.bounds import parse_id
from multiflexi_web.services import settings
from multiflexi_web.services.catalogue.fields import is_secret_field
from multiflexi_web.services.runtemplates.configure import (
    RunTemplateError,
    create_runtemplate,
    set_config,
    set_executor,
    set_policies,
    set_schedule,
    set_timeout,
)
from multiflexi_web.services.runtemplates.executors import choices as executor_choices
from multiflexi_web.services.runtemplates.manage import (
    credential_choices,
    enabled_apps,
    preview,
    set_credentials,
    store_uploads,
    template_uploads,
)
from multiflexi_web.services.runtemplates.readiness import (
    MissingValues,
    inactive_warning,
    require_ready,
    unmet_requirements,
)
from multiflexi_web.services.scheduling.times import (
    INTERVAL_NAMES,
    Policies,
    ScheduleError,
    policies_of,
)
from multiflexi_web.views._change import Audit, Page, commit_change
from multiflexi_web.views._helpers import company_for, get_or_404, int_arg, me, owned_by_company
from multiflexi_web.views.actions import sets_context
from multiflexi_web.views.queries.accounts import companies_with_role
from multiflexi_web.views.runtemplates.credentials import credential_context
from multiflexi_web.views.runtemplates.forms import (
    error_step,
    error_target,
    executor_options_text,
    field_view,
    parse_config,
    parse_credentials,
    parse_schedule,
    parse_spec,
)


def new() -> Page:
    """Step 1 picks the company, step 2 the application, then one form for the rest."""
    company_id, app_id = int_arg("company"), int_arg("app")
    if company_id is None:
        companies = companies_with_role(me(), (Role.OPERATOR, Role.ADMIN))
        return render_template("runtemplates/wizard_company.html", companies=companies)
    company = company_for(company_id, Role.OPERATOR)
    if app_id is None:
        return render_template("runtemplates/wizard_app.html", company=company, apps=enabled_apps())
    app = get_or_404(Application, app_id)
    if request.method == "GET":
        return _form(company, app, None, _new_state(company, app), {})
    return _create(company, app)


def _new_state(company: Company, app: Application) -> dict[str, Any]:
    choices = credential_choices(company.id, list(app.requirements))
    return {
        "name": app.title or app.name,
        "interval": "n",
        "cron": "",
        "delay": "0",
        "timezone": "",
        "executor": "native",
        "executor_options": "",
        "timeout": "",
        "active": True,
        "mask_output": True,
        **_policy_state(Policies()),
        # A secret default stays on the server: left empty, the job gets it (environment.py).
        "values": {f.keyname: "" if is_secret_field(f) else f.default or "" for f in app.fields},
        "creds": {code: (c[0].id if len(c) == 1 else None) for code, c in choices.items()},
    }


def _rt_state(rt: RunTemplate) -> dict[str, Any]:
    return {
        "name": rt.name,
        "interval": rt.interval,
        "cron": rt.cron or "",
        "delay": str(rt.delay),
        "timezone": rt.timezone or "",
        "executor": rt.executor,
        "executor_options": executor_options_text(rt.executor_options),
        "timeout": rt.timeout or "",
        "active": rt.active,
        "mask_output": rt.mask_output,
        **_policy_state(policies_of(rt)),
        # Secret values are never sent back to the browser.
        "values": {c.key: "" if c.secret else c.value for c in rt.config},
        "creds": {link.requirement: link.credential_id for link in rt.credentials},
    }


POLICY_KEYS = ("misfire", "overlap", "max_attempts", "retry_backoff", "retry_min_gap")


def _policy_state(p: Policies) -> dict[str, Any]:
    return {
        "misfire": p.misfire,
        "overlap": p.overlap,
        "max_attempts": p.max_attempts,
        "retry_backoff": p.retry_backoff,
        "retry_min_gap": p.retry_min_gap,
    }


def _posted_state(app: Application) -> dict[str, Any]:
    form = request.form
    fields = (
        "name",
        "interval",
        "cron",
        "delay",
        "timezone",
        "executor",
        "executor_options",
        "timeout",
    )
    state: dict[str, Any] = {k: form.get(k, "") for k in (*fields, *POLICY_KEYS)}
    state["active"] = (form.getlist("active") or ["false"])[-1] == "true"
    state["mask_output"] = (form.getlist("mask_output") or ["true"])[-1] == "true"
    secret = {f.keyname for f in app.fields if is_secret_field(f)}
    state["values"] = {
        f.keyname: "" if f.keyname in secret else (form.getlist(f"cfg-{f.keyname}") or [""])[-1]
        for f in app.fields
    }
    state["creds"] = {c: parse_id(form.get(f"cred-{c}", "")) for c in app.requirements}
    return state


def credentials_step() -> str:
    """Step 4 again (htmx), after a credential was created in another tab: the form's other
    inputs stay as typed, the choices made are kept."""
    company = company_for(int_arg("company") or 0, Role.OPERATOR)
    app = get_or_404(Application, int_arg("app") or 0)
    choices = credential_choices(company.id, list(app.requirements))
    creds = {}
    for code, found in choices.items():
        chosen = parse_id(request.args.get(f"cred-{code}", ""))
        creds[code] = chosen if chosen else (found[0].id if len(found) == 1 else None)
    return render_template(
        "runtemplates/_credentials.html",
        company=company,
        app=app,
        state={"creds": creds},
        errors={},
        **credential_context(company, app),
    )


def _form(
    company: Company,
    app: Application,
    rt: RunTemplate | None,
    state: dict[str, Any],
    errors: dict[str, str],
    status: int = 200,
) -> tuple[str, int]:
    stored_secrets = {c.key for c in rt.config if c.secret and c.value} if rt else set()
    # A schedule error shows once, on its field: the preview below then keeps quiet about it.
    schedule_refused = any(k in errors for k in ("interval", "cron", "delay", "timezone"))
    preview_ctx = _preview_context(request.values if request.method == "POST" else state)
    if schedule_refused:
        preview_ctx = {**preview_ctx, "error": None, "times": []}
    page = render_template(
        "runtemplates/form.html",
        company=company,
        app=app,
        rt=rt,
        state=state,
        errors=errors,
        fields=[field_view(f) for f in app.fields],
        stored_secrets=stored_secrets,
        uploads=template_uploads(rt.id) if rt else {},
        **credential_context(company, app),
        unmet=unmet_requirements(rt) if rt else [],
        step=error_step(errors),
        error_steps={error_step({k: v}) for k, v in errors.items() if k != "_form"},
        executors=executor_choices(app),
        intervals=INTERVAL_NAMES,
        choices={
            "misfire": [m.value for m in MisfirePolicy],
            "overlap": [m.value for m in OverlapPolicy],
            "retry_backoff": [m.value for m in RetryBackoff],
        },
        preview=preview_ctx,
    )
    return page, status


def _create(company: Company, app: Application) -> Page:
    begin_write()
    values, uploads = parse_config(request.form, request.files, app, set())

    def change() -> tuple[RunTemplate, list[str]]:
        rt = create_runtemplate(company, app, parse_spec(request.form, app, values))
        set_credentials(rt, parse_credentials(request.form, list(app.requirements)))
        store_uploads(rt, uploads)
        return rt, require_ready(rt)

    return commit_change(
        change,
        lambda r: Audit("create", "runtemplate", r[0].id, f"runtemplate {r[0].name} created"),
        lambda r: _saved(r[0], r[1], "created", "runtemplates.wizard_actions"),
        lambda exc: _refused(company, app, None, _errors(exc)),
        (RunTemplateError,),
    )


def actions_step(rt_id: int) -> str:
    """Step 7, after the RunTemplate is saved: its success and failure actions, then Finish."""
    rt = owned_by_company(RunTemplate, rt_id, Role.OPERATOR)
    return render_template("runtemplates/wizard_actions.html", wizard=True, **sets_context(rt))


def edit(rt_id: int) -> Page:
    rt = owned_by_company(RunTemplate, rt_id, Role.OPERATOR)
    if request.method == "GET":
        return _form(rt.company, rt.application, rt, _rt_state(rt), {})
    begin_write()
    app = rt.application
    values, uploads = parse_config(request.form, request.files, app, set(template_uploads(rt.id)))
    company = rt.company

    def change() -> list[str]:
        _update(rt, app, values)
        store_uploads(rt, uploads)
        return require_ready(rt)

    return commit_change(
        change,
        lambda _: Audit("update", "runtemplate", rt.id, f"runtemplate {rt.name} updated"),
        lambda unmet: _saved(rt, unmet, "saved", "runtemplates.detail"),
        lambda exc: _refused(company, app, rt, _errors(exc)),
        (RunTemplateError,),
    )


def _saved(rt: RunTemplate, unmet: list[str], done: str, endpoint: str) -> Page:
    """Where a save goes next; saved inactive for want of credentials says so, as a warning."""
    flash(f"RunTemplate {rt.name!r} {done}.", "info")
    if unmet:
        flash(inactive_warning(unmet), "warning")
    return redirect(url_for(endpoint, rt_id=rt.id))


def _update(rt: RunTemplate, app: Application, values: dict[str, str]) -> None:
    spec = parse_spec(request.form, app, values)
    if not spec.name:
        raise RunTemplateError("name: must not be empty")
    rt.name = spec.name
    set_executor(rt, spec.executor, spec.executor_options)
    set_timeout(rt, spec.timeout)
    rt.active = spec.active  # before the schedule: it decides whether there is a next run
    rt.mask_output = spec.mask_output
    set_schedule(rt, spec.schedule)
    set_policies(rt, spec.policies)
    set_config(rt, values)
    set_credentials(rt, parse_credentials(request.form, list(app.requirements)))


def _refused(
    company: Company, app: Application, rt: RunTemplate | None, errors: dict[str, str]
) -> tuple[str, int]:
    """The form again after the change was rolled back, showing the stored RunTemplate."""
    fresh = db.session.get(RunTemplate, rt.id) if rt else None
    return _form(company, app, fresh, _posted_state(app), errors, 400)


def _errors(exc: ValueError) -> dict[str, str]:
    """A refusal on the field it names; missing values on each of their fields."""
    if isinstance(exc, MissingValues):
        return _missing_errors(exc.keys)
    return {error_target(str(exc)): str(exc)}


def _missing_errors(keys: list[str]) -> dict[str, str]:
    errors = {
        f"cfg-{k}": f"{k} is required: give a value (no default, company value or credential "
        "sets it)"
        for k in keys
    }
    errors["_form"] = f"Required values missing: {', '.join(keys)}"
    return errors


def schedule_preview() -> str:
    """The next run times for the schedule being typed (an htmx fragment)."""
    return render_template(
        "runtemplates/_schedule_preview.html", preview=_preview_context(request.values)
    )


def _preview_context(values: Any) -> dict[str, Any]:
    tz_name = (values.get("timezone") or "").strip() or settings().timezone
    try:
        spec = parse_schedule(values)
        times = preview(spec, settings().timezone)
    except (ScheduleError, RunTemplateError) as exc:
        return {"error": str(exc), "times": [], "manual": False, "tz": tz_name}
    tz = ZoneInfo(tz_name)
    return {
        "error": None,
        "manual": spec.interval == "n",
        "times": [(t, t.astimezone(tz)) for t in times],
        "tz": tz_name,
    }
