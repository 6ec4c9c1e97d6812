"""Read models of the credentials, credential prototypes and applications pages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Row, Select, exists, func, or_, select

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


def application_names() -> list[Row[tuple[int, str]]]:
    """(id, name) of every application, for filter menus (not whole rows with their JSON)."""
    return list(
        db.session.execute(select(Application.id, Application.name).order_by(Application.name))
    )


def application_query(search: str = "", tag: str = "") -> Select[Any]:
    """Applications by name (then id: a unique order to page on), matching `search` and `tag`."""
    query = select(Application).order_by(Application.name, Application.id)
    if search:
        like = f"%{search}%"
        query = query.where(or_(Application.name.ilike(like), Application.description.ilike(like)))
    return query.where(_has_tag(tag)) if tag else query


def application_tags() -> list[str]:
    """Every tag in use; the tags column only (the catalogue is hundreds of apps, not more)."""
    rows = db.session.scalars(select(Application.tags))
    return sorted({t for tags in rows for t in (tags or [])}, key=str.lower)


def _has_tag(tag: str) -> ColumnElement[bool]:
    # Tags are a JSON list: PostgreSQL's jsonb containment, SQLite's json_each.
    if db.session.get_bind().dialect.name == "postgresql":
        return Application.tags.op("@>")(func.jsonb_build_array(tag))
    each = func.json_each(Application.tags).table_valued("value")
    return exists(select(1).select_from(each).where(each.c.value == tag))
