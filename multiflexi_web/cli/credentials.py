"""`multiflexi credential ...`"""

from __future__ import annotations

import getpass
from typing import Any

import click
from sqlalchemy import select

from multiflexi_web.cli.common import (
    ROW_ID,
    domain_errors,
    emit,
    format_option,
    pairs_and_stdin,
    stdin_option,
    writer,
)
from multiflexi_web.extensions import db
from multiflexi_web.models import Credential
from multiflexi_web.services import audit
from multiflexi_web.services.accounts.companies import CompanyError, get_company
from multiflexi_web.services.catalogue.credentials import (
    CredentialError,
    create_credential,
    delete_credential,
    masked_values,
    revealed_values,
    update_credential,
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
@stdin_option("--value", "value")
@format_option
@domain_errors(CompanyError, CredentialError)
@writer
def create(
    company_ref: str,
    prototype: str,
    name: str,
    values: tuple[str, ...],
    stdin_key: str | None,
    fmt: str,
) -> None:
    """Create a credential."""
    company = get_company(company_ref)
    given = pairs_and_stdin(values, "--value", stdin_key)
    cred = create_credential(company, prototype, name, given)
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
@click.argument("credential_id", type=ROW_ID)
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


@credential_group.command("update")
@click.argument("credential_id", type=ROW_ID)
@click.option("--name", help="New name.")
@click.option("--value", "values", multiple=True, metavar="K=V", help="Set a value (rotate it).")
@stdin_option("--value", "value")
@format_option
@domain_errors(CredentialError)
@writer
def update(
    credential_id: int,
    name: str | None,
    values: tuple[str, ...],
    stdin_key: str | None,
    fmt: str,
) -> None:
    """Change a credential's name or values (e.g. rotate a password); others are kept."""
    cred = _credential(credential_id)
    given = pairs_and_stdin(values, "--value", stdin_key)
    update_credential(cred, cred.name if name is None else name, given)
    audit.record("update", "credential", cred.id, f"credential {cred.name} edited", actor="cli")
    db.session.commit()
    emit(credential_row(cred), fmt, COLUMNS)


@credential_group.command("delete")
@click.argument("credential_id", type=ROW_ID)
@domain_errors(CredentialError)
@writer
def delete(credential_id: int) -> None:
    """Delete a credential no RunTemplate uses."""
    cred = _credential(credential_id)
    name = cred.name
    delete_credential(cred)
    audit.record("delete", "credential", credential_id, f"credential {name} deleted", actor="cli")
    db.session.commit()
    click.echo(f"credential {credential_id} deleted")


def _credential(credential_id: int) -> Credential:
    cred = db.session.get(Credential, credential_id)
    if cred is None:
        raise CredentialError(f"credential {credential_id}: not found")
    return cred
