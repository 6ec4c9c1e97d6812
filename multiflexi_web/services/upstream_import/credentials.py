"""Upstream credential prototypes, company credential types and credentials (credata values
decrypted from upstream's envelopes, re-encrypted with ours)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Credential, CredentialPrototype, CredentialType, CredentialValue
from multiflexi_web.security.secrets import cipher, reveal
from multiflexi_web.security.upstream_envelope import looks_encrypted
from multiflexi_web.services.catalogue.credproto_import import import_credproto_document
from multiflexi_web.services.catalogue.fields import is_secret_field, is_secret_name
from multiflexi_web.services.catalogue.import_common import ImportResult
from multiflexi_web.services.upstream_import.context import Context, Refused, apply, outcome
from multiflexi_web.services.upstream_import.reader import Row, csv_list, flag, text_of

# Prototypes upstream has only as PHP classes get a uuid derived from their code.
CLASS_NAMESPACE = uuid.UUID("6f0a3d1e-2c4b-4e8a-9d5f-1b7c3e9a2d40")
# Field types of upstream's tables -> the prototype format's.
PROTO_TYPES = {"bool": "boolean", "checkbox": "boolean", "text": "textarea", "set": "select"}
PROTO_TYPES |= {"file-path": "file", "secret": "password", "number": "integer", "float": "string"}
PROTO_ENUM = {"string", "password", "email", "url", "integer", "boolean", "select", "textarea"}
PROTO_ENUM |= {"file"}
SECRET_TYPES = {"password", "secret"}
VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?$")


def import_credentials(ctx: Context) -> None:
    proto_fields = ctx.grouped("credential_prototype_field", "credential_prototype_id")
    rows = ctx.reader.rows("credential_prototype")
    ctx.each("credential_prototype", rows, lambda r: _prototype(ctx, r, proto_fields[r["id"]]))
    type_fields = ctx.grouped("crtypefield", "credential_type_id")
    rows = ctx.reader.rows("credential_type")
    ctx.each("credential_type", rows, lambda r: _type(ctx, r, type_fields[r["id"]]))
    values = ctx.grouped("credata", "credential_id")
    rows = ctx.reader.rows("credentials")
    ctx.each("credentials", rows, lambda r: _credential(ctx, r, values[r["id"]]))


def _proto_field(row: Row, key_col: str, default_col: str) -> dict[str, Any]:
    raw_type = text_of(row.get("type")).strip().lower() or "string"
    ftype = PROTO_TYPES.get(raw_type, raw_type)
    field: dict[str, Any] = {
        "keyword": text_of(row.get(key_col)),
        "type": ftype if ftype in PROTO_ENUM else "string",
    }
    for key in ("name", "description", "hint"):
        if row.get(key):
            field[key] = text_of(row[key])
    if row.get(default_col) is not None:
        field["default_value"] = text_of(row[default_col])
    if row.get("required") is not None:
        field["required"] = flag(row["required"])
    if raw_type in SECRET_TYPES:
        field["secret"] = True
    options = row.get("options")
    if options:
        try:
            field["options"] = json.loads(text_of(options))
        except ValueError:
            raise Refused(f"field {field['keyword']}: options are broken JSON") from None
    return field


def _import_proto(ctx: Context, label: str, doc: dict[str, Any]) -> tuple[CredentialPrototype, str]:
    result = ImportResult(file=label, kind="credential-prototype")
    proto = import_credproto_document(label, doc, result)
    for warning in result.warnings:
        ctx.report.note(f"{label}: {warning}")
    return proto, outcome(result.status == "imported", bool(result.changes))


def _version(raw: Any) -> str:
    text = text_of(raw).strip()
    return text if VERSION_RE.match(text) else "1.0"


def _prototype(ctx: Context, row: Row, fields: list[Row]) -> str:
    doc: dict[str, Any] = {
        "uuid": text_of(row.get("uuid")).strip(),
        "code": text_of(row.get("code")).strip(),
        "name": text_of(row.get("name")).strip() or text_of(row.get("code")),
        "description": text_of(row.get("description")),
        "version": _version(row.get("version")),
        "tags": csv_list(row.get("tags")),
        "fields": [_proto_field(f, "keyword", "default_value") for f in fields],
    }
    for key in ("url", "homepage", "logo"):
        if row.get(key):
            doc[key] = text_of(row[key])
    label = f"upstream credential_prototype #{row['id']}"
    proto, result = _import_proto(ctx, label, doc)
    ctx.ids.put("credential_prototype", row["id"], proto.id, proto.uuid)
    return result


def _class_prototype(ctx: Context, code: str, fields: list[Row]) -> CredentialPrototype:
    """A prototype upstream knows only as a PHP class (AbraFlexi, Csas ...): made from the
    fields its first company type declares."""
    found = db.session.scalar(select(CredentialPrototype).where(CredentialPrototype.code == code))
    if found is not None:
        return found
    doc = {
        "uuid": str(uuid.uuid5(CLASS_NAMESPACE, code)),
        "code": code,
        "name": code,
        "version": "1.0",
        "fields": [_proto_field(f, "keyname", "defval") for f in fields],
    }
    proto, _ = _import_proto(ctx, f"upstream prototype class {code}", doc)
    ctx.report.note(
        f"credential prototype {code}: upstream has it as a class; made from its fields"
    )
    return proto


def _type(ctx: Context, row: Row, fields: list[Row]) -> str:
    company_id = ctx.our("company", row.get("company_id"), "company")
    code = text_of(row.get("prototype") or row.get("class")).strip()
    if not code:
        raise Refused("no prototype")
    proto = _class_prototype(ctx, code, fields)
    our_id = ctx.ids.get("credential_type", row["id"])
    ctype = db.session.get(CredentialType, our_id) if our_id else None
    created = ctype is None
    if ctype is None:
        ctype = CredentialType(company_id=company_id, prototype_id=proto.id)
        db.session.add(ctype)
    name = text_of(row.get("name")).strip() or proto.name
    changed = apply(ctype, {"company_id": company_id, "prototype_id": proto.id, "name": name})
    db.session.flush()
    ctx.ids.put("credential_type", row["id"], ctype.id, text_of(row.get("uuid")) or None)
    return outcome(created, changed)


def _legacy_type(company_id: int, code: str) -> CredentialType:
    """Old credentials name their prototype in formType and have no credential_type."""
    proto = db.session.scalar(select(CredentialPrototype).where(CredentialPrototype.code == code))
    if proto is None:
        raise Refused(f"formType {code!r}: no such credential prototype")
    return _own_type(company_id, proto.id)


def _own_type(company_id: int, prototype_id: int) -> CredentialType:
    """The company's credential type for a prototype, created on first use."""
    found = db.session.scalar(
        select(CredentialType).where(
            CredentialType.company_id == company_id, CredentialType.prototype_id == prototype_id
        )
    )
    if found is None:
        proto = db.session.get(CredentialPrototype, prototype_id)
        assert proto is not None  # noqa: S101 - the caller's row points at it
        found = CredentialType(company_id=company_id, prototype_id=proto.id, name=proto.name)
        db.session.add(found)
        db.session.flush()
    return found


def plain_values(ctx: Context, rows: list[Row]) -> dict[str, tuple[str, bool]]:
    """credata rows as {name: (plain value, was secret upstream)}; refused if one fails."""
    out: dict[str, tuple[str, bool]] = {}
    has_flag = "is_encrypted" in ctx.reader.columns("credata")
    for row in rows:
        name, value = text_of(row.get("name")), text_of(row.get("value"))
        encrypted = flag(row.get("is_encrypted")) if has_flag else looks_encrypted(value)
        if encrypted and value:
            try:
                value = ctx.keyring.decrypt(value)
            except ValueError as exc:
                raise Refused(f"value {name}: undecryptable, {exc}") from None
        secret = encrypted or text_of(row.get("type")).lower() in SECRET_TYPES
        out[name] = (value, secret)
    return out


def _credential(ctx: Context, row: Row, rows: list[Row]) -> str:
    company_id = ctx.our("company", row.get("company_id"), "company")
    if row.get("credential_type_id"):
        ctype_id = ctx.our("credential_type", row["credential_type_id"], "credential_type")
        ctype = db.session.get(CredentialType, ctype_id)
        if ctype is not None and ctype.company_id != company_id:
            # Upstream does not tie a credential's type to its company; here a company's
            # credentials hang off that company's own types only (a type another company can
            # rename or delete must not hold them).
            ctype = _own_type(company_id, ctype.prototype_id)
    else:
        ctype = _legacy_type(company_id, text_of(row.get("formType")).strip())
    assert ctype is not None  # noqa: S101 - mapped ids point at rows of this transaction
    values = plain_values(ctx, rows)
    our_id = ctx.ids.get("credentials", row["id"])
    cred = db.session.get(Credential, our_id) if our_id else None
    created = cred is None
    if cred is None:
        cred = Credential(company_id=company_id, credential_type_id=ctype.id)
        db.session.add(cred)
    name = text_of(row.get("name")).strip() or f"credential {row['id']}"
    changed = apply(cred, {"company_id": company_id, "credential_type_id": ctype.id, "name": name})
    db.session.flush()
    db.session.refresh(cred)
    changed |= _store_values(cred, values)
    db.session.flush()
    ctx.ids.put("credentials", row["id"], cred.id)
    return outcome(created, changed)


def _store_values(cred: Credential, values: dict[str, tuple[str, bool]]) -> bool:
    """Our values from upstream's plain ones: secret by our rule, or when upstream kept them
    secret; re-encrypted with our key. Values unchanged in plain text are left alone."""
    fields = {f.keyword: f for f in cred.credential_type.prototype.fields}
    existing = {v.key: v for v in cred.values}
    changed = False
    for key, (plain, was_secret) in values.items():
        secret = is_secret_field(fields.get(key)) or was_secret or is_secret_name(key)
        row = existing.get(key)
        if row is not None and row.secret == secret and reveal(row) == plain:
            continue
        stored = cipher().encrypt(plain) if secret else plain
        if row is None:
            cred.values.append(CredentialValue(key=key, value=stored, secret=secret))
        else:
            row.value, row.secret = stored, secret
        changed = True
    return changed
