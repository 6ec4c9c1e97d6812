"""Blueprint registration and the app-wide login guard."""

from __future__ import annotations

from flask import Flask, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from multiflexi_web.extensions import db, login_manager
from multiflexi_web.models import User

# Endpoints reachable without a session; everything else requires login.
PUBLIC_ENDPOINTS = {"auth.login", "static", "health.health"}
# Safe default: a new blueprint requires a session until it is deliberately listed here.
PUBLIC_PREFIXES = ("webhook.",)


def _load_user(user_id: str) -> User | None:
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.enabled else None


def register_views(app: Flask) -> None:
    from multiflexi_web.views import auth, dashboard, events, health, webhook

    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(webhook.bp)
    app.register_blueprint(events.bp)
    _register_portal(app)
    from multiflexi_web.views import job_artifacts, jobs, queue, runtemplates  # portal B

    for module in (runtemplates, jobs, job_artifacts, queue):
        app.register_blueprint(module.bp)
    login_manager.login_view = "auth.login"

    login_manager.user_loader(_load_user)

    @app.before_request
    def _require_login() -> Response | None:
        endpoint = request.endpoint or ""
        if endpoint in PUBLIC_ENDPOINTS or endpoint.startswith(PUBLIC_PREFIXES):
            return None
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path))
        return None


def _register_portal(app: Flask) -> None:
    """Company, application, credential, user, audit and worker pages, and the error pages."""
    from multiflexi_web.views import (
        applications,
        audit,
        companies,
        credentials,
        credprototypes,
        errors,
        members,
        users,
        workers,
    )
    from multiflexi_web.views._helpers import begin_writer_for_changes

    # Registered before the login guard so the lock is taken before the first read.
    app.before_request(begin_writer_for_changes)
    # Templates link to pages of other blueprints only where those are registered.
    app.jinja_env.globals["has_endpoint"] = app.view_functions.__contains__

    portal = (companies, members, applications, credprototypes, credentials, users, audit, workers)
    for module in portal:
        app.register_blueprint(module.bp)
    errors.register(app)
