"""Companies: list, create, edit, delete with confirmation, and the company environment editor."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from multiflexi_web.extensions import db
from multiflexi_web.models import Company, CompanyEnv, Role
from multiflexi_web.services.accounts import access
from multiflexi_web.services.accounts.companies import (
    CompanyError,
    create_company,
    delete_company,
    delete_env,
    set_env,
    update_company,
)
from multiflexi_web.services.audit import record
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

bp = Blueprint("companies", __name__, url_prefix="/companies")
FIELDS = ("name", "slug", "email", "zabbix_host")
Page = str | tuple[str, int] | Response


@bp.get("/")
def index() -> str:
    query = access.scoped(select(Company).order_by(Company.name), Company.id, me())
    return render_template("companies/index.html", companies=db.session.scalars(query).all())


@bp.route("/new", methods=["GET", "POST"])
def create() -> Page:
    global_admin()
    if request.method == "GET":
        return render_template("companies/form.html", company=None, form={}, errors={})
    try:
        company = create_company(text("name"), text("slug", 64), email=optional_text("email"))
    except CompanyError as exc:
        db.session.rollback()
        errors = field_errors(exc, FIELDS)
        return render_template(
            "companies/form.html", company=None, form=request.form, errors=errors
        ), 400
    record("create", "company", company.id, f"company {company.slug} created")
    db.session.commit()
    flash(f"Company {company.name} created.", "info")
    return redirect(url_for(".detail", company_id=company.id))


@bp.get("/<int:company_id>")
def detail(company_id: int) -> str:
    company = company_for(company_id)
    return render_template(
        "companies/detail.html",
        company=company,
        can_admin=access.has_role(me(), company.id, Role.ADMIN),
    )


@bp.route("/<int:company_id>/edit", methods=["GET", "POST"])
def edit(company_id: int) -> Page:
    company = company_for(company_id, Role.ADMIN)
    if request.method == "GET":
        return render_template("companies/form.html", company=company, form=company, errors={})
    try:
        update_company(
            company,
            name=text("name"),
            slug=text("slug", 64),
            email=optional_text("email"),
            enabled=flag("enabled"),
            zabbix_host=optional_text("zabbix_host"),
        )
    except CompanyError as exc:
        db.session.rollback()
        errors = field_errors(exc, FIELDS)
        return render_template(
            "companies/form.html", company=company, form=request.form, errors=errors
        ), 400
    record("update", "company", company.id, f"company {company.slug} edited")
    db.session.commit()
    flash("Company saved.", "info")
    return redirect(url_for(".detail", company_id=company.id))


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
    try:
        delete_company(company)
    except CompanyError as exc:
        db.session.rollback()
        return render_template("companies/delete.html", company=company, error=str(exc)), 400
    record("delete", "company", company_id, f"company {slug} deleted")
    db.session.commit()
    flash(f"Company {slug} deleted.", "info")
    return redirect(url_for(".index"))


@bp.get("/<int:company_id>/env")
def env(company_id: int) -> str:
    company = company_for(company_id)
    return _env_page(company, {}, {})


@bp.post("/<int:company_id>/env")
def env_set(company_id: int) -> Page:
    company = company_for(company_id, Role.ADMIN)
    key, value = text("key", 128), request.form.get("value", "")
    try:
        set_env(company, {key: value}, admin=me().is_admin)
    except CompanyError as exc:
        db.session.rollback()
        return _env_page(company, {"key": str(exc)}, request.form), 200 if is_htmx() else 400
    record("update", "company_env", company.id, f"company {company.slug}: env {key} set")
    db.session.commit()
    return _env_done(company)


@bp.post("/<int:company_id>/env/<int:env_id>/delete")
def env_delete(company_id: int, env_id: int) -> Page:
    company = company_for(company_id, Role.ADMIN)
    row = get_or_404(CompanyEnv, env_id)
    if row.company_id != company.id:
        return _env_page(company, {"_form": "no such variable"}, {}), 404
    key = row.key
    delete_env(company, key)
    record("delete", "company_env", company.id, f"company {company.slug}: env {key} removed")
    db.session.commit()
    return _env_done(company)


def _env_page(company: Company, errors: dict[str, str], form: object) -> str:
    can_admin = access.has_role(me(), company.id, Role.ADMIN)
    template = "companies/_env_table.html" if is_htmx() else "companies/env.html"
    return render_template(template, company=company, errors=errors, form=form, can_admin=can_admin)


def _env_done(company: Company) -> Page:
    if is_htmx():
        return _env_page(company, {}, {})
    flash("Environment saved.", "info")
    return redirect(url_for(".env", company_id=company.id))
