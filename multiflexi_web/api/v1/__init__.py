"""/api/v1: JSON for operators and CI pipelines; token or Basic auth, the portal's services."""

from __future__ import annotations

from flask import g, request
from werkzeug.wrappers import Response

from multiflexi_web.api.v1 import (  # noqa: F401
    catalogue,
    events,
    jobs,
    operations,
    pauses,
    runtemplates,
    system,
)
from multiflexi_web.api.v1.auth import authenticate_request
from multiflexi_web.api.v1.blueprint import bp
from multiflexi_web.api.v1.errors import install_json_errors

# Reachable without credentials: the liveness check and the API's own description.
PUBLIC = {"api.v1.health", "api.v1.openapi"}

__all__ = ["bp"]


@bp.before_request
def _authenticate() -> None:
    if request.endpoint not in PUBLIC:
        authenticate_request()


@bp.after_request
def _headers(resp: Response) -> Response:
    resp.headers.setdefault("Cache-Control", "no-store")
    left = g.get("api_rate_left")
    if left is not None:
        resp.headers["X-RateLimit-Remaining"] = str(left)
    return resp


install_json_errors(bp)
