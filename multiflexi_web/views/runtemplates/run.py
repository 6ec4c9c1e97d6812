"""Run now: an ad-hoc job of a RunTemplate with a one-time environment and uploaded files."""

from __future__ import annotations

from flask import render_template, request

from multiflexi_web.db.engine import begin_write
from multiflexi_web.models import Job, Role, RunTemplate
from multiflexi_web.security.env_names import EnvNameError
from multiflexi_web.services.catalogue.fields import is_secret_name
from multiflexi_web.services.jobs.adhoc import Upload, run_now
from multiflexi_web.services.jobs.artifacts import safe_name
from multiflexi_web.services.runtemplates.configure import RunTemplateError
from multiflexi_web.services.runtemplates.manage import template_uploads
from multiflexi_web.views._change import Audit, Page, commit_change, flash_redirect
from multiflexi_web.views._helpers import me, owned_by_company
from multiflexi_web.views.runtemplates.forms import field_view, parse_env_rows, parse_env_secrets

ENV_ROWS = 5


def _file_fields(rt: RunTemplate) -> list[str]:
    return [f.keyname for f in rt.application.fields if field_view(f).kind == "file"]


def _uploads(rt: RunTemplate) -> list[Upload]:
    out = []
    for key in _file_fields(rt):
        storage = request.files.get(f"file-{key}")
        if storage is not None and storage.filename:
            out.append(Upload(key, safe_name(storage.filename), storage.read()))
    return out


def _page(
    rt: RunTemplate, error: str | None, rows: list[tuple[str, str, bool]], status: int = 200
) -> tuple[str, int]:
    rows = rows + [("", "", False)] * max(ENV_ROWS - len(rows), 1)
    page = render_template(
        "runtemplates/run.html",
        rt=rt,
        error=error,
        rows=rows,
        file_fields=[field_view(f) for f in rt.application.fields if f.keyname in _file_fields(rt)],
        stored_files=template_uploads(rt.id),
    )
    return page, status


def _posted_rows() -> list[tuple[str, str, bool]]:
    """The rows to show again after an error: a secret value is never sent back."""
    secret = parse_env_secrets(request.form)
    rows = []
    for key, value in zip(
        request.form.getlist("env_key"), request.form.getlist("env_value"), strict=False
    ):
        hidden = key.strip() in secret or is_secret_name(key.strip())
        rows.append((key, "" if hidden else value, key.strip() in secret))
    return rows


def run(rt_id: int) -> Page:
    rt = owned_by_company(RunTemplate, rt_id, Role.OPERATOR)
    if request.method == "GET":
        return _page(rt, None, [])
    begin_write()
    rt = owned_by_company(RunTemplate, rt_id, Role.OPERATOR)

    def change() -> tuple[Job, list[str]]:
        env = parse_env_rows(request.form)
        secret = parse_env_secrets(request.form)
        job = run_now(rt, env, _uploads(rt), me().id, secret, admin=me().is_admin)
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
        lambda exc: _page(rt, str(exc), _posted_rows(), 400),
        (RunTemplateError, EnvNameError),
    )
