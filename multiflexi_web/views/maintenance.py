"""Pause and resume buttons (RunTemplate, application, company, platform), drain an executor."""

from __future__ import annotations

from flask import Blueprint, Flask, request

from multiflexi_web.models import (
    Application,
    Pause,
    PauseScope,
    Role,
    RunTemplate,
    Worker,
)
from multiflexi_web.services.operations import pauses
from multiflexi_web.services.operations.drain import request_drain
from multiflexi_web.services.operations.pauses import PauseBusy, Target
from multiflexi_web.views._change import (
    Audit,
    Page,
    commit_change,
    flash_error_redirect,
    flash_redirect,
)
from multiflexi_web.views._helpers import (
    company_for,
    get_or_404,
    global_admin,
    me,
    owned_by_company,
)

bp = Blueprint("maintenance", __name__)


def _switch(target: Target, paused: bool, endpoint: str, **values: int) -> Page:
    """Pause or resume one scope and go back to its page, saying what happened."""
    user = me()

    def change() -> bool:
        if not paused:
            return pauses.resume(target)
        reason = request.form.get("reason", "").strip()[:500]
        return pauses.pause(target, actor=user.login, user_id=user.id, reason=reason)

    verb = "pause" if paused else "resume"
    done = {
        True: f"{verb}d.",
        False: "nothing to do: " + ("already paused." if paused else "not paused."),
    }
    return commit_change(
        change,
        lambda changed: Audit(
            verb, target.scope.value, target.id, f"{verb}d {target.label}", {"changed": changed}
        ),
        lambda changed: flash_redirect(
            f"{target.label.capitalize()}: {done[changed]}", endpoint, **values
        ),
        lambda exc: flash_error_redirect(exc, endpoint, **values),
        (PauseBusy,),
    )


def _runtemplate(rt_id: int) -> Target:
    return Target(PauseScope.RUNTEMPLATE, owned_by_company(RunTemplate, rt_id, Role.OPERATOR).id)


@bp.post("/runtemplates/<int:rt_id>/pause")
def pause_runtemplate(rt_id: int) -> Page:
    return _switch(_runtemplate(rt_id), True, "runtemplates.detail", rt_id=rt_id)


@bp.post("/runtemplates/<int:rt_id>/resume")
def resume_runtemplate(rt_id: int) -> Page:
    return _switch(_runtemplate(rt_id), False, "runtemplates.detail", rt_id=rt_id)


def _company(company_id: int) -> Target:
    return Target(PauseScope.COMPANY, company_for(company_id, Role.ADMIN).id)


@bp.post("/companies/<int:company_id>/pause")
def pause_company(company_id: int) -> Page:
    return _switch(_company(company_id), True, "companies.detail", company_id=company_id)


@bp.post("/companies/<int:company_id>/resume")
def resume_company(company_id: int) -> Page:
    return _switch(_company(company_id), False, "companies.detail", company_id=company_id)


def _application(app_id: int) -> Target:
    global_admin()  # an application's jobs belong to every company that uses it
    return Target(PauseScope.APPLICATION, get_or_404(Application, app_id).id)


@bp.post("/applications/<int:app_id>/pause")
def pause_application(app_id: int) -> Page:
    return _switch(_application(app_id), True, "applications.detail", app_id=app_id)


@bp.post("/applications/<int:app_id>/resume")
def resume_application(app_id: int) -> Page:
    return _switch(_application(app_id), False, "applications.detail", app_id=app_id)


@bp.post("/workers/pause")
def pause_platform() -> Page:
    global_admin()
    return _switch(Target(PauseScope.PLATFORM), True, "workers.index")


@bp.post("/workers/resume")
def resume_platform() -> Page:
    global_admin()
    return _switch(Target(PauseScope.PLATFORM), False, "workers.index")


@bp.post("/workers/<int:worker_id>/drain")
def drain(worker_id: int) -> Page:
    global_admin()
    get_or_404(Worker, worker_id)
    return commit_change(
        lambda: request_drain(worker_id),
        lambda w: Audit("drain", "worker", w.id, f"drain requested for {w.label}"),
        lambda w: flash_redirect(f"{w.label} is draining.", "workers.index"),
        lambda exc: flash_error_redirect(exc, "workers.index"),
        (ValueError,),
    )


def _pause_of(scope: str, target_id: int = 0) -> Pause | None:
    """For templates: the pause on exactly this scope (which button to show)."""
    return pauses.find(Target(PauseScope(scope), target_id))


def _pauses_over(rt: RunTemplate) -> list[Pause]:
    """For templates: every pause that holds a RunTemplate's jobs (its own and wider ones)."""
    return pauses.covering(rt)


def register(app: Flask) -> None:
    app.jinja_env.globals["pause_of"] = _pause_of
    app.jinja_env.globals["pauses_over"] = _pauses_over
