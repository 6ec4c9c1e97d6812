"""Users (global administrators only): list, create, edit, password reset, memberships."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import current_user, login_user

from multiflexi_web.extensions import db
from multiflexi_web.models import Company, Role, User
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
from multiflexi_web.views._change import Audit, Page, commit_change, flash_redirect
from multiflexi_web.views._helpers import (
    field_errors,
    flag,
    get_or_404,
    global_admin,
    optional_text,
    text,
)
from multiflexi_web.views.queries.accounts import all_companies, all_users

bp = Blueprint("users", __name__, url_prefix="/users")
FIELDS = ("login", "password", "email", "full_name", "enabled", "is_admin")


@bp.before_request
def _only_global_admins() -> None:
    global_admin()


@bp.get("/")
def index() -> str:
    return render_template("users/index.html", users=all_users())


@bp.route("/new", methods=["GET", "POST"])
def create() -> Page:
    if request.method == "GET":
        return render_template("users/form.html", user=None, form={}, errors={})
    password = request.form.get("password", "") or generate_password()
    generated = password if not request.form.get("password") else None

    def change() -> User:
        user = create_user(
            text("login", 64), password, is_admin=flag("is_admin"), email=optional_text("email")
        )
        user.full_name = optional_text("full_name")
        return user

    return commit_change(
        change,
        lambda user: Audit("create", "user", user.id, f"user {user.login} created"),
        lambda user: _detail(user, generated),
        lambda exc: _form(None, exc),
        (UserError,),
    )


@bp.get("/<int:user_id>")
def detail(user_id: int) -> str:
    return _detail(get_or_404(User, user_id), None)


@bp.route("/<int:user_id>/edit", methods=["GET", "POST"])
def edit(user_id: int) -> Page:
    user = get_or_404(User, user_id)
    if request.method == "GET":
        return render_template("users/form.html", user=user, form=user, errors={})
    return commit_change(
        lambda: update_user(
            user,
            acting=global_admin(),
            email=optional_text("email"),
            full_name=optional_text("full_name"),
            enabled=flag("enabled"),
            is_admin=flag("is_admin"),
        ),
        lambda _: Audit("update", "user", user.id, f"user {user.login} edited"),
        lambda _: flash_redirect("User saved.", ".detail", user_id=user.id),
        lambda exc: _form(user, exc),
        (UserError,),
    )


def _form(user: User | None, exc: ValueError) -> tuple[str, int]:
    errors = field_errors(exc, FIELDS)
    return render_template("users/form.html", user=user, form=request.form, errors=errors), 400


@bp.post("/<int:user_id>/password")
def reset_password(user_id: int) -> Page:
    user = get_or_404(User, user_id)
    typed = request.form.get("password", "")
    password = typed or generate_password()

    def change() -> None:
        set_password(user, password)

    def done(_: None) -> Page:
        if user.id == current_user.id:
            login_user(user)  # the reset ended every session of the user; this one goes on
        if typed:
            return flash_redirect(f"Password of {user.login} changed.", ".detail", user_id=user.id)
        return _detail(user, password)

    return commit_change(
        change,
        lambda _: Audit("update", "user", user.id, f"password of {user.login} reset"),
        done,
        lambda exc: (_detail(user, None, {"password": str(exc).split(": ", 1)[-1]}), 400),
        (UserError,),
    )


@bp.post("/<int:user_id>/memberships")
def add_membership(user_id: int) -> Page:
    user = get_or_404(User, user_id)
    raw = request.form.get("company_id", "")
    company_id = parse_id(raw)
    found = db.session.get(Company, company_id) if company_id is not None else None

    def change() -> tuple[Company, Role]:
        if found is None:
            raise MemberError("company_id: choose a company")
        role = parse_role(text("role", 16))
        add_member(found, user, role)
        return found, role

    return commit_change(
        change,
        lambda cr: Audit(
            "update", "company_member", cr[0].id, f"{user.login} added to {cr[0].slug} as {cr[1]}"
        ),
        lambda cr: flash_redirect(
            f"{user.login} is now {cr[1].value} of {cr[0].name}.", ".detail", user_id=user.id
        ),
        lambda exc: (_detail(user, None, field_errors(exc, ("company_id", "role"))), 400),
        (MemberError,),
    )


@bp.post("/<int:user_id>/memberships/<int:company_id>/delete")
def remove_membership(user_id: int, company_id: int) -> Page:
    user = get_or_404(User, user_id)
    company = get_or_404(Company, company_id)
    return commit_change(
        lambda: remove_member(company, user.id),
        lambda _: Audit(
            "delete", "company_member", company.id, f"{user.login} removed from {company.slug}"
        ),
        lambda _: flash_redirect(
            f"{user.login} removed from {company.name}.", ".detail", user_id=user.id
        ),
        lambda exc: (_detail(user, None, {"_form": str(exc)}), 404),
        (MemberError,),
    )


def _detail(user: User, generated: str | None, errors: dict[str, str] | None = None) -> str:
    return render_template(
        "users/detail.html",
        user=user,
        generated=generated,
        companies=all_companies(),
        errors=errors or {},
    )
