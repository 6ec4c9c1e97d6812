"""Upstream `user`, its admin role and `company_user` memberships -> User and CompanyMember."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import CompanyMember, Role, User, utcnow
from multiflexi_web.security.legacy_passwords import from_upstream
from multiflexi_web.services.upstream_import.context import Context, Refused, apply, outcome
from multiflexi_web.services.upstream_import.reader import Row, flag, text_of, to_utc

# Upstream RBAC role names -> ours (SPEC §15: admin, operator, viewer).
ROLES = {"admin": Role.ADMIN, "owner": Role.ADMIN, "manager": Role.ADMIN, "viewer": Role.VIEWER}
ROLES |= {"operator": Role.OPERATOR, "user": Role.OPERATOR, "editor": Role.OPERATOR}


def import_users(ctx: Context) -> None:
    admins = _global_admins(ctx)
    # The daemons' "unix user" records (disabled, no password) are not people.
    people = [u for u in ctx.reader.rows("user") if u.get("password") and not _gone(ctx, u)]
    ctx.each("user", people, lambda r: _user(ctx, r, r["id"] in admins))
    ctx.each("company_user", ctx.reader.rows("company_user"), lambda r: _member(ctx, r), _label)


def _gone(ctx: Context, row: Row) -> bool:
    """A user upstream deleted or anonymised (its GDPR deletion keeps the row, marked): never
    an account here again, whatever its row still holds."""
    for column in ("deleted_at", "anonymized_at"):
        if row.get(column):
            login = text_of(row.get("login")).strip()
            ctx.report.note(
                f"user #{row['id']} ({login!r}): {column.split('_')[0]} upstream; not carried"
            )
            return True
    return False


def _global_admins(ctx: Context) -> set[int]:
    """Users holding the admin role now: an assignment whose expires_at has passed upstream
    gives nothing (it must not become a lasting global administrator here)."""
    roles = {r["id"]: text_of(r.get("name")) for r in ctx.reader.rows("user_roles")}
    now = utcnow()
    admins: set[int] = set()
    expired: dict[int, datetime] = {}
    for a in ctx.reader.rows("user_role_assignments"):
        if roles.get(a.get("role_id")) != "admin":
            continue
        expires = to_utc(a.get("expires_at"), ctx.zone)
        if expires is not None and expires <= now:
            expired[a["user_id"]] = expires
        else:
            admins.add(a["user_id"])
    for user_id, expires in sorted(expired.items()):
        if user_id not in admins:
            ctx.report.note(
                f"user #{user_id}: admin role expired upstream ({expires:%Y-%m-%d %H:%M} UTC); "
                "not a global administrator here"
            )
    return admins


def _user(ctx: Context, row: Row, is_admin: bool) -> str:
    login = text_of(row.get("login")).strip()
    hashed = from_upstream(text_of(row.get("password")))
    if not login:
        raise Refused("no login")
    if hashed is None:
        raise Refused("password hash is neither bcrypt nor upstream's legacy md5:salt")
    if ctx.ids.get("user_kept", row["id"]) is not None:
        return outcome(False, False)
    our_id = ctx.ids.get("user", row["id"])
    user = db.session.get(User, our_id) if our_id else None
    if user is None:
        existing = db.session.scalar(select(User).where(User.login == login))
        if existing is not None:
            # Someone already has this login here: theirs stays (password, powers, profile).
            ctx.ids.put("user", row["id"], existing.id)
            ctx.ids.put("user_kept", row["id"], existing.id)
            kept = f"login {login!r} exists here already; kept as it is (memberships added)"
            ctx.report.note(f"user #{row['id']}: {kept}")
            return outcome(False, False)
    created = user is None
    if user is None:
        user = User(login=login, password_hash=hashed)
        db.session.add(user)
    names = " ".join(text_of(row.get(k)).strip() for k in ("firstname", "lastname")).strip()
    values = {
        "login": login,
        "email": row.get("email") or None,
        "full_name": names or None,
        "enabled": flag(row.get("enabled", True)),
        "is_admin": is_admin or user.is_admin,
    }
    changed = apply(user, values)
    if created:
        user.password_hash = hashed
    db.session.flush()
    ctx.ids.put("user", row["id"], user.id)
    return outcome(created, changed)


def _member(ctx: Context, row: Row) -> str:
    company_id = ctx.our("company", row.get("company_id"), "company")
    user_id = ctx.our("user", row.get("user_id"), "user")
    raw = text_of(row.get("role")).strip().lower() or "viewer"
    role = ROLES.get(raw)
    if role is None:
        raise Refused(f"role {raw!r}: unknown (known: {', '.join(sorted(ROLES))})")
    member = db.session.scalar(
        select(CompanyMember).where(
            CompanyMember.company_id == company_id, CompanyMember.user_id == user_id
        )
    )
    created = member is None
    if member is None:
        member = CompanyMember(company_id=company_id, user_id=user_id)
        db.session.add(member)
    changed = apply(member, {"role": role.value})
    db.session.flush()
    return outcome(created, changed)


def _label(row: Row) -> str:
    return f"company {row.get('company_id')} user {row.get('user_id')}"
