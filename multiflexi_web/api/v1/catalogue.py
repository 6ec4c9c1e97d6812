"""Companies, applications and credentials over the API."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from multiflexi_web.api.v1 import access
from multiflexi_web.api.v1 import serialize as out
from multiflexi_web.api.v1.auth import caller
from multiflexi_web.api.v1.blueprint import bp
from multiflexi_web.api.v1.change import api_change
from multiflexi_web.api.v1.errors import ApiError, unprocessable
from multiflexi_web.api.v1.params import (
    int_arg,
    json_body,
    page,
    required_int,
    str_map,
    text_field,
)
from multiflexi_web.extensions import db
from multiflexi_web.models import Application, Company, Credential, Role
from multiflexi_web.services.audit import record
from multiflexi_web.services.catalogue.app_import import import_app_bytes
from multiflexi_web.services.catalogue.credentials import (
    CredentialError,
    create_credential,
    get_prototype,
    update_credential,
    value_errors,
)
from multiflexi_web.views._change import Audit

MAX_APP_BYTES = 2 * 1024 * 1024


@bp.get("/companies")
def companies() -> dict[str, Any]:
    return page(access.scoped(select(Company), Company.id), Company.id, out.company)


@bp.get("/companies/<int:company_id>")
def company(company_id: int) -> dict[str, Any]:
    access.require(company_id)
    return out.company(access.get(Company, company_id), detail=True)


@bp.get("/applications")
def applications() -> dict[str, Any]:
    return page(select(Application), Application.id, out.application)


@bp.get("/applications/<int:app_id>")
def application(app_id: int) -> dict[str, Any]:
    return out.application(access.get(Application, app_id), detail=True)


@bp.post("/applications")
def import_application() -> Response:
    """Create or update an application from a MultiFlexi app JSON body (global admin)."""
    access.global_admin()
    data = request.get_data(cache=False)
    if len(data) > MAX_APP_BYTES:
        raise ApiError(413, f"body: an application JSON may be at most {MAX_APP_BYTES} bytes")
    result = import_app_bytes("api.multiflexi.app.json", data)
    if result.failed:
        db.session.rollback()
        raise unprocessable(result.error or "the application was refused")
    summary = f"application {result.name} {result.status} through the API"
    record("import", "application", result.id, summary, _token_details(), caller().actor)
    db.session.commit()
    resp = jsonify(
        {
            **result.as_dict(),
            "application": out.application(access.get(Application, result.id or 0), detail=True),
        }
    )
    resp.status_code = 201 if result.status == "imported" else 200
    return resp


def _token_details() -> dict[str, Any]:
    token = caller().token
    base: dict[str, Any] = {"via": "api"}
    return base if token is None else {**base, "token_id": token.id, "token_name": token.name}


@bp.get("/credentials")
def credentials() -> dict[str, Any]:
    query = access.scoped(select(Credential), Credential.company_id)
    company_id = int_arg("company")
    if company_id is not None:
        query = query.where(Credential.company_id == company_id)
    return page(query, Credential.id, out.credential)


@bp.get("/credentials/<int:credential_id>")
def credential(credential_id: int) -> dict[str, Any]:
    return out.credential(access.owned(Credential, credential_id), detail=True)


@bp.post("/credentials")
def create_credential_() -> Response:
    """{"company_id", "prototype", "name", "values"}: company admin; secrets write-only."""
    body = json_body()
    company_id = required_int(body, "company_id")
    access.require(company_id, Role.ADMIN)
    company_row = access.get(Company, company_id)
    name = text_field(body, "name", required=True, max_len=255) or ""
    values = str_map(body, "values")
    code = text_field(body, "prototype", required=True, max_len=64) or ""
    try:
        proto = get_prototype(code)
    except CredentialError as exc:
        raise unprocessable(str(exc), "prototype") from None
    _check_values(proto, values)
    return api_change(
        lambda: create_credential(company_row, code, name, values),
        lambda c: Audit("create", "credential", c.id, f"credential {name} created"),
        lambda c: out.credential(c, detail=True),
        status=201,
        refused=(CredentialError,),
    )


@bp.patch("/credentials/<int:credential_id>")
def update_credential_(credential_id: int) -> Response:
    """{"name"?, "values"?}: an absent or empty secret keeps the stored one."""
    body = json_body()
    cred = access.owned(Credential, credential_id, Role.ADMIN)
    name = text_field(body, "name", max_len=255) or cred.name
    values = str_map(body, "values")
    _check_values(cred.credential_type.prototype, values)
    return api_change(
        lambda: update_credential(cred, name, values),
        lambda _: Audit("update", "credential", cred.id, f"credential {cred.name} updated"),
        lambda _: out.credential(cred, detail=True),
        refused=(CredentialError,),
    )


def _check_values(proto: Any, values: dict[str, str]) -> None:
    known = {f.keyword for f in proto.fields}
    unknown = sorted(set(values) - known)
    errors = {k: "not a field of the prototype" for k in unknown}
    errors.update(value_errors(proto, values))
    if errors:
        raise ApiError(422, f"values: {len(errors)} refused", {"fields": errors})
