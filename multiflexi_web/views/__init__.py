"""Blueprint registration and the app-wide login guard."""

from __future__ import annotations

from flask import Flask, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from multiflexi_web.extensions import db, login_manager
from multiflexi_web.models import User

# Endpoints reachable without a session; everything else requires login.
PUBLIC_ENDPOINTS = {"auth.login", "static", "health.health"}
PUBLIC_PREFIXES = ("webhook.", "api.")


def register_views(app: Flask) -> None:
    from multiflexi_web.views import auth, dashboard, health

    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(health.bp)
    login_manager.login_view = "auth.login"

    @login_manager.user_loader
    def _load_user(user_id: str) -> User | None:
        user = db.session.get(User, int(user_id))
        return user if user is not None and user.enabled else None

    @app.before_request
    def _require_login() -> Response | None:
        endpoint = request.endpoint or ""
        if endpoint in PUBLIC_ENDPOINTS or endpoint.startswith(PUBLIC_PREFIXES):
            return None
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path))
        return None
