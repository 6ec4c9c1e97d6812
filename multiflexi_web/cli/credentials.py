"""`multiflexi credential ...`"""

from __future__ import annotations

import getpass
from typing import Any

import click
from sqlalchemy import select

from multiflexi_web.cli.common import domain_errors, emit, format_option, parse_pairs, writer
from multiflexi_web.extensions import db
from multiflexi_web.models import Credential
from multiflexi_web.services import audit
from multiflexi_web.services.accounts.companies import CompanyError, get_company
from multiflexi_web.services.catalogue.credentials import (
    CredentialError,
    create_credential,
    masked_values,
    revealed_values,
)

COLUMNS = ["id", "company_id", "prototype", "name"]


def credential_row(c: Credential) -> dict[str, Any]:
    return {
        "id": c.id,
        "company_id": c.company_id,
        "prototype": c.credential_type.prototype.code,
        "name": c.name,
        "values": masked_values(c),
    }


@click.group("credential")
def credential_group() -> None:
    """Company credentials (secret values are stored encrypted and never printed)."""


@credential_group.command("create")
@click.option("--company", "company_ref", required=True, help="Company id or slug.")
@click.option("--prototype", required=True, help="Credential prototype code.")
@click.option("--name", required=True)
@click.option("--value", "values", multiple=True, metavar="K=V")
@format_option
@domain_errors(CompanyError, CredentialError)
@writer
def create(company_ref: str, prototype: str, name: str, values: tuple[str, ...], fmt: str) -> None:
    """Create a credential."""
    company = get_company(company_ref)
    cred = create_credential(company, prototype, name, parse_pairs(values, "--value"))
    audit.record("create", "credential", cred.id, f"credential {name} created", actor="cli")
    db.session.commit()
    emit(credential_row(cred), fmt, COLUMNS)


@credential_group.command("list")
@click.option("--company", "company_ref", help="Company id or slug.")
@format_option
@domain_errors(CompanyError)
def list_(company_ref: str | None, fmt: str) -> None:
    """List credentials."""
    q = select(Credential).order_by(Credential.id)
    if company_ref:
        q = q.where(Credential.company_id == get_company(company_ref).id)
    emit([credential_row(c) for c in db.session.scalars(q)], fmt, COLUMNS)


@credential_group.command("show")
@click.argument("credential_id", type=int)
@click.option(
    "--reveal",
    is_flag=True,
    help="Show secret values in plain text (recorded in the audit log). Whoever runs the CLI "
    "holds the platform's database and key: a global administrator.",
)
@format_option
@domain_errors(CredentialError)
@writer
def show(credential_id: int, reveal: bool, fmt: str) -> None:
    """Show one credential; secrets masked unless --reveal."""
    cred = db.session.get(Credential, credential_id)
    if cred is None:
        raise CredentialError(f"credential {credential_id}: not found")
    row = credential_row(cred)
    if reveal:
        row["values"] = revealed_values(cred)
        actor = f"cli:{getpass.getuser()}"
        audit.record(
            "reveal", "credential", cred.id, f"credential {cred.name} revealed", actor=actor
        )
        db.session.commit()
    emit(row, fmt, COLUMNS)
