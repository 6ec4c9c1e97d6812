"""`multiflexi user ...`: portal users, for scripts and for the host's administrator (a lost
admin password is reset here)."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from multiflexi_web.cli.common import domain_errors, emit, format_option, writer
from multiflexi_web.extensions import db
from multiflexi_web.models import CompanyMember, User
from multiflexi_web.services import audit
from multiflexi_web.services.accounts import throttle
from multiflexi_web.services.accounts.members import MemberError, user_by_login
from multiflexi_web.services.accounts.users import (
    UserError,
    create_user,
    end_sessions,
    generate_password,
    set_password,
)

COLUMNS = ["id", "login", "admin", "enabled", "email", "last_login_at", "companies"]


def user_row(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "login": user.login,
        "admin": user.is_admin,
        "enabled": user.enabled,
        "email": user.email,
        "last_login_at": user.last_login_at,
        "companies": {m.company.slug: m.role for m in user.memberships},
    }


@click.group("user")
def user_group() -> None:
    """Portal users."""


@user_group.command("create")
@click.argument("login")
@click.option("--password", help="Password; a random one is generated and printed when omitted.")
@click.option("--admin", is_flag=True, help="Make the user a global administrator.")
@click.option("--email")
@format_option
@domain_errors(UserError)
@writer
def create(login: str, password: str | None, admin: bool, email: str | None, fmt: str) -> None:
    """Create a user."""
    generated = password is None
    password = password or generate_password()
    user = create_user(login, password, is_admin=admin, email=email)
    audit.record("create", "user", user.id, f"user {login} created", actor="cli")
    db.session.commit()
    row = {"id": user.id, "login": user.login, "admin": user.is_admin}
    if generated:
        row["password"] = password
    emit(row, fmt, list(row))


@user_group.command("list")
@format_option
def list_(fmt: str) -> None:
    """List users: powers, last login, and the role in each company they belong to."""
    query = select(User).order_by(User.login)
    query = query.options(selectinload(User.memberships).joinedload(CompanyMember.company))
    emit([user_row(u) for u in db.session.scalars(query)], fmt, COLUMNS)


@user_group.command("reset-password")
@click.argument("login")
@click.option(
    "--password", help="The new password; a random one is generated and printed when omitted."
)
@format_option
@domain_errors(UserError, MemberError)
@writer
def reset_password(login: str, password: str | None, fmt: str) -> None:
    """Give a user a new password: every session of theirs ends, and the waits earned by
    wrong passwords for this login are lifted (a locked-out administrator's way back in)."""
    user = user_by_login(login)
    generated = password is None
    password = password or generate_password()
    set_password(user, password)
    throttle.forget_login(user.login)
    audit.record("update", "user", user.id, f"password of {user.login} reset", actor="cli")
    db.session.commit()
    row: dict[str, Any] = {"id": user.id, "login": user.login}
    if generated:
        row["password"] = password
    emit(row, fmt, list(row))


@user_group.command("disable")
@click.argument("login")
@format_option
@domain_errors(MemberError)
@writer
def disable(login: str, fmt: str) -> None:
    """Disable a user: no login, no API token of theirs is accepted, their sessions end."""
    _set_enabled(login, False, fmt)


@user_group.command("enable")
@click.argument("login")
@format_option
@domain_errors(MemberError)
@writer
def enable(login: str, fmt: str) -> None:
    """Enable a disabled user again."""
    _set_enabled(login, True, fmt)


def _set_enabled(login: str, enabled: bool, fmt: str) -> None:
    user = user_by_login(login)
    if user.enabled != enabled:
        user.enabled = enabled
        end_sessions(user)
        verb = "enabled" if enabled else "disabled"
        audit.record("update", "user", user.id, f"user {user.login} {verb}", actor="cli")
    db.session.commit()
    emit(user_row(user), fmt, COLUMNS)
