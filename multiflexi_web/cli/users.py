"""`multiflexi user ...`"""

from __future__ import annotations

import click

from multiflexi_web.cli.common import domain_errors, emit, format_option, writer
from multiflexi_web.extensions import db
from multiflexi_web.services import audit
from multiflexi_web.services.accounts.users import UserError, create_user, generate_password


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
