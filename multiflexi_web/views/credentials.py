"""Company credential types and credentials; secret values are write-only in every form."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

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
from multiflexi_web.services.audit import record
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
from multiflexi_web.views._helpers import (
    company_for,
    field_errors,
    get_or_404,
    me,
    owned_by_company,
    text,
)

bp = Blueprint("credentials", __name__)
Page = str | tuple[str, int] | Response


@bp.get("/credentials/")
def index() -> str:
    query = access.scoped(
        select(Credential).order_by(Credential.company_id, Credential.name),
        Credential.company_id,
        me(),
    )
    creds = db.session.scalars(query).all()
    ids = {c.company_id for c in creds}
    names = dict(
        db.session.execute(select(Company.id, Company.name).where(Company.id.in_(ids))).all()
    )
    return render_template("credentials/index.html", credentials=creds, company_names=names)


@bp.get("/companies/<int:company_id>/credentials")
def company_credentials(company_id: int) -> str:
    company = company_for(company_id)
    creds = db.session.scalars(
        select(Credential).where(Credential.company_id == company.id).order_by(Credential.name)
    ).all()
    return render_template(
        "credentials/company.html",
        company=company,
        credentials=creds,
        prototypes=_prototypes(),
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
    errors = value_errors(proto, values)
    if not errors:
        try:
            cred = create_credential(company, proto.code, name, values)
        except CredentialError as exc:
            db.session.rollback()
            errors = field_errors(exc, ("name",))
    if errors:
        return _form(company, proto, None, errors, {"name": name, **values}), 400
    record("create", "credential", cred.id, f"credential {name} created in {company.slug}")
    db.session.commit()
    flash(f"Credential {name} created.", "info")
    return redirect(url_for(".detail", credential_id=cred.id))


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
    errors = value_errors(proto, values)
    if not errors:
        try:
            update_credential(cred, name, values)
        except CredentialError as exc:
            db.session.rollback()
            errors = field_errors(exc, ("name",))
    if errors:
        return _form(company, proto, cred, errors, {"name": name, **_plain(proto, values)}), 400
    record("update", "credential", cred.id, f"credential {cred.name} edited")
    db.session.commit()
    flash("Credential saved.", "info")
    return redirect(url_for(".detail", credential_id=cred.id))


@bp.post("/credentials/<int:credential_id>/delete")
def delete(credential_id: int) -> Page:
    cred = owned_by_company(Credential, credential_id, Role.ADMIN)
    company_id, name = cred.company_id, cred.name
    try:
        delete_credential(cred)
    except CredentialError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for(".detail", credential_id=credential_id))
    record("delete", "credential", credential_id, f"credential {name} deleted")
    db.session.commit()
    flash(f"Credential {name} deleted.", "info")
    return redirect(url_for(".company_credentials", company_id=company_id))


@bp.get("/companies/<int:company_id>/credential-types")
def types(company_id: int) -> str:
    company = company_for(company_id)
    rows = db.session.scalars(
        select(CredentialType)
        .where(CredentialType.company_id == company.id)
        .order_by(CredentialType.name)
    ).all()
    return render_template(
        "credentials/types.html",
        company=company,
        types=rows,
        prototypes=_prototypes(),
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
    ctype = credential_type_for(company, proto)
    record("create", "credential_type", ctype.id, f"type {proto.code} in {company.slug}")
    db.session.commit()
    flash(f"Credential type {ctype.name} is configured.", "info")
    return redirect(url_for(".types", company_id=company.id))


@bp.post("/credential-types/<int:credtype_id>/delete")
def type_delete(credtype_id: int) -> Response:
    ctype = owned_by_company(CredentialType, credtype_id, Role.ADMIN)
    company_id, name = ctype.company_id, ctype.name
    try:
        delete_credential_type(ctype)
    except CredentialError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for(".types", company_id=company_id))
    record("delete", "credential_type", credtype_id, f"credential type {name} deleted")
    db.session.commit()
    flash(f"Credential type {name} deleted.", "info")
    return redirect(url_for(".types", company_id=company_id))


def _prototypes() -> list[CredentialPrototype]:
    return list(db.session.scalars(select(CredentialPrototype).order_by(CredentialPrototype.name)))


def _values(proto: CredentialPrototype) -> dict[str, str]:
    return {f.keyword: request.form.get(f"value_{f.keyword}", "") for f in proto.fields}


def _plain(proto: CredentialPrototype, values: dict[str, str]) -> dict[str, str]:
    """Values to show again in a failed form: never the secret ones."""
    secret = {f.keyword for f in proto.fields if f.secret or f.type == "password"}
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
