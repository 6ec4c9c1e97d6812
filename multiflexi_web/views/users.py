"""Users (global administrators only): list, create, edit, password reset, memberships."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from multiflexi_web.extensions import db
from multiflexi_web.models import Company, User
from multiflexi_web.models.bounds import parse_id
from multiflexi_web.services.accounts.members import (
    MemberError,
    add_member,
    parse_role,
    remove_member,
)
from multiflexi_web.services.accounts.users import (
    UserError,
    create_user,
    generate_password,
    set_password,
    update_user,
)
from multiflexi_web.services.audit import record
from multiflexi_web.views._helpers import (
    field_errors,
    flag,
    get_or_404,
    global_admin,
    optional_text,
    text,
)

bp = Blueprint("users", __name__, url_prefix="/users")
FIELDS = ("login", "password", "email", "full_name", "enabled", "is_admin")
Page = str | tuple[str, int] | Response


@bp.before_request
def _only_global_admins() -> None:
    global_admin()


@bp.get("/")
def index() -> str:
    users = db.session.scalars(select(User).order_by(User.login)).all()
    return render_template("users/index.html", users=users)


@bp.route("/new", methods=["GET", "POST"])
def create() -> Page:
    if request.method == "GET":
        return render_template("users/form.html", user=None, form={}, errors={})
    password = request.form.get("password", "") or generate_password()
    try:
        user = create_user(
            text("login", 64), password, is_admin=flag("is_admin"), email=optional_text("email")
        )
        user.full_name = optional_text("full_name")
    except UserError as exc:
        db.session.rollback()
        errors = field_errors(exc, FIELDS)
        return render_template("users/form.html", user=None, form=request.form, errors=errors), 400
    record("create", "user", user.id, f"user {user.login} created")
    db.session.commit()
    generated = password if not request.form.get("password") else None
    return _detail(user, generated)


@bp.get("/<int:user_id>")
def detail(user_id: int) -> str:
    return _detail(get_or_404(User, user_id), None)


@bp.route("/<int:user_id>/edit", methods=["GET", "POST"])
def edit(user_id: int) -> Page:
    user = get_or_404(User, user_id)
    if request.method == "GET":
        return render_template("users/form.html", user=user, form=user, errors={})
    try:
        update_user(
            user,
            acting=global_admin(),
            email=optional_text("email"),
            full_name=optional_text("full_name"),
            enabled=flag("enabled"),
            is_admin=flag("is_admin"),
        )
    except UserError as exc:
        db.session.rollback()
        errors = field_errors(exc, FIELDS)
        return render_template("users/form.html", user=user, form=request.form, errors=errors), 400
    record("update", "user", user.id, f"user {user.login} edited")
    db.session.commit()
    flash("User saved.", "info")
    return redirect(url_for(".detail", user_id=user.id))


@bp.post("/<int:user_id>/password")
def reset_password(user_id: int) -> Page:
    user = get_or_404(User, user_id)
    typed = request.form.get("password", "")
    password = typed or generate_password()
    try:
        set_password(user, password)
    except UserError as exc:
        db.session.rollback()
        return _detail(user, None, {"password": str(exc).split(": ", 1)[-1]}), 400
    user.locked_until, user.failed_logins = None, 0
    record("update", "user", user.id, f"password of {user.login} reset")
    db.session.commit()
    if typed:
        flash(f"Password of {user.login} changed.", "info")
        return redirect(url_for(".detail", user_id=user.id))
    return _detail(user, password)


@bp.post("/<int:user_id>/memberships")
def add_membership(user_id: int) -> Page:
    user = get_or_404(User, user_id)
    raw = request.form.get("company_id", "")
    company_id = parse_id(raw)
    company = db.session.get(Company, company_id) if company_id is not None else None
    try:
        if company is None:
            raise MemberError("company_id: choose a company")
        role = parse_role(text("role", 16))
        add_member(company, user, role)
    except MemberError as exc:
        db.session.rollback()
        return _detail(user, None, field_errors(exc, ("company_id", "role"))), 400
    record(
        "update", "company_member", company.id, f"{user.login} added to {company.slug} as {role}"
    )
    db.session.commit()
    flash(f"{user.login} is now {role.value} of {company.name}.", "info")
    return redirect(url_for(".detail", user_id=user.id))


@bp.post("/<int:user_id>/memberships/<int:company_id>/delete")
def remove_membership(user_id: int, company_id: int) -> Page:
    user = get_or_404(User, user_id)
    company = get_or_404(Company, company_id)
    try:
        remove_member(company, user.id)
    except MemberError as exc:
        db.session.rollback()
        return _detail(user, None, {"_form": str(exc)}), 404
    record("delete", "company_member", company.id, f"{user.login} removed from {company.slug}")
    db.session.commit()
    flash(f"{user.login} removed from {company.name}.", "info")
    return redirect(url_for(".detail", user_id=user.id))


def _detail(user: User, generated: str | None, errors: dict[str, str] | None = None) -> str:
    companies = db.session.scalars(select(Company).order_by(Company.name)).all()
    return render_template(
        "users/detail.html",
        user=user,
        generated=generated,
        companies=companies,
        errors=errors or {},
    )
