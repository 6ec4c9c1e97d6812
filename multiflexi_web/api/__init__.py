"""The REST API: one parent blueprint under /api with one child per version (v1 today)."""

from __future__ import annotations

from flask import Blueprint, Flask

from multiflexi_web.portal_extensions import csrf


def register_api(app: Flask) -> None:
    """/api/v1 and the upstream-compatible tree (/metrics is its own blueprint: metrics/)."""
    from multiflexi_web.api.upstream import bp as upstream
    from multiflexi_web.api.v1 import bp as v1

    parent = Blueprint("api", __name__, url_prefix="/api")
    parent.register_blueprint(v1)
    parent.register_blueprint(upstream)
    # Token and Basic requests carry no cookie-borne authority, so no CSRF token either;
    # the session cookie is never read under /api (api/v1/auth.py).
    csrf.exempt(parent)
    csrf.exempt(v1)
    csrf.exempt(upstream)
    app.register_blueprint(parent)
