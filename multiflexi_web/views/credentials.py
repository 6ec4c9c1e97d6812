"""Company credential types and credentials; secret values are write-only in every form."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    Company,
    Credential,
    CredentialPrototype,
    CredentialType,
    Role,
)
from multiflexi_web.models.bounds import parse_id
from multiflexi_web.services.accounts import access
from multiflexi_web.services.catalogue.credentials import (
    CredentialError,
    create_credential,
    credential_type_for,
    delete_credential,
    delete_credential_type,
    masked_values,
    update_credential,
    value_errors,
)
from multiflexi_web.services.catalogue.fields import is_secret_field
from multiflexi_web.views._change import (
    Audit,
    Page,
    commit_change,
    flash_error_redirect,
    flash_redirect,
)
from multiflexi_web.views._helpers import (
    company_for,
    field_errors,
    get_or_404,
    me,
    owned_by_company,
    text,
)
from multiflexi_web.views.queries import catalogue

bp = Blueprint("credentials", __name__)


@bp.get("/credentials/")
def index() -> str:
    creds, names = catalogue.visible_credentials(me())
    return render_template("credentials/index.html", credentials=creds, company_names=names)


@bp.get("/companies/<int:company_id>/credentials")
def company_credentials(company_id: int) -> str:
    company = company_for(company_id)
    return render_template(
        "credentials/company.html",
        company=company,
        credentials=catalogue.company_credentials(company.id),
        prototypes=catalogue.prototypes(),
        can_admin=access.has_role(me(), company.id, Role.ADMIN),
    )


@bp.route("/companies/<int:company_id>/credentials/new", methods=["GET", "POST"])
def create(company_id: int) -> Page:
    company = company_for(company_id, Role.ADMIN)
    raw_id = request.values.get("prototype_id", "")
    proto = db.session.get(CredentialPrototype, parse_id(raw_id) or 0)
    if proto is None:
        flash("Choose a credential prototype first.", "error")
        return redirect(url_for(".company_credentials", company_id=company.id))
    if request.method == "GET":
        return _form(company, proto, None, {}, {})
    name, values = text("name"), _values(proto)
    form = {"name": name, **values}
    errors = value_errors(proto, values)
    if errors:
        return _form(company, proto, None, errors, form), 400
    return commit_change(
        lambda: create_credential(company, proto.code, name, values),
        lambda c: Audit(
            "create", "credential", c.id, f"credential {name} created in {company.slug}"
        ),
        lambda c: flash_redirect(f"Credential {name} created.", ".detail", credential_id=c.id),
        lambda exc: (_form(company, proto, None, field_errors(exc, ("name",)), form), 400),
        (CredentialError,),
    )


@bp.get("/credentials/<int:credential_id>")
def detail(credential_id: int) -> str:
    cred = owned_by_company(Credential, credential_id)
    return render_template(
        "credentials/detail.html",
        cred=cred,
        company=db.session.get(Company, cred.company_id),
        values=masked_values(cred),
        can_admin=access.has_role(me(), cred.company_id, Role.ADMIN),
    )


@bp.route("/credentials/<int:credential_id>/edit", methods=["GET", "POST"])
def edit(credential_id: int) -> Page:
    cred = owned_by_company(Credential, credential_id, Role.ADMIN)
    company, proto = get_or_404(Company, cred.company_id), cred.credential_type.prototype
    if request.method == "GET":
        shown = {v.key: v.value for v in cred.values if not v.secret}
        return _form(company, proto, cred, {}, {"name": cred.name, **shown})
    name, values = text("name"), _values(proto)
    form = {"name": name, **_plain(proto, values)}
    errors = value_errors(proto, values)
    if errors:
        return _form(company, proto, cred, errors, form), 400
    return commit_change(
        lambda: update_credential(cred, name, values),
        lambda _: Audit("update", "credential", cred.id, f"credential {cred.name} edited"),
        lambda _: flash_redirect("Credential saved.", ".detail", credential_id=cred.id),
        lambda exc: (_form(company, proto, cred, field_errors(exc, ("name",)), form), 400),
        (CredentialError,),
    )


@bp.post("/credentials/<int:credential_id>/delete")
def delete(credential_id: int) -> Page:
    cred = owned_by_company(Credential, credential_id, Role.ADMIN)
    company_id, name = cred.company_id, cred.name
    return commit_change(
        lambda: delete_credential(cred),
        lambda _: Audit("delete", "credential", credential_id, f"credential {name} deleted"),
        lambda _: flash_redirect(
            f"Credential {name} deleted.", ".company_credentials", company_id=company_id
        ),
        lambda exc: flash_error_redirect(exc, ".detail", credential_id=credential_id),
        (CredentialError,),
    )


@bp.get("/companies/<int:company_id>/credential-types")
def types(company_id: int) -> str:
    company = company_for(company_id)
    return render_template(
        "credentials/types.html",
        company=company,
        types=catalogue.company_credential_types(company.id),
        prototypes=catalogue.prototypes(),
        can_admin=access.has_role(me(), company.id, Role.ADMIN),
    )


@bp.post("/companies/<int:company_id>/credential-types")
def type_create(company_id: int) -> Page:
    company = company_for(company_id, Role.ADMIN)
    raw_id = request.form.get("prototype_id", "")
    proto = db.session.get(CredentialPrototype, parse_id(raw_id) or 0)
    if proto is None:
        flash("Choose a credential prototype.", "error")
        return redirect(url_for(".types", company_id=company.id))
    return commit_change(
        lambda: credential_type_for(company, proto),
        lambda t: Audit("create", "credential_type", t.id, f"type {proto.code} in {company.slug}"),
        lambda t: flash_redirect(
            f"Credential type {t.name} is configured.", ".types", company_id=company.id
        ),
    )


@bp.post("/credential-types/<int:credtype_id>/delete")
def type_delete(credtype_id: int) -> Page:
    ctype = owned_by_company(CredentialType, credtype_id, Role.ADMIN)
    company_id, name = ctype.company_id, ctype.name
    return commit_change(
        lambda: delete_credential_type(ctype),
        lambda _: Audit(
            "delete", "credential_type", credtype_id, f"credential type {name} deleted"
        ),
        lambda _: flash_redirect(
            f"Credential type {name} deleted.", ".types", company_id=company_id
        ),
        lambda exc: flash_error_redirect(exc, ".types", company_id=company_id),
        (CredentialError,),
    )


def _values(proto: CredentialPrototype) -> dict[str, str]:
    return {f.keyword: request.form.get(f"value_{f.keyword}", "") for f in proto.fields}


def _plain(proto: CredentialPrototype, values: dict[str, str]) -> dict[str, str]:
    """Values to show again in a failed form: never the secret ones."""
    secret = {f.keyword for f in proto.fields if is_secret_field(f)}
    return {k: v for k, v in values.items() if k not in secret}


def _form(
    company: Company,
    proto: CredentialPrototype,
    cred: Credential | None,
    errors: dict[str, str],
    form: dict[str, str],
) -> str:
    stored = {v.key for v in cred.values if v.value} if cred else set()
    return render_template(
        "credentials/form.html",
        company=company,
        proto=proto,
        cred=cred,
        errors=errors,
        form=_plain(proto, form) if form else {},
        stored_secrets=stored,
    )
