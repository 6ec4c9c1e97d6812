"""The v1 blueprint object, apart so route modules can import it without a cycle."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("v1", __name__, url_prefix="/v1")
