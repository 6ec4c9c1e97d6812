"""Blueprint registration and the app-wide login guard."""

from __future__ import annotations

from typing import Any

from flask import Flask, redirect, request, url_for
from flask_login import current_user
from werkzeug.routing import IntegerConverter, Map
from werkzeug.wrappers import Response

from multiflexi_web.extensions import db
from multiflexi_web.models import User
from multiflexi_web.models.bounds import BIGINT_MAX
from multiflexi_web.portal_extensions import login_manager
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services.catalogue.fields import (
    is_secret_credential_field,
    is_secret_field,
    is_secret_name,
)

# Endpoints reachable without a session; everything else requires login.
# /metrics checks its own token (MULTIFLEXI_METRICS_TOKEN) and never redirects a scraper.
PUBLIC_ENDPOINTS = {"auth.login", "static", "health.health", "metrics.metrics"}
# Safe default: a new blueprint requires a session until it is deliberately listed here.
PUBLIC_PREFIXES = ("webhook.", "api.")
# The REST API authenticates each request itself (api/v1/auth.py) and answers 401 in JSON,
# unknown /api/ URLs included: the session login redirect never applies there.
API_PATH = "/api/"


def _at_most(limit: int) -> str:
    """A regex of the decimal numbers from 0 to `limit` (no sign): shorter numbers, or as long
    with a smaller digit after a common prefix, or `limit` itself."""
    digits, n = str(limit), len(str(limit))
    alternatives = [rf"\d{{1,{n - 1}}}"] if n > 1 else []
    for i, d in enumerate(digits):
        low, high = (1 if i == 0 and n > 1 else 0), int(d) - 1
        if high >= low:
            rest = rf"\d{{{n - i - 1}}}" if n - i - 1 else ""
            alternatives.append(f"{digits[:i]}[{low}-{high}]{rest}")
    return "(?:" + "|".join([*alternatives, digits]) + ")"


class IdConverter(IntegerConverter):
    """`<int:…>` bounded by the widest id column: a 30-digit id is no page, not an overflow.
    Bounded in the regex too: a value the converter refuses after matching made Werkzeug answer
    405 for a method other rules of the same path allow (schemathesis: DELETE of a 26-digit id)."""

    regex = _at_most(BIGINT_MAX)

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", BIGINT_MAX)
        super().__init__(url_map, *args, **kwargs)


def _load_user(session_id: str) -> User | None:
    """The user of a session id "id:epoch" (User.get_id) while its epoch is current: logout,
    a new password or changed powers bump it, and every older cookie stops working."""
    user_id, _, epoch = session_id.partition(":")
    if not user_id.isdigit() or not epoch.isdigit():
        return None  # also a cookie from before epochs existed: log in again
    user = db.session.get(User, int(user_id))
    if user is None or not user.enabled or user.session_epoch != int(epoch):
        return None
    return user


def register_views(app: Flask) -> None:
    """Every blueprint, registered in one place; the writer hook runs before the login guard."""
    from multiflexi_web.views import (
        actions,
        applications,
        audit,
        auth,
        companies,
        credentials,
        credprototypes,
        display,
        errors,
        health,
        links,
        maintenance,
        members,
        operations,
        queue,
        tokens,
        users,
        webhook,
        workers,
    )
    from multiflexi_web.views._helpers import begin_writer_for_changes
    from multiflexi_web.views.dashboard import routes as dashboard
    from multiflexi_web.views.events import routes as events
    from multiflexi_web.views.jobs import artifacts as job_artifacts
    from multiflexi_web.views.jobs import routes as jobs
    from multiflexi_web.views.runtemplates import routes as runtemplates

    blueprints = (
        auth, dashboard, health, webhook, events, companies, members, applications,
        credprototypes, credentials, users, audit, workers, runtemplates, jobs, job_artifacts,
        queue, tokens, actions, operations, maintenance,
    )  # fmt: skip
    # Before any rule is added: an id in a URL is at most a BIGINT (larger: 404, not an error).
    app.url_map.converters["int"] = IdConverter
    # Registered before the login guard so the lock is taken before the first read.
    app.before_request(begin_writer_for_changes)
    for module in blueprints:
        app.register_blueprint(module.bp)
    # Templates link to pages of other blueprints only where those are registered.
    app.jinja_env.globals["has_endpoint"] = app.view_functions.__contains__
    app.jinja_env.tests["secret_field"] = is_secret_field
    app.jinja_env.tests["secret_name"] = is_secret_name
    app.jinja_env.tests["secret_credential_field"] = is_secret_credential_field
    app.jinja_env.globals["MASK"] = MASK
    display.register(app)
    links.register(app)
    maintenance.register(app)
    from multiflexi_web.api import register_api

    register_api(app)
    from multiflexi_web.metrics import views as metrics

    metrics.register(app)
    errors.register(app)
    login_manager.login_view = "auth.login"
    login_manager.user_loader(_load_user)

    @app.before_request
    def _require_login() -> Response | None:
        endpoint = request.endpoint or ""
        if endpoint in PUBLIC_ENDPOINTS or endpoint.startswith(PUBLIC_PREFIXES):
            return None
        if request.path.startswith(API_PATH):
            return None
        if not current_user.is_authenticated:
            # full_path ends in a bare "?" when there is no query: only add a query that exists.
            here = request.full_path if request.query_string else request.path
            return redirect(url_for("auth.login", next=here))
        return None
