"""Company members: add a user with a role, change the role, remove them."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from multiflexi_web.extensions import db
from multiflexi_web.models import Company, Role
from multiflexi_web.services.accounts import access
from multiflexi_web.services.accounts.members import (
    MemberError,
    add_member,
    members_of,
    parse_role,
    remove_member,
    set_role,
    user_by_login,
)
from multiflexi_web.services.audit import record
from multiflexi_web.views._helpers import company_for, field_errors, is_htmx, me, text

bp = Blueprint("members", __name__, url_prefix="/companies/<int:company_id>/members")
Page = str | tuple[str, int] | Response


@bp.get("/")
def index(company_id: int) -> str:
    return _page(company_for(company_id), {}, {})


@bp.post("/")
def add(company_id: int) -> Page:
    company = company_for(company_id, Role.ADMIN)
    try:
        user = user_by_login(text("login", 64))
        role = parse_role(text("role", 16))
        add_member(company, user, role)
    except MemberError as exc:
        db.session.rollback()
        errors = field_errors(exc, ("login", "role"))
        return _page(company, errors, request.form), 200 if is_htmx() else 400
    record(
        "update", "company_member", company.id, f"{user.login} added to {company.slug} as {role}"
    )
    db.session.commit()
    return _done(company, f"{user.login} is now {role.value} of {company.name}.")


@bp.post("/<int:user_id>/role")
def change_role(company_id: int, user_id: int) -> Page:
    company = company_for(company_id, Role.ADMIN)
    try:
        role = parse_role(text("role", 16))
        member = set_role(company, user_id, role)
    except MemberError as exc:
        db.session.rollback()
        return _page(company, {"_form": str(exc)}, {}), 200 if is_htmx() else 400
    summary = f"{member.user.login} is now {role.value} of {company.slug}"
    record("update", "company_member", company.id, summary)
    db.session.commit()
    return _done(company, summary + ".")


@bp.post("/<int:user_id>/delete")
def remove(company_id: int, user_id: int) -> Page:
    company = company_for(company_id, Role.ADMIN)
    try:
        remove_member(company, user_id)
    except MemberError as exc:
        db.session.rollback()
        return _page(company, {"_form": str(exc)}, {}), 200 if is_htmx() else 404
    record("delete", "company_member", company.id, f"user {user_id} removed from {company.slug}")
    db.session.commit()
    return _done(company, "Member removed.")


def _page(company: Company, errors: dict[str, str], form: object) -> str:
    template = "members/_table.html" if is_htmx() else "members/index.html"
    return render_template(
        template,
        company=company,
        members=members_of(company),
        roles=[r.value for r in Role],
        can_admin=access.has_role(me(), company.id, Role.ADMIN),
        errors=errors,
        form=form,
    )


def _done(company: Company, message: str) -> Page:
    if is_htmx():
        return _page(company, {}, {})
    flash(message, "info")
    return redirect(url_for(".index", company_id=company.id))
