"""MultiFlexi for Python: the Flask application factory."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from multiflexi_web.config import PROJECT_ROOT, Settings, load_settings
from multiflexi_web.db.engine import engine_options, install_sqlite_hooks
from multiflexi_web.extensions import db

__version__ = "0.1.0"
log = logging.getLogger(__name__)


def create_app(
    overrides: dict[str, Any] | None = None,
    settings: Settings | None = None,
    *,
    daemon: bool = False,
) -> Flask:
    """Build the app; `overrides` replace Flask config keys (tests), `settings` the environment.

    `daemon=True` builds only the database half: no blueprints, CLI, sessions, CSRF or
    migrations, whose imports (views, API, templates, alembic) would double a daemon's memory."""
    settings = settings or load_settings()
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.config.update(_flask_config(settings))
    app.config.update(overrides or {})
    _ensure_sqlite_folder(app.config["SQLALCHEMY_DATABASE_URI"])
    db.init_app(app)
    with app.app_context():
        install_sqlite_hooks(db.engine)
    if not daemon:
        _portal(app, settings)
    return app


def _portal(app: Flask, settings: Settings) -> None:
    """What serves people and the CLI: extensions, headers, blueprints, commands."""
    from multiflexi_web.api.json_provider import BoundedJSON
    from multiflexi_web.portal_extensions import csrf, login_manager, migrate

    app.json = BoundedJSON(app)

    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    _behind_proxies(app, settings.trusted_proxies)
    from multiflexi_web.security import headers

    headers.install(app, https=settings.session_cookie_secure)
    from multiflexi_web.views import register_views

    register_views(app)
    from multiflexi_web.cli import register_cli

    register_cli(app)


def _flask_config(settings: Settings) -> dict[str, Any]:
    secret_key = settings.secret_key
    if not secret_key:
        # Sessions will not survive a restart or span workers; `make run` writes one to .env.
        log.warning("SECRET_KEY is not set; using a random key for this process only")
        secret_key = secrets.token_hex(32)
    return {
        "MULTIFLEXI": settings,
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": settings.database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(settings.database_url),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": settings.session_cookie_secure,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": settings.session_cookie_secure,
        "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,
        "WTF_CSRF_TIME_LIMIT": None,
    }


def _behind_proxies(app: Flask, hops: int) -> None:
    # Only then is X-Forwarded-For believed: login throttling and audit key on the client address.
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]


def _ensure_sqlite_folder(url: str) -> None:
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        from multiflexi_web.security.process import private_sqlite

        private_sqlite(url)
