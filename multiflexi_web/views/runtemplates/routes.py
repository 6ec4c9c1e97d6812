"""RunTemplates: list, detail with tabs, edit, clone, delete; the wizard and Run now live beside."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from multiflexi_web.db.engine import begin_write
from multiflexi_web.models import Role, RunTemplate
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services import settings
from multiflexi_web.services.accounts.access import has_role
from multiflexi_web.services.runtemplates.configure import RunTemplateError, ScheduleSpec
from multiflexi_web.services.runtemplates.executors import unrunnable
from multiflexi_web.services.runtemplates.manage import (
    clone,
    delete_runtemplate,
    live_job_count,
    preview,
    template_uploads,
)
from multiflexi_web.services.runtemplates.readiness import unmet_requirements
from multiflexi_web.services.scheduling.times import INTERVAL_NAMES, ScheduleError
from multiflexi_web.views._change import (
    Audit,
    Page,
    commit_change,
    flash_error_redirect,
    flash_redirect,
)
from multiflexi_web.views._helpers import int_arg, me, owned_by_company, page_size
from multiflexi_web.views.jobs.queries import JobFilter, duration_text, list_jobs
from multiflexi_web.views.queries.accounts import visible_companies
from multiflexi_web.views.queries.catalogue import application_names
from multiflexi_web.views.runtemplates.credentials import create_links
from multiflexi_web.views.runtemplates.queries import list_runtemplates
from multiflexi_web.views.runtemplates.run import run
from multiflexi_web.views.runtemplates.wizard import (
    actions_step,
    credentials_step,
    edit,
    new,
    schedule_preview,
)

bp = Blueprint("runtemplates", __name__, url_prefix="/runtemplates")
TABS = ("overview", "config", "credentials", "schedule", "jobs")

# The wizard, the edit form, the schedule preview and Run now are in their own modules.
bp.add_url_rule("/new", "new", new, methods=["GET", "POST"])
bp.add_url_rule("/<int:rt_id>/edit", "edit", edit, methods=["GET", "POST"])
bp.add_url_rule("/<int:rt_id>/wizard/actions", "wizard_actions", actions_step)
bp.add_url_rule("/schedule-preview", "schedule_preview", schedule_preview)
bp.add_url_rule("/credentials-step", "credentials_step", credentials_step)
bp.add_url_rule("/<int:rt_id>/run", "run", run, methods=["GET", "POST"])


@bp.get("/")
def index() -> str:
    company_id, app_id = int_arg("company"), int_arg("app")
    page = list_runtemplates(me(), company_id, app_id, int_arg("page") or 1, page_size())
    return render_template(
        "runtemplates/index.html",
        page=page,
        filters={"company": company_id, "app": app_id, "limit": request.args.get("limit")},
        companies=visible_companies(me()),
        apps=application_names(),
        company_id=company_id,
        app_id=app_id,
        intervals=INTERVAL_NAMES,
    )


@bp.get("/<int:rt_id>")
def detail(rt_id: int) -> str:
    rt = owned_by_company(RunTemplate, rt_id, Role.VIEWER)
    tab = request.args.get("tab", "overview")
    tab = tab if tab in TABS else "overview"
    context: dict[str, object] = {
        "rt": rt,
        "tab": tab,
        "tabs": TABS,
        "intervals": INTERVAL_NAMES,
        "mask": MASK,
        "can_operate": has_role(me(), rt.company_id, Role.OPERATOR),
        "uploads": template_uploads(rt.id),
        "fields": {f.keyname: f for f in rt.application.fields},
        "unmet": unmet_requirements(rt),
        "cred_create": create_links(rt.company, list(rt.application.requirements)),
        "can_create_credentials": has_role(me(), rt.company_id, Role.ADMIN),
        "unrunnable": unrunnable(rt.application, rt.executor),
    }
    if tab in {"overview", "schedule"}:
        context["upcoming"], context["schedule_error"] = _upcoming(rt)
    if tab == "jobs":
        page = list_jobs(JobFilter(runtemplate=rt.id), None, limit=25)
        context.update(page=page, filt=JobFilter(runtemplate=rt.id), duration=duration_text)
    return render_template("runtemplates/detail.html", **context)


def _upcoming(rt: RunTemplate) -> tuple[list[object], str | None]:
    spec = ScheduleSpec(rt.interval, rt.cron, rt.delay, rt.timezone)
    try:
        return list(preview(spec, settings().timezone)) if rt.active else [], None
    except ScheduleError as exc:
        return [], str(exc)


@bp.post("/<int:rt_id>/clone")
def clone_view(rt_id: int) -> Page:
    begin_write()
    rt = owned_by_company(RunTemplate, rt_id, Role.OPERATOR)
    return commit_change(
        lambda: clone(rt),
        lambda c: Audit("create", "runtemplate", c.id, f"runtemplate {c.name} cloned from {rt.id}"),
        lambda c: flash_redirect(
            f"Cloned as {c.name!r}; the copy is inactive until you activate it.",
            "runtemplates.detail",
            rt_id=c.id,
        ),
        lambda exc: flash_error_redirect(exc, "runtemplates.detail", rt_id=rt.id),
        (RunTemplateError,),
    )


@bp.route("/<int:rt_id>/delete", methods=["GET", "POST"])
def delete(rt_id: int) -> Page:
    rt = owned_by_company(RunTemplate, rt_id, Role.OPERATOR)
    if request.method == "GET":
        return render_template(
            "runtemplates/delete.html", rt=rt, live=live_job_count(rt.id), error=None
        )
    begin_write()
    rt = owned_by_company(RunTemplate, rt_id, Role.OPERATOR)
    if request.form.get("confirm_name", "").strip() != rt.name.strip():
        return _delete_refused(rt, "Type the template's name exactly to confirm.")
    name, company_id = rt.name, rt.company_id
    return commit_change(
        lambda: delete_runtemplate(rt),
        lambda _: Audit("delete", "runtemplate", rt_id, f"runtemplate {name} deleted"),
        lambda _: flash_redirect(
            f"RunTemplate {name!r} deleted.", "runtemplates.index", company=company_id
        ),
        lambda exc: _delete_refused(rt, str(exc)),
        (RunTemplateError,),
    )


def _delete_refused(rt: RunTemplate, message: str) -> tuple[str, int]:
    page = render_template(
        "runtemplates/delete.html", rt=rt, live=live_job_count(rt.id), error=message
    )
    return page, 400
