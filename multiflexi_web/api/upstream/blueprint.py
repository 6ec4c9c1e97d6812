"""The upstream-compatible blueprint object, apart so route modules import it without a cycle."""

from __future__ import annotations

from flask import Blueprint

# Upstream's base path (multiflexi-server, Slim): /api/VitexSoftware/MultiFlexi/1.0.0
bp = Blueprint("upstream", __name__, url_prefix="/VitexSoftware/MultiFlexi/1.0.0")
