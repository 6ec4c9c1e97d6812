"""Health, workers and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

from multiflexi_web.api.v1 import serialize as out
from multiflexi_web.api.v1.blueprint import bp
from multiflexi_web.api.v1.openapi import document
from multiflexi_web.api.v1.params import page
from multiflexi_web.extensions import db
from multiflexi_web.models import Worker


@bp.get("/health")
def health() -> dict[str, Any]:
    """No credentials needed: the database answers."""
    db.session.execute(text("SELECT 1"))
    return {"status": "ok"}


@bp.get("/openapi.json")
def openapi() -> dict[str, Any]:
    return document()


@bp.get("/workers")
def workers() -> dict[str, Any]:
    return page(select(Worker), Worker.id, out.worker)
