"""Companies: list, create, edit, delete with confirmation, and the company environment editor."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from multiflexi_web.models import Company, CompanyEnv, Role
from multiflexi_web.services import settings
from multiflexi_web.services.accounts import access
from multiflexi_web.services.accounts.companies import (
    CompanyError,
    create_company,
    delete_company,
    delete_env,
    free_slug,
    set_env,
    update_company,
)
from multiflexi_web.services.housekeeping import policy as retention
from multiflexi_web.views._change import Audit, Page, commit_change, flash_redirect
from multiflexi_web.views._helpers import (
    company_for,
    field_errors,
    flag,
    get_or_404,
    global_admin,
    is_htmx,
    me,
    optional_text,
    text,
)
from multiflexi_web.views.queries.accounts import visible_companies

bp = Blueprint("companies", __name__, url_prefix="/companies")
FIELDS = ("name", "slug", "email", "zabbix_host")


@bp.get("/")
def index() -> str:
    return render_template("companies/index.html", companies=visible_companies(me()))


@bp.route("/new", methods=["GET", "POST"])
def create() -> Page:
    global_admin()
    if request.method == "GET":
        return render_template("companies/form.html", company=None, form={}, errors={})
    return commit_change(
        lambda: create_company(text("name"), text("slug", 64), email=optional_text("email")),
        lambda c: Audit("create", "company", c.id, f"company {c.slug} created"),
        lambda c: flash_redirect(f"Company {c.name} created.", ".detail", company_id=c.id),
        lambda exc: _form(None, exc),
        (CompanyError,),
    )


@bp.get("/slug")
def slug_suggestion() -> str:
    """The new-company form's slug input again, suggesting a slug for the name typed so far
    (what a blank slug becomes on save); a slug already typed stays."""
    global_admin()
    name = request.args.get("name", "").strip()[:255]
    slug = request.args.get("slug", "").strip()[:64]
    suggestion = free_slug(name) if name else ""
    return render_template("companies/_slug.html", slug=slug, suggestion=suggestion)


@bp.get("/<int:company_id>")
def detail(company_id: int) -> str:
    company = company_for(company_id)
    return render_template(
        "companies/detail.html",
        company=company,
        can_admin=access.has_role(me(), company.id, Role.ADMIN),
        retention=retention.shown(company, settings()),
        retention_errors={},
    )


@bp.post("/<int:company_id>/retention")
def retention_set(company_id: int) -> Page:
    """Retention overrides: platform admins only (they spend the platform's storage)."""
    global_admin()
    company = get_or_404(Company, company_id)
    return commit_change(
        lambda: retention.set_overrides(company, dict(request.form)),
        lambda _: Audit(
            "update", "company", company.id, f"company {company.slug}: retention changed"
        ),
        lambda _: flash_redirect("Retention saved.", ".detail", company_id=company.id),
        lambda exc: _retention_refused(company, exc),
        (retention.RetentionError,),
    )


def _retention_refused(company: Company, exc: ValueError) -> tuple[str, int]:
    errors = field_errors(exc, tuple(name for name, _ in retention.FIELDS))
    page = render_template(
        "companies/detail.html",
        company=company,
        can_admin=True,
        retention=retention.shown(company, settings()),
        retention_errors=errors,
    )
    return page, 400


@bp.route("/<int:company_id>/edit", methods=["GET", "POST"])
def edit(company_id: int) -> Page:
    company = company_for(company_id, Role.ADMIN)
    if request.method == "GET":
        return render_template("companies/form.html", company=company, form=company, errors={})
    return commit_change(
        lambda: update_company(
            company,
            name=text("name"),
            slug=text("slug", 64),
            email=optional_text("email"),
            enabled=flag("enabled"),
            zabbix_host=optional_text("zabbix_host"),
        ),
        lambda _: Audit("update", "company", company.id, f"company {company.slug} edited"),
        lambda _: flash_redirect("Company saved.", ".detail", company_id=company.id),
        lambda exc: _form(company, exc),
        (CompanyError,),
    )


def _form(company: Company | None, exc: ValueError) -> tuple[str, int]:
    """The company form again, with the service's error on the field it names."""
    errors = field_errors(exc, FIELDS)
    page = render_template("companies/form.html", company=company, form=request.form, errors=errors)
    return page, 400


@bp.route("/<int:company_id>/delete", methods=["GET", "POST"])
def delete(company_id: int) -> Page:
    global_admin()
    company = get_or_404(Company, company_id)
    if request.method == "GET":
        return render_template("companies/delete.html", company=company, error=None)
    if text("confirm_slug", 64) != company.slug:
        error = "Type the company's slug to confirm."
        return render_template("companies/delete.html", company=company, error=error), 400
    slug = company.slug
    return commit_change(
        lambda: delete_company(company),
        lambda _: Audit("delete", "company", company_id, f"company {slug} deleted"),
        lambda _: flash_redirect(f"Company {slug} deleted.", ".index"),
        lambda exc: (
            render_template("companies/delete.html", company=company, error=str(exc)),
            400,
        ),
        (CompanyError,),
    )


@bp.get("/<int:company_id>/env")
def env(company_id: int) -> str:
    company = company_for(company_id)
    return _env_page(company, {}, {})


@bp.post("/<int:company_id>/env")
def env_set(company_id: int) -> Page:
    company = company_for(company_id, Role.ADMIN)
    key, value = text("key", 128), request.form.get("value", "")
    return commit_change(
        lambda: set_env(company, {key: value}, admin=me().is_admin),
        lambda _: Audit(
            "update", "company_env", company.id, f"company {company.slug}: env {key} set"
        ),
        lambda _: _env_done(company),
        lambda exc: (
            _env_page(company, {"key": str(exc)}, request.form),
            200 if is_htmx() else 400,
        ),
        (CompanyError,),
    )


@bp.post("/<int:company_id>/env/<int:env_id>/delete")
def env_delete(company_id: int, env_id: int) -> Page:
    company = company_for(company_id, Role.ADMIN)
    row = get_or_404(CompanyEnv, env_id)
    if row.company_id != company.id:
        return _env_page(company, {"_form": "no such variable"}, {}), 404
    key = row.key
    return commit_change(
        lambda: delete_env(company, key),
        lambda _: Audit(
            "delete", "company_env", company.id, f"company {company.slug}: env {key} removed"
        ),
        lambda _: _env_done(company),
    )


def _env_page(company: Company, errors: dict[str, str], form: object) -> str:
    can_admin = access.has_role(me(), company.id, Role.ADMIN)
    template = "companies/_env_table.html" if is_htmx() else "companies/env.html"
    return render_template(template, company=company, errors=errors, form=form, can_admin=can_admin)


def _env_done(company: Company) -> Page:
    if is_htmx():
        return _env_page(company, {}, {})
    flash("Environment saved.", "info")
    return redirect(url_for(".env", company_id=company.id))
