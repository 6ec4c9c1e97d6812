"""`multiflexi company ...`"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import select

from multiflexi_web.cli.common import (
    domain_errors,
    emit,
    format_option,
    pairs_and_stdin,
    stdin_option,
    writer,
)
from multiflexi_web.extensions import db
from multiflexi_web.models import Company
from multiflexi_web.services import audit
from multiflexi_web.services.accounts.companies import (
    CompanyError,
    create_company,
    delete_env,
    free_slug,
    get_company,
    set_env,
    shown_env,
    update_company,
)
from multiflexi_web.services.accounts.members import (
    MemberError,
    add_member,
    members_of,
    parse_role,
    remove_member,
    user_by_login,
)

COLUMNS = ["id", "name", "slug", "email", "enabled"]


def company_row(c: Company) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "slug": c.slug,
        "email": c.email,
        "enabled": c.enabled,
        "env": shown_env(c),
    }


@click.group("company")
def company_group() -> None:
    """Companies (tenants)."""


@company_group.command("create")
@click.argument("name")
@click.option(
    "--slug", help="Short unique code (default: made from the name, as the portal suggests)."
)
@click.option("--email")
@click.option("--env", "env", multiple=True, metavar="K=V", help="Company environment variable.")
@stdin_option("--env", "value")
@format_option
@domain_errors(CompanyError)
@writer
def create(
    name: str,
    slug: str | None,
    email: str | None,
    env: tuple[str, ...],
    stdin_key: str | None,
    fmt: str,
) -> None:
    """Create a company."""
    values = pairs_and_stdin(env, "--env", stdin_key)
    slug = free_slug(name) if slug is None else slug
    company = create_company(name, slug, email=email, env=values, admin=True)
    audit.record("create", "company", company.id, f"company {slug} created", actor="cli")
    db.session.commit()
    emit(company_row(company), fmt, COLUMNS)


@company_group.command("list")
@format_option
def list_(fmt: str) -> None:
    """List companies."""
    rows = [company_row(c) for c in db.session.scalars(select(Company).order_by(Company.id))]
    emit(rows, fmt, COLUMNS)


@company_group.command("update")
@click.argument("company")
@click.option("--name", help="New name.")
@click.option("--slug", help="New short unique code.")
@click.option("--email", help="New e-mail address ('' removes it).")
@click.option(
    "--enabled/--disabled",
    default=None,
    help="A label kept from upstream; it does not stop jobs (`multiflexi pause --company`).",
)
@click.option("--zabbix-host", help="Its host in Zabbix ('' removes it).")
@click.option("--env", "env", multiple=True, metavar="K=V", help="Set an environment variable.")
@stdin_option("--env", "value")
@click.option("--unset-env", multiple=True, metavar="K", help="Remove an environment variable.")
@format_option
@domain_errors(CompanyError)
@writer
def update(
    company: str,
    name: str | None,
    slug: str | None,
    email: str | None,
    enabled: bool | None,
    zabbix_host: str | None,
    env: tuple[str, ...],
    stdin_key: str | None,
    unset_env: tuple[str, ...],
    fmt: str,
) -> None:
    """Change a company (by id or slug): only the options given change."""
    found = get_company(company)
    update_company(
        found,
        name=found.name if name is None else name,
        slug=found.slug if slug is None else slug,
        email=found.email if email is None else email or None,
        enabled=found.enabled if enabled is None else enabled,
        zabbix_host=found.zabbix_host if zabbix_host is None else zabbix_host or None,
    )
    for key in unset_env:
        delete_env(found, key)
    values = pairs_and_stdin(env, "--env", stdin_key)
    if values:
        set_env(found, values, admin=True)
    audit.record("update", "company", found.id, f"company {found.slug} edited", actor="cli")
    db.session.commit()
    emit(company_row(found), fmt, COLUMNS)


@company_group.group("member")
def member_group() -> None:
    """Who belongs to a company, and with which role (admin, operator, viewer)."""


MEMBER_COLUMNS = ["user_id", "login", "role", "enabled"]


@member_group.command("list")
@click.argument("company")
@format_option
@domain_errors(CompanyError)
def member_list(company: str, fmt: str) -> None:
    """List a company's members."""
    rows = [
        {"user_id": m.user_id, "login": m.user.login, "role": m.role, "enabled": m.user.enabled}
        for m in members_of(get_company(company))
    ]
    emit(rows, fmt, MEMBER_COLUMNS)


@member_group.command("add")
@click.argument("company")
@click.argument("login")
@click.option("--role", required=True, help="admin, operator or viewer.")
@format_option
@domain_errors(CompanyError, MemberError)
@writer
def member_add(company: str, login: str, role: str, fmt: str) -> None:
    """Add a user to a company, or change the role of one who belongs already."""
    found, user, wanted = get_company(company), user_by_login(login), parse_role(role)
    add_member(found, user, wanted)
    summary = f"{user.login} added to {found.slug} as {wanted}"
    audit.record("update", "company_member", found.id, summary, actor="cli")
    db.session.commit()
    row = {"user_id": user.id, "login": user.login, "role": wanted.value, "enabled": user.enabled}
    emit(row, fmt, MEMBER_COLUMNS)


@member_group.command("remove")
@click.argument("company")
@click.argument("login")
@domain_errors(CompanyError, MemberError)
@writer
def member_remove(company: str, login: str) -> None:
    """Remove a user from a company: they no longer see any of it."""
    found, user = get_company(company), user_by_login(login)
    remove_member(found, user.id)
    summary = f"{user.login} removed from {found.slug}"
    audit.record("delete", "company_member", found.id, summary, actor="cli")
    db.session.commit()
    click.echo(f"{user.login} removed from {found.slug}")
