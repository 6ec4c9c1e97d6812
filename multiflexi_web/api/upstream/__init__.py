"""Upstream-compatible API under /api/VitexSoftware/MultiFlexi/1.0.0: the read operations most
upstream clients use, and POST /job/, answering in upstream's shapes (shapes.py).

Auth, per-company access, rate limit and error bodies are /api/v1's: HTTP Basic with a user's
login and password as upstream (an API token works too); objects of companies the caller is
not in answer 404 exactly as in /api/v1.
"""

from __future__ import annotations

from flask import request
from werkzeug.wrappers import Response

from multiflexi_web.api.upstream import catalogue, jobs, runtemplates, system  # noqa: F401
from multiflexi_web.api.upstream.blueprint import bp
from multiflexi_web.api.v1.auth import authenticate_request
from multiflexi_web.api.v1.errors import install_json_errors

# Upstream exempts its heartbeat from authentication.
PUBLIC = {"api.upstream.ping"}

__all__ = ["bp"]


@bp.before_request
def _authenticate() -> None:
    if request.endpoint not in PUBLIC:
        authenticate_request()


@bp.after_request
def _headers(resp: Response) -> Response:
    resp.headers.setdefault("Cache-Control", "no-store")
    return resp


install_json_errors(bp)
