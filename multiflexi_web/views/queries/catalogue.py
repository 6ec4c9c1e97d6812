"""Read models of the credentials, credential prototypes and applications pages."""

from __future__ import annotations

from sqlalchemy import or_, select

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    Application,
    Company,
    Credential,
    CredentialPrototype,
    CredentialType,
    User,
)
from multiflexi_web.services.accounts.access import scoped


def visible_credentials(user: User) -> tuple[list[Credential], dict[int, str]]:
    """Credentials of the companies the user may see, with those companies' names."""
    query = scoped(
        select(Credential).order_by(Credential.company_id, Credential.name),
        Credential.company_id,
        user,
    )
    creds = list(db.session.scalars(query))
    ids = {c.company_id for c in creds}
    names = select(Company.id, Company.name).where(Company.id.in_(ids))
    return creds, {row.id: row.name for row in db.session.execute(names)}


def company_credentials(company_id: int) -> list[Credential]:
    query = select(Credential).where(Credential.company_id == company_id)
    return list(db.session.scalars(query.order_by(Credential.name)))


def company_credential_types(company_id: int) -> list[CredentialType]:
    query = select(CredentialType).where(CredentialType.company_id == company_id)
    return list(db.session.scalars(query.order_by(CredentialType.name)))


def prototypes(code: str = "") -> list[CredentialPrototype]:
    """Every credential prototype by name, or the one with `code`."""
    query = select(CredentialPrototype).order_by(CredentialPrototype.name)
    if code:
        query = query.where(CredentialPrototype.code == code)
    return list(db.session.scalars(query))


def applications(search: str = "") -> list[Application]:
    """Applications by name; `search` matches a part of the name or the description."""
    query = select(Application).order_by(Application.name)
    if search:
        like = f"%{search}%"
        query = query.where(or_(Application.name.ilike(like), Application.description.ilike(like)))
    return list(db.session.scalars(query))
