"""Domain operations. Services add and flush; the caller's unit of work commits."""

from __future__ import annotations

from flask import current_app

from multiflexi_web.config import Settings


def settings() -> Settings:
    """The validated settings of the running app."""
    value: Settings = current_app.config["MULTIFLEXI"]
    return value
