"""Error pages: 4xx/5xx render a page, a small fragment for htmx, JSON under /api/ and /webhook/."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, make_response, render_template, request
from psycopg.errors import NumericValueOutOfRange, UntranslatableCharacter
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers import Response

from multiflexi_web.api.v1 import errors as api_errors
from multiflexi_web.extensions import db
from multiflexi_web.views._helpers import is_htmx

log = logging.getLogger(__name__)
JSON_PREFIXES = ("/api/", "/webhook/")
API_PATH = "/api/"
TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    413: "Upload too large",
    500: "Something went wrong",
}


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InternalServerError, _server_error)
    app.register_error_handler(DataError, _out_of_range)


def _http_error(exc: HTTPException) -> Response:
    if exc.code is None or exc.code < 400:
        return exc.get_response()
    if request.path.startswith(API_PATH):
        return api_errors.from_http(exc)  # an unknown /api/ URL or a wrong method
    resp = make_response(_render(exc.code, exc.description or ""))
    allow = exc.get_response().headers.get("Allow")
    if allow:  # 405 tells the client which methods would do
        resp.headers["Allow"] = allow
    return resp


def _server_error(exc: InternalServerError) -> Response | tuple[str, int]:
    # The session may hold a failed transaction; the page itself still needs the database.
    db.session.rollback()
    log.error(
        "unhandled error on %s %s", request.method, request.path, exc_info=exc.original_exception
    )
    if request.path.startswith(API_PATH):
        return api_errors.error_response(500)
    return _render(500, "The error was logged. Try again, or tell the administrator.")


def _out_of_range(exc: DataError) -> Response | tuple[str, int]:
    """A number past its column's type (e.g. an id over 2**31 in a URL, on PostgreSQL), or a
    NUL character that a form's own checks let through (PostgreSQL stores none: psycopg
    refuses it in text, the server in JSON)."""
    db.session.rollback()
    if isinstance(exc.orig, NumericValueOutOfRange):
        return _render(400, "A number in the request is out of range.")
    if isinstance(exc.orig, UntranslatableCharacter) or "NUL" in str(exc.orig):
        return _render(400, "A value in the request contains a NUL character.")
    return _server_error(InternalServerError(original_exception=exc))


def _render(code: int, message: str) -> Response | tuple[str, int]:
    title = TITLES.get(code, "Error")
    if request.path.startswith(JSON_PREFIXES):
        resp = jsonify(error=title, message=message, status=code)
        resp.status_code = code
        return resp
    template = "errors/_error.html" if is_htmx() else "errors/error.html"
    return render_template(template, code=code, title=title, message=message), code
