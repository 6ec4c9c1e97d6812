"""Unauthenticated liveness check for load balancers and systemd."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text
from werkzeug.wrappers import Response

from multiflexi_web.extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def health() -> Response:
    db.session.execute(text("SELECT 1"))
    return jsonify(status="ok")
