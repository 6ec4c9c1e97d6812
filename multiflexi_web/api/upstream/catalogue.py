"""apps and companies: every application (the catalogue is global), the caller's companies."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from sqlalchemy import select
from werkzeug.wrappers import Response

from multiflexi_web.api.upstream import shapes
from multiflexi_web.api.upstream.blueprint import bp
from multiflexi_web.api.upstream.common import check_suffix
from multiflexi_web.api.v1 import access
from multiflexi_web.extensions import db
from multiflexi_web.models import Application, Company


@bp.get("/apps.<suffix>")
def apps(suffix: str) -> Response:
    check_suffix(suffix)
    rows = db.session.scalars(select(Application).order_by(Application.id))
    return jsonify([shapes.app(a) for a in rows])


@bp.get("/app/<int:app_id>.<suffix>")
def app(app_id: int, suffix: str) -> dict[str, Any]:
    check_suffix(suffix)
    found = access.get(Application, app_id)
    return shapes.app(found, detail=True)


@bp.get("/companies.<suffix>")
def companies(suffix: str) -> Response:
    check_suffix(suffix)
    query = access.scoped(select(Company), Company.id).order_by(Company.id)
    rows = db.session.scalars(query)
    return jsonify([shapes.company(c) for c in rows])


@bp.get("/company/<int:company_id>.<suffix>")
def company(company_id: int, suffix: str) -> dict[str, Any]:
    check_suffix(suffix)
    access.require(company_id)
    return shapes.company(access.get(Company, company_id))
