"""Every API error as JSON: {"error": code, "message": text, "details": {...}} and a status."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from multiflexi_web.extensions import db

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal_error",
}
DEFAULT_MESSAGES = {
    401: "authentication required: send Authorization: Bearer <token> (or Basic)",
    403: "not allowed",
    404: "no such object, or not visible to you",
    405: "method not allowed here",
    413: "request body too large",
    500: "internal error; it was logged",
}


class ApiError(Exception):
    """Raised by API views: becomes the JSON error answer."""

    def __init__(
        self,
        status: int,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


def error_response(
    status: int,
    message: str = "",
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {
        "error": CODES.get(status, "error"),
        "message": message or DEFAULT_MESSAGES.get(status, "error"),
        "details": details or {},
    }
    resp = jsonify(body)
    resp.status_code = status
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def from_api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.message, exc.details, exc.headers)


def from_http(exc: HTTPException) -> Response:
    """A werkzeug abort (404 of an unknown route, 405, 413 from MAX_CONTENT_LENGTH...)."""
    status = exc.code or 500
    message = exc.description if status not in DEFAULT_MESSAGES else ""
    if status in {403, 404} and exc.description and not exc.description.startswith("The "):
        message = exc.description  # our own reasons ("this needs the operator role ...")
    headers = {}
    allow = exc.get_response().headers.get("Allow")
    if allow:
        headers["Allow"] = allow
    return error_response(status, message or "", headers=headers)


def bad_request(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, message, {"field": field} if field else None)


def unprocessable(message: str, field: str | None = None) -> ApiError:
    return ApiError(422, message, {"field": field} if field else None)


def install_json_errors(bp: Blueprint) -> None:
    """Every error of `bp` answers JSON `{error, message, details}`, its unit of work undone
    (/api/v1 and the upstream-compatible routes alike)."""

    def api_error(exc: ApiError) -> Response:
        db.session.rollback()
        return from_api_error(exc)

    def http_error(exc: HTTPException) -> Response:
        db.session.rollback()
        return from_http(exc)

    bp.register_error_handler(ApiError, api_error)
    bp.register_error_handler(HTTPException, http_error)
