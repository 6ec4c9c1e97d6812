"""Login and logout."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_user, logout_user
from werkzeug.wrappers import Response

from multiflexi_web.extensions import db
from multiflexi_web.services import settings
from multiflexi_web.services.accounts.users import authenticate
from multiflexi_web.services.audit import record

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    # Only same-site relative paths: an open redirect would help phishing.
    if (
        not target
        or urlsplit(target).netloc
        or not target.startswith("/")
        or target.startswith("//")
    ):
        return url_for("dashboard.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    if request.method == "POST":
        s = settings()
        login_name = request.form.get("login", "").strip()
        user = authenticate(
            login_name,
            request.form.get("password", ""),
            max_failures=s.login_max_failures,
            lockout_seconds=s.login_lockout_seconds,
            ip=request.remote_addr,
        )
        if user is None:
            record(
                "login_failed", "user", None, f"failed login for {login_name!r}", actor=login_name
            )
            db.session.commit()
            flash("Wrong login or password, or the account is locked.", "error")
            return render_template("auth/login.html", login=login_name), 401  # type: ignore[return-value]
        login_user(user)
        record("login", "user", user.id, "logged in", actor=user.login)
        db.session.commit()
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", login="")


@bp.post("/logout")
def logout() -> Response:
    logout_user()
    return redirect(url_for("auth.login"))
