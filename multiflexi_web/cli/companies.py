"""`multiflexi company ...`"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import select

from multiflexi_web.cli.common import domain_errors, emit, format_option, parse_pairs, writer
from multiflexi_web.extensions import db
from multiflexi_web.models import Company
from multiflexi_web.services import audit
from multiflexi_web.services.accounts.companies import CompanyError, create_company, shown_env

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
@click.option("--slug", required=True, help="Short unique code.")
@click.option("--email")
@click.option("--env", "env", multiple=True, metavar="K=V", help="Company environment variable.")
@format_option
@domain_errors(CompanyError)
@writer
def create(name: str, slug: str, email: str | None, env: tuple[str, ...], fmt: str) -> None:
    """Create a company."""
    company = create_company(name, slug, email=email, env=parse_pairs(env), admin=True)
    audit.record("create", "company", company.id, f"company {slug} created", actor="cli")
    db.session.commit()
    emit(company_row(company), fmt, COLUMNS)


@company_group.command("list")
@format_option
def list_(fmt: str) -> None:
    """List companies."""
    rows = [company_row(c) for c in db.session.scalars(select(Company).order_by(Company.id))]
    emit(rows, fmt, COLUMNS)
