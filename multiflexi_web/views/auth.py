"""Login and logout."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from multiflexi_web.extensions import db
from multiflexi_web.models import User, utcnow
from multiflexi_web.services import settings
from multiflexi_web.services.accounts import throttle
from multiflexi_web.services.accounts.users import authenticate, end_sessions
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
    if request.method == "GET":
        return render_template("auth/login.html", login="")
    login_name = request.form.get("login", "").strip()
    ip, now = request.remote_addr or "unknown", utcnow()
    wait = throttle.wait_seconds(ip, login_name, now)
    if wait:
        summary = f"login for {login_name!r} refused: wait {wait} s"
        record("login_throttled", "user", None, summary, actor=login_name)
        db.session.commit()
        return _refused(login_name, f"Too many attempts, try again in {wait} s.", 429, wait)
    user = authenticate(login_name, request.form.get("password", ""), ip=ip)
    if user is None:
        return _failed(login_name, ip, now)
    throttle.record_success(ip, login_name)
    session.clear()  # a fresh session at login: nothing planted before it survives (fixation)
    login_user(user)
    record("login", "user", user.id, "logged in", actor=user.login)
    db.session.commit()
    return redirect(_safe_next(request.args.get("next")))


def _failed(login_name: str, ip: str, now: datetime) -> Response:
    s = settings()
    policy = throttle.Policy(free=s.login_max_failures, cap=s.login_lockout_seconds)
    known = db.session.scalar(select(User.last_login_ip).where(User.login == login_name)) == ip
    wait = throttle.record_failure(ip, login_name, known=known, policy=policy, now=now)
    record("login_failed", "user", None, f"failed login for {login_name!r}", actor=login_name)
    db.session.commit()
    message = "Wrong login or password."
    if wait:
        message += f" Too many attempts, try again in {wait} s."
    return _refused(login_name, message, 401, wait)


def _refused(login_name: str, message: str, status: int, wait: int) -> Response:
    flash(message, "error")
    resp = make_response(render_template("auth/login.html", login=login_name), status)
    if wait:
        resp.headers["Retry-After"] = str(wait)
    return resp


@bp.post("/logout")
def logout() -> Response:
    # Ending the user's sessions, not just this cookie: a copy taken earlier stops working too.
    if current_user.is_authenticated:
        end_sessions(current_user)
        record("logout", "user", current_user.id, "logged out")
        db.session.commit()
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
