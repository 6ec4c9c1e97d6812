"""The user's personal API tokens (create shows the secret once, list, revoke) and the API page."""

from __future__ import annotations

from flask import Blueprint, abort, make_response, render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from multiflexi_web.db.engine import begin_write
from multiflexi_web.extensions import db
from multiflexi_web.models import ApiToken, Company, utcnow
from multiflexi_web.models.bounds import parse_id
from multiflexi_web.services.accounts import tokens
from multiflexi_web.services.accounts.access import visible_company_ids
from multiflexi_web.services.audit import record
from multiflexi_web.views._change import Audit, Page, commit_change, flash_redirect
from multiflexi_web.views._helpers import flag, me, text

bp = Blueprint("tokens", __name__, url_prefix="/account")
EXPIRY_CHOICES = (("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("", "never"))


def _companies() -> list[Company]:
    ids = visible_company_ids(me())
    query = select(Company).order_by(Company.name)
    if ids is not None:
        query = query.where(Company.id.in_(ids or {-1}))
    return list(db.session.scalars(query))


def _page(new_secret: str | None = None, error: str | None = None, status: int = 200) -> Response:
    now = utcnow()
    rows = [(t, tokens.state(t, now)) for t in tokens.tokens_of(me())]
    html = render_template(
        "tokens/index.html",
        rows=rows,
        companies=_companies(),
        expiry_choices=EXPIRY_CHOICES,
        new_secret=new_secret,
        error=error,
    )
    resp = make_response(html, status)
    resp.headers["Cache-Control"] = "no-store"  # the page may carry a new token's secret
    return resp


@bp.get("/tokens")
def index() -> Response:
    return _page()


@bp.post("/tokens")
def create() -> Response:
    begin_write()
    user = me()
    raw_company, raw_days = request.form.get("company_id", ""), request.form.get("expires_days", "")
    company = next((c for c in _companies() if str(c.id) == raw_company), None)
    if raw_company and company is None:
        return _page(error="Choose one of your companies.", status=400)
    try:
        issued = tokens.issue(
            user,
            text("name", 128),
            company=company,
            read_only=flag("read_only"),
            expires_days=parse_id(raw_days),
        )
    except tokens.TokenError as exc:
        db.session.rollback()
        return _page(error=str(exc), status=400)
    record("create", "api_token", issued.token.id, f"API token {issued.token.name!r} created")
    db.session.commit()
    return _page(new_secret=issued.secret, status=201)


@bp.post("/tokens/<int:token_id>/revoke")
def revoke(token_id: int) -> Page:
    begin_write()
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != me().id:
        abort(404)
    return commit_change(
        lambda: tokens.revoke(token),
        lambda _: Audit("revoke", "api_token", token.id, f"API token {token.name!r} revoked"),
        lambda _: flash_redirect(f"Token {token.name!r} revoked.", "tokens.index"),
        lambda exc: _page(error=str(exc), status=409),
        (tokens.TokenError,),
    )


@bp.get("/api")
def api_help() -> str:
    return render_template("tokens/api.html", base=request.host_url.rstrip("/") + "/api/v1")
