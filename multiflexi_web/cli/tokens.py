"""`multiflexi token create|list|revoke`: personal API tokens (the secret is printed once)."""

from __future__ import annotations

import click

from multiflexi_web.cli.common import ROW_ID, domain_errors, emit, format_option
from multiflexi_web.extensions import db
from multiflexi_web.models import ApiToken, utcnow
from multiflexi_web.services import audit
from multiflexi_web.services.accounts import tokens
from multiflexi_web.services.accounts.companies import CompanyError, get_company
from multiflexi_web.services.accounts.members import MemberError, user_by_login

COLUMNS = ["id", "name", "user", "read_only", "company_id", "expires_at", "last_used_at", "state"]


def token_row(t: ApiToken) -> dict[str, object]:
    return {
        "id": t.id,
        "name": t.name,
        "user": t.user.login,
        "read_only": t.scope != tokens.WRITE,
        "company_id": t.company_id,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "last_used_at": t.last_used_at,
        "state": tokens.state(t, utcnow()),
    }


@click.group("token")
def token_group() -> None:
    """Personal API tokens for /api/v1."""


@token_group.command("create")
@click.option("--user", "login", required=True, help="Login of the user the token acts as.")
@click.option("--company", "company_ref", help="Limit the token to this company (id or slug).")
@click.option("--read-only", is_flag=True, help="Only GET requests.")
@click.option("--expires-days", type=click.IntRange(1, tokens.MAX_EXPIRY_DAYS), default=None)
@click.option("--name", default="", help="A name shown in lists and the audit log.")
@format_option
@domain_errors(tokens.TokenError, MemberError, CompanyError)
def create(
    login: str,
    company_ref: str | None,
    read_only: bool,
    expires_days: int | None,
    name: str,
    fmt: str,
) -> None:
    """Create a token; its secret is printed now and never again."""
    user = user_by_login(login)
    company = get_company(company_ref) if company_ref else None
    issued = tokens.issue(
        user, name or "cli", company=company, read_only=read_only, expires_days=expires_days
    )
    summary = f"API token {issued.token.name!r} created for {user.login}"
    audit.record("create", "api_token", issued.token.id, summary, actor="cli")
    db.session.commit()
    emit({"token": issued.secret, **token_row(issued.token)}, fmt, [])


@token_group.command("list")
@click.option("--user", "login", help="Only this user's tokens.")
@format_option
@domain_errors(MemberError)
def list_(login: str | None, fmt: str) -> None:
    """Tokens (never their secrets)."""
    user = user_by_login(login) if login else None
    emit([token_row(t) for t in tokens.tokens_of(user)], fmt, COLUMNS)


@token_group.command("revoke")
@click.argument("token_id", type=ROW_ID)
@format_option
@domain_errors(tokens.TokenError)
def revoke(token_id: int, fmt: str) -> None:
    """Revoke a token: it stops working at once."""
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise click.ClickException(f"token {token_id}: not found")
    tokens.revoke(token)
    audit.record("revoke", "api_token", token.id, f"API token {token.name!r} revoked", actor="cli")
    db.session.commit()
    emit(token_row(token), fmt, COLUMNS)
