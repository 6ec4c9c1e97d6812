"""Run now: an ad-hoc job of a RunTemplate with a one-time environment and uploaded files."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from multiflexi_web.extensions import db
from multiflexi_web.models import Role, RunTemplate
from multiflexi_web.security.env_names import EnvNameError
from multiflexi_web.services.audit import record
from multiflexi_web.services.jobs.adhoc import Upload, check_one_time_env, run_now
from multiflexi_web.services.jobs.artifacts import safe_name
from multiflexi_web.services.runtemplates.configure import RunTemplateError
from multiflexi_web.services.runtemplates.manage import template_uploads
from multiflexi_web.views._helpers import me, owned_by_company
from multiflexi_web.views.runtemplates.forms import begin_write, field_view, parse_env_rows

Page = str | tuple[str, int] | Response
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
    rt: RunTemplate, error: str | None, rows: list[tuple[str, str]], status: int = 200
) -> tuple[str, int]:
    rows = rows + [("", "")] * max(ENV_ROWS - len(rows), 1)
    page = render_template(
        "runtemplates/run.html",
        rt=rt,
        error=error,
        rows=rows,
        file_fields=[field_view(f) for f in rt.application.fields if f.keyname in _file_fields(rt)],
        stored_files=template_uploads(rt.id),
    )
    return page, status


def run(rt_id: int) -> Page:
    rt = owned_by_company(RunTemplate, rt_id, Role.OPERATOR)
    if request.method == "GET":
        return _page(rt, None, [])
    begin_write()
    rt = owned_by_company(RunTemplate, rt_id, Role.OPERATOR)
    try:
        env = parse_env_rows(request.form)
        check_one_time_env(rt, env, admin=me().is_admin)
    except (RunTemplateError, EnvNameError) as exc:
        db.session.rollback()
        posted = list(
            zip(request.form.getlist("env_key"), request.form.getlist("env_value"), strict=False)
        )
        return _page(rt, str(exc), posted, 400)
    job = run_now(rt, env, _uploads(rt), me().id, admin=me().is_admin)
    record(
        "run",
        "runtemplate",
        rt.id,
        f"job {job.id} started by hand",
        details={"job_id": job.id, "env_keys": sorted(env)},
    )
    db.session.commit()
    flash(f"Job {job.id} queued.", "info")
    return redirect(url_for("jobs.detail", job_id=job.id))
