"""The portal's /metrics: database figures only, behind MULTIFLEXI_METRICS_TOKEN when it is set."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from werkzeug.wrappers import Response

from multiflexi_web.metrics.collector import DatabaseCollector
from multiflexi_web.metrics.server import bearer_ok

bp = Blueprint("metrics", __name__)
REGISTRY_KEY = "multiflexi_metrics"


def register(app: Flask) -> None:
    """The blueprint and the app's own registry (never the global one: nothing per process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(app))
    app.extensions[REGISTRY_KEY] = registry
    app.register_blueprint(bp)


@bp.get("/metrics")
def metrics() -> Response:
    token: str = current_app.config["MULTIFLEXI"].metrics_token
    if not bearer_ok(request.headers.get("Authorization"), token):
        return Response(
            "metrics token required\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="metrics"', "Content-Type": "text/plain"},
        )
    body = generate_latest(current_app.extensions[REGISTRY_KEY])
    return Response(body, 200, {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
