"""RunTemplates: creation, config values (secret ones encrypted), credentials per requirement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from multiflexi_web.executors import registry as executor_registry
from multiflexi_web.executors.base import AppInfo
from multiflexi_web.extensions import db
from multiflexi_web.models import (
    Application,
    Company,
    Credential,
    RunTemplate,
    RunTemplateConfig,
    RunTemplateCredential,
    utcnow,
)
from multiflexi_web.models.bounds import TIMEOUT, BoundError
from multiflexi_web.security import env_names
from multiflexi_web.security.secrets import reveal, value_to_store
from multiflexi_web.services import settings
from multiflexi_web.services.catalogue.fields import (
    FieldValueError,
    is_secret_field,
    normalise_value,
)
from multiflexi_web.services.runtemplates import executors
from multiflexi_web.services.scheduling import times as schedule
from multiflexi_web.services.scheduling.times import Policies


class RunTemplateError(ValueError):
    """A RunTemplate operation was refused; the message names the field and the reason."""


@dataclass
class ScheduleSpec:
    interval: str = "n"
    cron: str | None = None
    delay: int = 0
    timezone: str | None = None


@dataclass
class RunTemplateSpec:
    name: str
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    executor: str = "native"
    executor_options: dict[str, Any] | None = None  # None: keep the template's
    config: dict[str, str] = field(default_factory=dict)
    credential_ids: list[int] = field(default_factory=list)
    timeout: int | None = None
    active: bool = True
    policies: Policies = field(default_factory=Policies)
    mask_output: bool = True  # known secret values masked in the stored output
    admin: bool = False  # a global admin may also set names the application does not declare


def require_enabled(app: Application) -> None:
    """No new RunTemplate of a disabled application (created or cloned). Checked here, not in
    each form: the portal's wizard offered only enabled ones but took any id."""
    if not app.enabled:
        raise RunTemplateError(
            f"application {app.name!r}: disabled, no new RunTemplate of it until a global "
            "administrator enables it"
        )


def create_runtemplate(company: Company, app: Application, spec: RunTemplateSpec) -> RunTemplate:
    require_enabled(app)
    if not spec.name.strip():
        raise RunTemplateError("name: must not be empty")
    rt = RunTemplate(company_id=company.id, application_id=app.id, name=spec.name.strip())
    rt.company, rt.application = company, app
    rt.active, rt.mask_output = spec.active, spec.mask_output
    set_executor(rt, spec.executor, spec.executor_options)
    set_timeout(rt, spec.timeout)
    set_schedule(rt, spec.schedule)
    set_policies(rt, spec.policies)
    db.session.add(rt)
    db.session.flush()
    set_config(rt, spec.config, admin=spec.admin)
    for cred_id in spec.credential_ids:
        assign_credential(rt, cred_id)
    db.session.flush()
    return rt


def set_executor(rt: RunTemplate, name: str, options: dict[str, Any] | None = None) -> None:
    """Refuse a module that cannot run the app here, or options it does not take."""
    try:
        module = executor_registry.get(name)
    except KeyError as exc:
        raise RunTemplateError(f"executor {name!r}: {exc.args[0]}") from None
    opts = dict(rt.executor_options or {}) if options is None else options
    problem = executors.problem(module, AppInfo.of(rt.application))
    problem = problem or executors.options_problem(module, opts, explicit=options is not None)
    if problem:
        raise RunTemplateError(f"executor {name!r}: {problem}")
    rt.executor, rt.executor_options = name, opts


def set_timeout(rt: RunTemplate, timeout: int | None) -> None:
    if timeout is not None:
        try:
            TIMEOUT.check(timeout)
        except BoundError as exc:
            raise RunTemplateError(str(exc)) from None
    rt.timeout = timeout


def set_schedule(rt: RunTemplate, spec: ScheduleSpec) -> None:
    """Store the schedule (set `rt.active` first). Only a real change, of the schedule or of
    whether the template runs at all, moves its next run: every form and API call sends the
    schedule with each save, and a save of the name alone must leave a due slot due (a paused
    or missed one meets its misfire policy at the next tick), not skip it for the next one."""
    try:
        schedule.validate(spec.interval, spec.cron, spec.timezone, spec.delay)
    except schedule.ScheduleError as exc:
        raise RunTemplateError(str(exc)) from None
    new = (spec.interval, spec.cron or None, spec.delay, spec.timezone or None)
    old = (rt.interval, rt.cron or None, rt.delay, rt.timezone or None)
    rt.interval, rt.cron, rt.delay, rt.timezone = new
    now, zone = utcnow(), settings().timezone
    planned = schedule.next_run(rt, now, zone)
    if new != old or (planned is None) != (rt.next_run_at is None):
        rt.next_run_at = planned


def set_policies(rt: RunTemplate, policies: Policies) -> None:
    try:
        schedule.apply_policies(rt, policies)
    except schedule.ScheduleError as exc:
        raise RunTemplateError(str(exc)) from None


def set_config(rt: RunTemplate, values: dict[str, str], *, admin: bool = False) -> None:
    """Validate names (security/env_names.py) and values against the app's field types and
    store them; secrets encrypted."""
    app = rt.application
    existing = {c.key: c for c in rt.config}
    declared = {f.keyname for f in app.fields}
    try:
        env_names.check_all(
            values, what="config", admin=admin, declared=declared, allow=env_names.allowed()
        )
    except env_names.EnvNameError as exc:
        raise RunTemplateError(str(exc)) from None
    for key, raw in values.items():
        fdef = app.field(key)
        try:
            value = normalise_value(
                fdef.type if fdef else "string", raw, fdef.options if fdef else None
            )
        except FieldValueError as exc:
            raise RunTemplateError(f"config {key}: {exc}") from None
        secret = is_secret_field(fdef)
        row = existing.get(key)
        stored = value_to_store(value, secret, row)
        if stored is None:
            continue
        if row is None:
            rt.config.append(RunTemplateConfig(key=key, value=stored, secret=secret))
        else:
            row.value, row.secret = stored, secret


def plain_config(rt: RunTemplate) -> dict[str, str]:
    return {row.key: reveal(row) for row in rt.config}


def assign_credential(rt: RunTemplate, credential_id: int) -> RunTemplateCredential:
    """Bind a credential for the requirement its prototype satisfies, replacing an earlier one."""
    cred = db.session.get(Credential, credential_id)
    if cred is None or cred.company_id != rt.company_id:
        raise RunTemplateError(f"credential {credential_id}: not found in this company")
    code = cred.credential_type.prototype.code
    if code not in rt.application.requirements:
        raise RunTemplateError(
            f"credential {credential_id}: its prototype {code!r} is not required by "
            f"{rt.application.name!r} (requires: {_listed(rt.application.requirements)})"
        )
    for link in list(rt.credentials):
        if link.requirement == code:
            rt.credentials.remove(link)
    db.session.flush()
    link = RunTemplateCredential(credential_id=cred.id, requirement=code)
    link.credential = cred
    rt.credentials.append(link)
    return link


def _listed(items: list[str]) -> str:
    return ", ".join(items) or "none"


def get_runtemplate(rt_id: int) -> RunTemplate:
    rt = db.session.get(RunTemplate, rt_id)
    if rt is None:
        raise RunTemplateError(f"runtemplate {rt_id}: not found")
    return rt


def list_runtemplates(company_id: int | None = None) -> list[RunTemplate]:
    q = select(RunTemplate).order_by(RunTemplate.id)
    if company_id is not None:
        q = q.where(RunTemplate.company_id == company_id)
    return list(db.session.scalars(q))


def current_values(rt: RunTemplate) -> dict[str, str]:
    """Each field's value as a job of the template gets it: stored, else the app default."""
    stored = plain_config(rt)
    return {f.keyname: stored.get(f.keyname) or f.default or "" for f in rt.application.fields}


def changed_values(rt: RunTemplate, values: dict[str, str]) -> tuple[dict[str, str], set[str]]:
    """The typed field values that differ from the template's (a one-time change), validated as
    a save would, and which of them are secret."""
    current = current_values(rt)
    changed: dict[str, str] = {}
    for key, raw in values.items():
        fdef = rt.application.field(key)
        ftype, options = (fdef.type, fdef.options) if fdef else ("string", None)
        try:
            value = normalise_value(ftype, raw, options)
            was = normalise_value(ftype, current.get(key, ""), options)
        except FieldValueError as exc:
            if raw == current.get(key, ""):
                continue  # an odd stored or default value left as it is
            raise RunTemplateError(f"config {key}: {exc}") from None
        if value != was:
            changed[key] = value
    secret = {k for k in changed if is_secret_field(rt.application.field(k))}
    return changed, secret
