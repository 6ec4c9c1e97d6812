"""Run now: an ad-hoc job of a RunTemplate; its fields shown with their current values, so a
one-time change is an edit, plus extra variables and uploaded files."""

from __future__ import annotations

from flask import render_template, request

from multiflexi_web.db.engine import begin_write
from multiflexi_web.models import Job, Role, RunTemplate
from multiflexi_web.security.env_names import EnvNameError
from multiflexi_web.services.accounts.access import has_role
from multiflexi_web.services.catalogue.fields import is_secret_field, is_secret_name
from multiflexi_web.services.jobs.adhoc import Upload, run_now
from multiflexi_web.services.runtemplates.configure import (
    RunTemplateError,
    changed_values,
    current_values,
)
from multiflexi_web.services.runtemplates.manage import template_uploads
from multiflexi_web.services.runtemplates.readiness import unmet_requirements
from multiflexi_web.views._change import Audit, Page, commit_change, flash_redirect
from multiflexi_web.views._helpers import me, owned_by_company
from multiflexi_web.views.runtemplates.credentials import create_links
from multiflexi_web.views.runtemplates.forms import (
    error_target,
    field_view,
    parse_config,
    parse_env_rows,
    parse_env_secrets,
)

EXTRA_ROWS = 2  # blank rows for names the application does not declare


def _page(
    rt: RunTemplate,
    values: dict[str, str],
    rows: list[tuple[str, str, bool]],
    error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    app = rt.application
    page = render_template(
        "runtemplates/run.html",
        rt=rt,
        error=error,
        errors={error_target(error): error} if error else {},
        fields=[field_view(f) for f in app.fields],
        values=values,
        stored_secrets={c.key for c in rt.config if c.secret and c.value},
        uploads=template_uploads(rt.id),
        rows=rows + [("", "", False)] * EXTRA_ROWS,
        unmet=unmet_requirements(rt),
        cred_create=create_links(rt.company, list(app.requirements)),
        can_create_credentials=has_role(me(), rt.company_id, Role.ADMIN),
    )
    return page, status


def _shown_values(rt: RunTemplate) -> dict[str, str]:
    """The current values to edit; a secret one never goes back to the browser."""
    secret = {f.keyname for f in rt.application.fields if is_secret_field(f)}
    return {k: "" if k in secret else v for k, v in current_values(rt).items()}


def _posted_values(rt: RunTemplate) -> dict[str, str]:
    shown = _shown_values(rt)
    for f in rt.application.fields:
        sent = request.form.getlist(f"cfg-{f.keyname}")
        if sent and not is_secret_field(f):
            shown[f.keyname] = sent[-1]
    return shown


def _posted_rows() -> list[tuple[str, str, bool]]:
    """The extra rows to show again after an error: a secret value is never sent back."""
    secret = parse_env_secrets(request.form)
    rows = []
    for key, value in zip(
        request.form.getlist("env_key"), request.form.getlist("env_value"), strict=False
    ):
        if not key.strip() and not value:
            continue
        hidden = key.strip() in secret or is_secret_name(key.strip())
        rows.append((key, "" if hidden else value, key.strip() in secret))
    return rows


def _one_time(rt: RunTemplate) -> tuple[dict[str, str], set[str], list[Upload]]:
    """The fields changed for this run, the extra variables, and the files given."""
    values, uploads = parse_config(request.form, request.files, rt.application, set())
    # A field the request did not send is left as it is (parse_config reads an absent checkbox
    # as "off").
    values = {k: v for k, v in values.items() if f"cfg-{k}" in request.form}
    for up in uploads:
        values.pop(up.field, None)  # run_now sets a file field to its upload's name
    stored_files = template_uploads(rt.id)
    for key in stored_files:
        if not values.get(key):
            values.pop(key, None)  # an empty path keeps the stored file
    env, secret = changed_values(rt, values)
    extra = parse_env_rows(request.form)
    env.update(extra)
    secret |= set(parse_env_secrets(request.form)) & set(extra)
    return env, secret, uploads


def run(rt_id: int) -> Page:
    rt = owned_by_company(RunTemplate, rt_id, Role.OPERATOR)
    if request.method == "GET":
        return _page(rt, _shown_values(rt), [])
    begin_write()
    rt = owned_by_company(RunTemplate, rt_id, Role.OPERATOR)

    def change() -> tuple[Job, list[str]]:
        env, secret, uploads = _one_time(rt)
        job = run_now(rt, env, uploads, me().id, secret, admin=me().is_admin)
        return job, sorted(env)

    return commit_change(
        change,
        lambda je: Audit(
            "run",
            "runtemplate",
            rt.id,
            f"job {je[0].id} started by hand",
            details={"job_id": je[0].id, "env_keys": je[1]},
        ),
        lambda je: flash_redirect(f"Job {je[0].id} queued.", "jobs.detail", job_id=je[0].id),
        lambda exc: _page(rt, _posted_values(rt), _posted_rows(), str(exc), 400),
        (RunTemplateError, EnvNameError),
    )
