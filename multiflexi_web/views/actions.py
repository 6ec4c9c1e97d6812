"""Post-job actions in the portal: a RunTemplate's success/failure actions (forms from each
kind's fields, secrets write-only, send a test), the job page's live action runs with retry,
and the global defaults per kind (administrators)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Blueprint, abort, current_app, render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from multiflexi_web.actions import registry
from multiflexi_web.config import ConfigError
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, Role, RunTemplate
from multiflexi_web.models.action import ActionConfig, ActionDefault
from multiflexi_web.models.bounds import parse_id
from multiflexi_web.security.process import job_identity
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services.accounts.access import has_role
from multiflexi_web.services.actions import configure, mail_credential, runs, trial, values
from multiflexi_web.services.actions.configure import MODES, ActionConfigError, When
from multiflexi_web.services.actions.context import app_ref
from multiflexi_web.services.actions.settings import ActionSettings
from multiflexi_web.services.actions.settings import load as action_settings
from multiflexi_web.views._change import Audit, Page, commit_change, flash_redirect
from multiflexi_web.views._helpers import global_admin, is_htmx, me, owned_by_company

bp = Blueprint("actions", __name__)
OPEN = {"pending", "running", "retrying"}


@bp.app_template_global("action_runs")
def action_runs(job_id: int) -> list[Any]:
    return runs.for_job(job_id)


def _kind_or_404(kind: str) -> Any:
    if kind not in registry.REGISTRY:
        abort(404)
    return registry.get(kind)


def _stored(rt_id: int, mode: str, kind: str) -> ActionConfig | None:
    return db.session.scalar(
        select(ActionConfig).where(
            ActionConfig.runtemplate_id == rt_id,
            ActionConfig.mode == mode,
            ActionConfig.action == kind,
        )
    )


@bp.get("/runtemplates/<int:rt_id>/actions")
def rt_actions(rt_id: int) -> str:
    rt = owned_by_company(RunTemplate, rt_id, Role.VIEWER)
    return render_template("actions/runtemplate.html", **sets_context(rt))


def sets_context(rt: RunTemplate) -> dict[str, Any]:
    """What templates/actions/_sets.html shows: the actions tab and the wizard's Actions step."""
    return {
        "rt": rt,
        "configs": [configure.as_dict(c) for c in configure.for_runtemplate(rt.id)],
        # A kind only a global administrator may configure (CustomCommand) is not offered to
        # others: its form would only refuse them on save.
        "kinds": [
            k
            for k in registry.usable(app_ref(rt.application))
            if me().is_admin or not registry.admin_only(k.name)
        ],
        "modes": MODES,
        "can_operate": has_role(me(), rt.company_id, Role.OPERATOR),
    }


def _in_wizard() -> bool:
    """The request came from the RunTemplate wizard's Actions step: go back there."""
    return request.values.get("wizard") == "1"


def _back(message: str, rt_id: int) -> Response:
    if _in_wizard():
        return flash_redirect(message, "runtemplates.wizard_actions", rt_id=rt_id)
    return flash_redirect(message, "actions.rt_actions", rt_id=rt_id)


def _form_values(kind: str) -> dict[str, str]:
    return {f.key: request.form.get(f"cfg_{f.key}", "").strip() for f in registry.get(kind).fields}


def _when() -> When:
    raw = request.form.get("after_failures", "1").strip() or "1"
    after = parse_id(raw, 10_000)  # a streak longer than that never ends in an alert anyway
    if after is None:
        raise ActionConfigError(f"after_failures {raw[:40]!r}: a whole number from 1 to 10000")
    return When(
        on_timed_out="on_timed_out" in request.form,
        on_lost="on_lost" in request.form,
        on_cancelled="on_cancelled" in request.form,
        trigger=request.form.get("trigger", "always"),
        after_failures=after,
    )


@bp.route("/runtemplates/<int:rt_id>/actions/<mode>/<kind>", methods=["GET", "POST"])
def edit(rt_id: int, mode: str, kind: str) -> Page:
    rt = owned_by_company(RunTemplate, rt_id, Role.OPERATOR)
    action = _kind_or_404(kind)
    if mode not in MODES:
        abort(404)
    row = _stored(rt.id, mode, kind)
    if request.method == "GET":
        return _form(rt, mode, action, row, {}, None)
    return commit_change(
        lambda: configure.put(rt, mode, kind, _form_values(kind), _when(), is_admin=me().is_admin),
        lambda r: Audit(
            "action.configure",
            "runtemplate",
            rt.id,
            f"{mode} action {kind} set",
            {"config": values.masked(r.config)},
        ),
        lambda r: _back(f"{mode.capitalize()} action {kind} saved.", rt.id),
        lambda e: (_form(rt, mode, action, row, _form_values(kind), str(e)), 400),
        (ActionConfigError,),
    )


def _form(
    rt: RunTemplate,
    mode: str,
    action: Any,
    row: ActionConfig | None,
    given: dict[str, str],
    error: str | None,
) -> str:
    shown = values.masked(row.config) if row else {}
    return render_template(
        "actions/_form.html" if is_htmx() and request.method == "GET" else "actions/form.html",
        wizard=_in_wizard(),
        rt=rt,
        mode=mode,
        action=action,
        row=row,
        current={**shown, **{k: v for k, v in given.items() if v}},
        error=error,
        mask=MASK,
        credentials=mail_credential.choices(db.session(), rt.company_id),
    )


@bp.post("/runtemplates/<int:rt_id>/actions/<mode>/<kind>/remove")
def remove(rt_id: int, mode: str, kind: str) -> Page:
    rt = owned_by_company(RunTemplate, rt_id, Role.OPERATOR)
    return commit_change(
        lambda: configure.remove(rt, mode, kind),
        lambda _: Audit("action.remove", "runtemplate", rt.id, f"{mode} action {kind} removed"),
        lambda _: _back(f"{mode.capitalize()} action {kind} removed.", rt.id),
        lambda e: _back(str(e), rt.id),
        (ActionConfigError,),
    )


@bp.post("/runtemplates/<int:rt_id>/actions/<mode>/<kind>/test")
def send_test(rt_id: int, mode: str, kind: str) -> tuple[str, int] | str:
    rt = owned_by_company(RunTemplate, rt_id, Role.OPERATOR)
    _kind_or_404(kind)
    row = _stored(rt.id, mode, kind)
    if row is None:
        return render_template(
            "actions/_test_result.html", outcome=None, error="save the action first"
        ), 400
    if registry.admin_only(kind) and not me().is_admin:
        abort(403)
    default = db.session.scalar(select(ActionDefault.config).where(ActionDefault.action == kind))
    try:
        settings = _trial_settings()
    except ConfigError as exc:
        return render_template("actions/_test_result.html", outcome=None, error=str(exc)), 400
    outcome = trial.send_test(rt, mode, kind, values.merged(kind, default, row.config), settings)
    db.session.rollback()
    return render_template("actions/_test_result.html", outcome=outcome, error=None)


def _trial_settings() -> ActionSettings:
    """A test starts processes (CustomCommand) as jobs do: as the job user whenever this
    process can switch to it (security/process.py job_identity), as the executor does."""
    return replace(action_settings(), run_as=job_identity(current_app.config["MULTIFLEXI"]))


@bp.get("/jobs/<int:job_id>/actions")
def job_runs(job_id: int) -> str:
    job = owned_by_company(Job, job_id, Role.VIEWER)
    return render_template("actions/_job_runs.html", job=job)


@bp.post("/jobs/<int:job_id>/actions/<int:run_id>/retry")
def retry(job_id: int, run_id: int) -> Page:
    job = owned_by_company(Job, job_id, Role.OPERATOR)
    if run_id not in {r.id for r in runs.for_job(job.id)}:
        abort(404)
    done: Any = (
        (lambda _: render_template("actions/_job_runs.html", job=job))
        if is_htmx()
        else (
            lambda _: flash_redirect(
                f"Action run {run_id} will be retried.", "jobs.detail", job_id=job.id
            )
        )
    )
    return commit_change(
        lambda: runs.retry(run_id),
        lambda _: Audit(
            "action.retry", "action_run", run_id, f"action run {run_id} of job {job.id} retried"
        ),
        done,
        lambda e: flash_redirect(str(e), "jobs.detail", job_id=job.id),
        (runs.RunError,),
    )


@bp.route("/actions/defaults", methods=["GET", "POST"])
def defaults() -> Page:
    global_admin()
    error = None
    if request.method == "POST":
        kind = request.form.get("kind", "")
        _kind_or_404(kind)
        answer = commit_change(
            lambda: configure.put_default(
                kind, {k: v for k, v in _form_values(kind).items() if v}, is_admin=True
            ),
            lambda r: Audit(
                "action.default",
                "action_default",
                kind,
                f"defaults of {kind} set",
                {"config": values.masked(r.config)},
            ),
            lambda _: flash_redirect(f"Defaults of {kind} saved.", "actions.defaults"),
            lambda e: str(e),
            (ActionConfigError,),
        )
        if isinstance(answer, Response):
            return answer
        error = str(answer)
    rows = {r.action: values.masked(r.config) for r in db.session.scalars(select(ActionDefault))}
    return render_template(
        "actions/defaults.html",
        kinds=list(registry.REGISTRY.values()),
        rows=rows,
        error=error,
        mask=MASK,
        defaults_page=True,
    )
