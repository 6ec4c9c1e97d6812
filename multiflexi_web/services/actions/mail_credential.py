"""The mail credential an Email action logs in with: a credential of the job's own company
whose prototype carries mail fields (the Mail prototype's MAILER_DSN, or SMTP_* fields)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from multiflexi_web.actions import registry
from multiflexi_web.models import Credential, CredentialPrototypeField, CredentialType
from multiflexi_web.models.bounds import parse_id

# A prototype with one of these fields is a mail credential (the Mail prototype: MAILER_DSN).
MAIL_KEYS = ("MAILER_DSN", "SMTP_HOST")
# Credential values that always hold a login, whatever the prototype's secret flags say (the
# Mail prototype declares MAILER_DSN a plain string though it carries the password).
LOGIN_KEYS = ("MAILER_DSN", "SMTP_PASSWORD")


class MailCredentialError(ValueError):
    """The chosen credential cannot be used (gone, another company's, not a mail one)."""


@dataclass(frozen=True)
class MailLogin:
    values: dict[str, str]  # the credential's decrypted values, by keyword
    secrets: tuple[str, ...]  # to mask wherever an answer or error is recorded


def credential_keys(kind: str) -> tuple[str, ...]:
    """The kind's config keys that name a credential (ConfigField type "credential")."""
    return registry.keys_of_type(kind, "credential")


def choices(session: Session, company_id: int) -> list[tuple[str, str]]:
    """(id, name) of the company's mail credentials, for the action form's select."""
    rows = session.execute(
        select(Credential.id, Credential.name)
        .join(CredentialType, CredentialType.id == Credential.credential_type_id)
        .where(
            Credential.company_id == company_id,
            CredentialType.prototype_id.in_(
                select(CredentialPrototypeField.prototype_id).where(
                    CredentialPrototypeField.keyword.in_(MAIL_KEYS)
                )
            ),
        )
        .order_by(Credential.name, Credential.id)
    ).all()
    return [(str(i), n) for i, n in rows]


def check(session: Session, company_id: int, raw: str) -> Credential:
    """The credential `raw` (its id) if it is a mail credential of this company."""
    number = parse_id(raw)
    if number is None:
        raise MailCredentialError(f"credential {raw[:40]!r}: the id of a mail credential")
    cred = session.get(Credential, number)
    if cred is None or cred.company_id != company_id:
        # A missing id and another company's answer alike: no other tenant's id shows.
        raise MailCredentialError(
            f"credential {raw}: not a credential of this company; only the job's own "
            "company's mail credentials may be used"
        )
    if raw not in {i for i, _ in choices(session, company_id)}:
        raise MailCredentialError(f"credential {raw} ({cred.name}): not a mail credential")
    return cred


def resolve(session: Session, company_id: int, raw: str) -> MailLogin:
    """The decrypted login of the chosen credential, refused unless it is the company's own."""
    from multiflexi_web.services.catalogue.credentials import plain_values

    cred = check(session, company_id, raw)
    values = plain_values(cred)
    secret = [v.key for v in cred.values if v.secret] + list(LOGIN_KEYS)
    found = [values[k] for k in secret if values.get(k)]
    if dsn := values.get("MAILER_DSN"):
        password = urlsplit(dsn).password
        found += [password, unquote(password)] if password else []
    return MailLogin(values, tuple(v for v in found if len(v) >= 3))
