"""Pause and resume (a RunTemplate, an application, a company, the platform), drain a worker."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from werkzeug.wrappers import Response

from multiflexi_web.api.v1 import access
from multiflexi_web.api.v1 import serialize as out
from multiflexi_web.api.v1.auth import caller
from multiflexi_web.api.v1.blueprint import bp
from multiflexi_web.api.v1.change import api_change
from multiflexi_web.api.v1.params import page
from multiflexi_web.models import Application, Company, Pause, PauseScope, Role, RunTemplate, Worker
from multiflexi_web.services.operations.drain import request_drain
from multiflexi_web.services.operations.pauses import PauseBusy, Target, pause, resume
from multiflexi_web.views._change import Audit


def _switch(target: Target, paused: bool) -> Response:
    """Pause or resume; answers whether the scope is paused now and whether this changed it."""

    def change() -> bool:
        if not paused:
            return resume(target)
        c = caller()
        return pause(target, actor=c.actor, user_id=c.user.id)

    verb = "pause" if paused else "resume"
    return api_change(
        change,
        lambda changed: Audit(
            verb, target.scope.value, target.id, f"{verb}d {target.label}", {"changed": changed}
        ),
        lambda changed: {
            "scope": target.scope.value,
            "target_id": target.id,
            "paused": paused,
            "changed": changed,
        },
        refused=(PauseBusy,),
        refused_status=409,
    )


def _runtemplate(rt_id: int) -> Target:
    return Target(PauseScope.RUNTEMPLATE, access.owned(RunTemplate, rt_id, Role.OPERATOR).id)


def _company(company_id: int) -> Target:
    access.require(company_id, Role.ADMIN)
    return Target(PauseScope.COMPANY, access.get(Company, company_id).id)


def _application(app_id: int) -> Target:
    access.global_admin()  # an application's jobs belong to every company that uses it
    return Target(PauseScope.APPLICATION, access.get(Application, app_id).id)


def _platform() -> Target:
    access.global_admin()
    return Target(PauseScope.PLATFORM)


@bp.post("/runtemplates/<int:rt_id>/pause")
def pause_runtemplate(rt_id: int) -> Response:
    return _switch(_runtemplate(rt_id), True)


@bp.post("/runtemplates/<int:rt_id>/resume")
def resume_runtemplate(rt_id: int) -> Response:
    return _switch(_runtemplate(rt_id), False)


@bp.post("/companies/<int:company_id>/pause")
def pause_company(company_id: int) -> Response:
    return _switch(_company(company_id), True)


@bp.post("/companies/<int:company_id>/resume")
def resume_company(company_id: int) -> Response:
    return _switch(_company(company_id), False)


@bp.post("/applications/<int:app_id>/pause")
def pause_application(app_id: int) -> Response:
    return _switch(_application(app_id), True)


@bp.post("/applications/<int:app_id>/resume")
def resume_application(app_id: int) -> Response:
    return _switch(_application(app_id), False)


@bp.post("/platform/pause")
def pause_platform() -> Response:
    return _switch(_platform(), True)


@bp.post("/platform/resume")
def resume_platform() -> Response:
    return _switch(_platform(), False)


@bp.get("/pauses")
def pauses() -> dict[str, Any]:
    access.global_admin()  # pauses name objects of every company
    return page(select(Pause), Pause.id, out.pause)


@bp.post("/workers/<int:worker_id>/drain")
def drain_worker(worker_id: int) -> Response:
    access.global_admin()
    access.get(Worker, worker_id)

    def change() -> Worker:
        return request_drain(worker_id)

    return api_change(
        change,
        lambda w: Audit("drain", "worker", w.id, f"drain requested for {w.label}"),
        out.worker,
        refused=(ValueError,),
    )
