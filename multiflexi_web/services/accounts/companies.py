"""Companies and their environment."""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import AppField, Company, CompanyEnv
from multiflexi_web.models.bounds import parse_id
from multiflexi_web.security import env_names
from multiflexi_web.security.secrets import MASK, cipher
from multiflexi_web.services.catalogue.fields import is_secret_name

SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CompanyError(ValueError):
    """A company operation was refused; the message names the field and the reason."""


def validate_env_key(key: str) -> str:
    if not ENV_KEY_RE.match(key):
        raise CompanyError(
            f"env key {key!r}: must be letters, digits and _ and not start with a digit"
        )
    return key


def slugify(name: str) -> str:
    """A slug suggested by a company name: ASCII letters and digits joined by "-" ("Café Nový
    s.r.o." -> "cafe-novy-s-r-o"); "company" when the name has none."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].rstrip("-")
    return slug or "company"


def free_slug(name: str) -> str:
    """slugify(name), with -2, -3, ... appended while another company holds it."""
    base = slugify(name)
    taken = set(db.session.scalars(select(Company.slug).where(Company.slug.like(f"{base}%"))))
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base[: 63 - len(str(n))]}-{n}"
    return slug


def create_company(
    name: str,
    slug: str,
    *,
    email: str | None = None,
    env: dict[str, str] | None = None,
    admin: bool = False,
) -> Company:
    name = name.strip()
    if not name:
        raise CompanyError("name: must not be empty")
    slug = slug.strip() or free_slug(name)
    if not SLUG_RE.match(slug):
        raise CompanyError(f"slug {slug!r}: 1-64 letters, digits, '-' or '_'")
    if db.session.scalar(select(Company.id).where(Company.slug == slug)) is not None:
        raise CompanyError(f"slug {slug!r}: already used by another company")
    company = Company(name=name, slug=slug, email=email)
    db.session.add(company)
    db.session.flush()
    set_env(company, env or {}, admin=admin)
    return company


def check_env_names(names: list[str], *, admin: bool) -> None:
    """A company admin may set names some application declares plus the allow-list; a global
    admin any name; loader and interpreter variables nobody (security/env_names.py)."""
    declared: set[str] = set()
    if not admin and any(n not in env_names.allowed() for n in names):
        declared = set(
            db.session.scalars(select(AppField.keyname).where(AppField.keyname.in_(names)))
        )
    try:
        env_names.check_all(
            names, what="env key", admin=admin, declared=declared, allow=env_names.allowed()
        )
    except env_names.EnvNameError as exc:
        raise CompanyError(str(exc)) from None


def set_env(company: Company, values: dict[str, str], *, admin: bool = False) -> None:
    """Set (add or replace) the given keys of the company environment; a value named like a
    secret is stored encrypted."""
    existing = {row.key: row for row in company.env}
    for key in values:
        validate_env_key(key)
    check_env_names(list(values), admin=admin)
    try:
        env_names.check_values(values, what="env key")
    except env_names.EnvNameError as exc:
        raise CompanyError(str(exc)) from None
    for key, value in values.items():
        secret = is_secret_name(key)
        stored = cipher().encrypt(value) if secret else value
        if key in existing:
            existing[key].value, existing[key].secret = stored, secret
        else:
            company.env.append(CompanyEnv(key=key, value=stored, secret=secret))
    db.session.flush()


def shown_env(company: Company) -> dict[str, str]:
    """The company environment safe to show: secret values (or secret-named ones) masked."""
    return {e.key: MASK if e.secret or is_secret_name(e.key) else e.value for e in company.env}


def get_company(ref: str | int) -> Company:
    """A company by id or slug."""
    company = None
    # An id in ASCII digits within the column's range; else a name ("²" is not an id).
    number = ref if isinstance(ref, int) else parse_id(str(ref))
    if number is not None:
        company = db.session.get(Company, number)
    if company is None:
        company = db.session.scalar(select(Company).where(Company.slug == str(ref)))
    if company is None:
        raise CompanyError(f"company {ref!r}: not found")
    return company


def update_company(
    company: Company,
    *,
    name: str,
    slug: str,
    email: str | None = None,
    enabled: bool = True,
    zabbix_host: str | None = None,
) -> None:
    """Change a company's own fields; the same rules as creating one."""
    if not name.strip():
        raise CompanyError("name: must not be empty")
    if not SLUG_RE.match(slug):
        raise CompanyError(f"slug {slug!r}: 1-64 letters, digits, '-' or '_'")
    taken = db.session.scalar(
        select(Company.id).where(Company.slug == slug, Company.id != company.id)
    )
    if taken is not None:
        raise CompanyError(f"slug {slug!r}: already used by another company")
    company.name, company.slug, company.email = name.strip(), slug, email
    company.enabled, company.zabbix_host = enabled, zabbix_host
    db.session.flush()


def delete_env(company: Company, key: str) -> None:
    row = next((r for r in company.env if r.key == key), None)
    if row is None:
        raise CompanyError(f"env key {key!r}: not set in this company")
    company.env.remove(row)
    db.session.flush()


def delete_company(company: Company) -> None:
    """Delete a company and everything it owns; refused while one of its jobs is live."""
    from multiflexi_web.models import LIVE_STATUSES, Credential, CredentialType, Job

    live = db.session.scalar(
        select(Job.id)
        .where(Job.company_id == company.id, Job.status.in_([s.value for s in LIVE_STATUSES]))
        .limit(1)
    )
    if live is not None:
        raise CompanyError(
            f"company {company.slug!r}: has queued or running jobs (e.g. job {live})"
        )
    # Credentials restrict their type's deletion: remove them first, then the types.
    for model in (Credential, CredentialType):
        for row in db.session.scalars(select(model).where(model.company_id == company.id)):
            db.session.delete(row)
        db.session.flush()
    db.session.delete(company)
    db.session.flush()
