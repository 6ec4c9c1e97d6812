"""Company members: add a user with a role, change the role, remove them."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from multiflexi_web.models import Company, Role, User
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
from multiflexi_web.views._change import Audit, Page, commit_change
from multiflexi_web.views._helpers import company_for, field_errors, is_htmx, me, text

bp = Blueprint("members", __name__, url_prefix="/companies/<int:company_id>/members")


@bp.get("/")
def index(company_id: int) -> str:
    return _page(company_for(company_id), {}, {})


@bp.post("/")
def add(company_id: int) -> Page:
    company = company_for(company_id, Role.ADMIN)

    def change() -> tuple[User, Role]:
        user, role = user_by_login(text("login", 64)), parse_role(text("role", 16))
        add_member(company, user, role)
        return user, role

    return commit_change(
        change,
        lambda ur: Audit(
            "update",
            "company_member",
            company.id,
            f"{ur[0].login} added to {company.slug} as {ur[1]}",
        ),
        lambda ur: _done(company, f"{ur[0].login} is now {ur[1].value} of {company.name}."),
        lambda exc: _refused(company, field_errors(exc, ("login", "role")), request.form, 400),
        (MemberError,),
    )


@bp.post("/<int:user_id>/role")
def change_role(company_id: int, user_id: int) -> Page:
    company = company_for(company_id, Role.ADMIN)

    def change() -> str:
        role = parse_role(text("role", 16))
        member = set_role(company, user_id, role)
        return f"{member.user.login} is now {role.value} of {company.slug}"

    return commit_change(
        change,
        lambda summary: Audit("update", "company_member", company.id, summary),
        lambda summary: _done(company, summary + "."),
        lambda exc: _refused(company, {"_form": str(exc)}, {}, 400),
        (MemberError,),
    )


@bp.post("/<int:user_id>/delete")
def remove(company_id: int, user_id: int) -> Page:
    company = company_for(company_id, Role.ADMIN)
    return commit_change(
        lambda: remove_member(company, user_id),
        lambda _: Audit(
            "delete", "company_member", company.id, f"user {user_id} removed from {company.slug}"
        ),
        lambda _: _done(company, "Member removed."),
        lambda exc: _refused(company, {"_form": str(exc)}, {}, 404),
        (MemberError,),
    )


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


def _refused(
    company: Company, errors: dict[str, str], form: object, status: int
) -> tuple[str, int]:
    """The members table again with the error; htmx swaps it in, so it is a 200 there."""
    return _page(company, errors, form), 200 if is_htmx() else status


def _done(company: Company, message: str) -> Page:
    if is_htmx():
        return _page(company, {}, {})
    flash(message, "info")
    return redirect(url_for(".index", company_id=company.id))
