"""Company credentials: values typed by their prototype, secret ones encrypted."""

from __future__ import annotations

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    Company,
    Credential,
    CredentialPrototype,
    CredentialType,
    CredentialValue,
)
from multiflexi_web.security.secrets import MASK, reveal, value_to_store
from multiflexi_web.services.catalogue.fields import is_secret_credential_field


class CredentialError(ValueError):
    """A credential operation was refused; the message says why."""


def get_prototype(code: str) -> CredentialPrototype:
    proto = db.session.scalar(select(CredentialPrototype).where(CredentialPrototype.code == code))
    if proto is None:
        raise CredentialError(f"credential prototype {code!r}: not found (import it first)")
    return proto


def credential_type_for(company: Company, proto: CredentialPrototype) -> CredentialType:
    """The company's credential type for a prototype, created on first use."""
    ctype = db.session.scalar(
        select(CredentialType).where(
            CredentialType.company_id == company.id, CredentialType.prototype_id == proto.id
        )
    )
    if ctype is None:
        ctype = CredentialType(company_id=company.id, prototype_id=proto.id, name=proto.name)
        db.session.add(ctype)
        db.session.flush()
    return ctype


def create_credential(
    company: Company, prototype_code: str, name: str, values: dict[str, str]
) -> Credential:
    proto = get_prototype(prototype_code)
    if not name.strip():
        raise CredentialError("name: must not be empty")
    cred = Credential(
        company_id=company.id, credential_type=credential_type_for(company, proto), name=name
    )
    db.session.add(cred)
    set_values(cred, values)
    missing = [
        f.keyword for f in proto.fields if f.required and not _has_value(cred, f.keyword, f.default)
    ]
    if missing:
        raise CredentialError(f"credential {name!r}: required values missing: {', '.join(missing)}")
    db.session.flush()
    return cred


def _has_value(cred: Credential, key: str, default: str | None) -> bool:
    return any(v.key == key and v.value != "" for v in cred.values) or bool(default)


def set_values(cred: Credential, values: dict[str, str]) -> None:
    """Store values; secret ones encrypted. An empty secret keeps the stored one."""
    proto = cred.credential_type.prototype
    fields = {f.keyword: f for f in proto.fields}
    existing = {v.key: v for v in cred.values}
    for key, value in values.items():
        field = fields.get(key)
        secret = field is not None and is_secret_credential_field(field)
        row = existing.get(key)
        stored = value_to_store(value, secret, row)
        if stored is None:
            continue
        if row is None:
            cred.values.append(CredentialValue(key=key, value=stored, secret=secret))
        else:
            row.value, row.secret = stored, secret


def plain_values(cred: Credential) -> dict[str, str]:
    """Decrypted values, prototype defaults filling unset keys: for job environments only."""
    out = {
        f.keyword: f.default for f in cred.credential_type.prototype.fields if f.default is not None
    }
    out.update({v.key: reveal(v) for v in cred.values})
    return out


def revealed_values(cred: Credential) -> dict[str, str]:
    """The stored values in plain text, secrets decrypted: only for a global administrator's
    explicit, audited request (`multiflexi credential show --reveal`)."""
    return {v.key: reveal(v) for v in cred.values}


def masked_values(cred: Credential) -> dict[str, str]:
    """Values safe to show: secrets as a mask, '(not set)' when empty."""
    return {v.key: (MASK if v.value else "(not set)") if v.secret else v.value for v in cred.values}


def value_errors(proto: CredentialPrototype, values: dict[str, str]) -> dict[str, str]:
    """Per-field problems of typed values ({keyword: reason}); empty secrets are allowed."""
    from multiflexi_web.services.catalogue.fields import FieldValueError, normalise_value

    errors: dict[str, str] = {}
    for f in proto.fields:
        try:
            normalise_value(f.type, values.get(f.keyword, ""), f.options)
        except FieldValueError as exc:
            errors[f.keyword] = str(exc)
    return errors


def update_credential(cred: Credential, name: str, values: dict[str, str]) -> None:
    """Rename and store values (an empty secret keeps the old one); required values must stay."""
    if not name.strip():
        raise CredentialError("name: must not be empty")
    cred.name = name.strip()
    set_values(cred, values)
    proto = cred.credential_type.prototype
    missing = [
        f.keyword for f in proto.fields if f.required and not _has_value(cred, f.keyword, f.default)
    ]
    if missing:
        raise CredentialError(f"credential {name!r}: required values missing: {', '.join(missing)}")
    db.session.flush()


def delete_credential(cred: Credential) -> None:
    """Delete a credential no RunTemplate uses (deleting it would silently unbind them)."""
    from multiflexi_web.models import RunTemplateCredential

    used = db.session.scalar(
        select(RunTemplateCredential.runtemplate_id)
        .where(RunTemplateCredential.credential_id == cred.id)
        .limit(1)
    )
    if used is not None:
        raise CredentialError(
            f"credential {cred.name!r}: used by RunTemplate {used}; unassign it first"
        )
    db.session.delete(cred)
    db.session.flush()


def delete_credential_type(ctype: CredentialType) -> None:
    in_use = db.session.scalar(
        select(Credential.id).where(Credential.credential_type_id == ctype.id).limit(1)
    )
    if in_use is not None:
        raise CredentialError(
            f"credential type {ctype.name!r}: still has credentials; delete them first"
        )
    db.session.delete(ctype)
    db.session.flush()
