"""The wizard's credential step: the choices per requirement and where to create a missing one."""

from __future__ import annotations

from typing import Any

from flask import url_for
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Application, Company, CredentialPrototype, Role
from multiflexi_web.services.accounts.access import has_role
from multiflexi_web.services.runtemplates.manage import credential_choices
from multiflexi_web.views._helpers import me


def create_links(company: Company, codes: list[str]) -> dict[str, str | None]:
    """Per requirement, the page that creates such a credential for the company (None: no
    prototype of that code is imported yet)."""
    protos = {
        p.code: p.id
        for p in db.session.scalars(
            select(CredentialPrototype).where(CredentialPrototype.code.in_(codes or [""]))
        )
    }
    return {
        code: url_for("credentials.create", company_id=company.id, prototype_id=protos[code])
        if code in protos
        else None
        for code in codes
    }


def credential_context(company: Company, app: Application) -> dict[str, Any]:
    codes = list(app.requirements)
    choices = credential_choices(company.id, codes)
    return {
        "cred_choices": choices,
        "cred_missing": [code for code, found in choices.items() if not found],
        "cred_create": create_links(company, codes),
        "can_create_credentials": has_role(me(), company.id, Role.ADMIN),
    }
