"""Importing credential prototype (`*.credprototype.json`) and credential type (`*.credtype.json`)
files into CredentialPrototype rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import CredentialPrototype, CredentialPrototypeField, FieldType
from multiflexi_web.services.catalogue.import_common import (
    ImportResult,
    check_lengths,
    default_text,
    import_file,
    localized,
    normalise_type,
    run_imports,
)
from multiflexi_web.services.catalogue.json_load import (
    FileImportError,
    load_schema,
    make_validator,
    parse_json_bytes,
    read_json_file,
    schema_copy,
    validate,
)

KIND = "credential-prototype"
PROTOTYPE, TYPE = "prototype", "type"
TOP_KEYS = {"uuid", "code", "name", "description", "version", "logo", "url", "homepage", "tags"}
TOP_KEYS |= {"fields"}
TYPE_LACKS = ("logo", "url", "homepage", "tags")
FIELD_KEYS = {"keyword", "type", "name", "description", "hint", "default", "default_value"}
FIELD_KEYS |= {"required", "options", "secret"}


def import_credproto_paths(paths: Iterable[str | Path]) -> list[ImportResult]:
    """Import prototype/type files and folders of them; one result per file. Caller commits."""
    return run_imports(paths, KIND, _import_path)


def import_credproto_bytes(name: str, data: bytes) -> ImportResult:
    def one(_path: Path, result: ImportResult) -> None:
        import_credproto_document(name, parse_json_bytes(name, data), result)

    return import_file(Path(name), KIND, one)


def _import_path(path: Path, result: ImportResult) -> None:
    import_credproto_document(str(path), read_json_file(path), result)


def file_format(name: str, doc: dict[str, Any]) -> str:
    """'type' for credential type files (by name, else by their $schema), else 'prototype'."""
    if name.endswith(".credtype.json"):
        return TYPE
    if name.endswith(".credprototype.json"):
        return PROTOTYPE
    return TYPE if "credential-type" in str(doc.get("$schema", "")) else PROTOTYPE


@cache
def _validator(fmt: str) -> Draft7Validator:
    return make_validator(_type_schema() if fmt == TYPE else _prototype_schema())


def _type_schema() -> dict[str, Any]:
    """Upstream's own credtype files carry $schema, which its schema forbids."""
    schema = schema_copy("credential-type")
    props = schema["properties"]
    props["$schema"] = {"type": "string"}
    props["uuid"]["format"] = "uuid"
    props["code"]["pattern"] = "^[a-zA-Z0-9_-]{2,64}$"
    return schema


def _prototype_schema() -> dict[str, Any]:
    """Upstream's own prototype files localize name/description/hint; its schema says string."""
    schema = schema_copy("credential-prototype")
    schema["$defs"] = {"localizedString": load_schema("application")["$defs"]["localizedString"]}
    ref = {"$ref": "#/$defs/localizedString"}
    schema["properties"]["name"] = schema["properties"]["description"] = ref
    fields = schema["properties"]["fields"]["items"]["properties"]
    for key in ("name", "description", "hint"):
        fields[key] = ref
    fields["secret"] = {"type": "boolean"}
    return schema


def import_credproto_document(
    name: str, doc: dict[str, Any], result: ImportResult
) -> CredentialPrototype:
    """Validate a parsed document and create or update its prototype (add + flush)."""
    fmt = file_format(name, doc)
    what = "credential type" if fmt == TYPE else "credential prototype"
    validate(name, doc, _validator(fmt), what)
    values = _columns(name, doc, fmt)
    proto = _find_or_create(name, values, result)
    changed = [k for k, v in values.items() if getattr(proto, k) != v]
    for key, value in values.items():
        setattr(proto, key, value)
    result.changes = [f"{k} changed" for k in changed] if result.status == "updated" else []
    result.changes += _sync_fields(proto, name, doc.get("fields") or [], result)
    db.session.flush()
    result.id, result.name, result.uuid = proto.id, proto.code, proto.uuid
    return proto


def _columns(name: str, doc: dict[str, Any], fmt: str) -> dict[str, Any]:
    text, name_tr = localized(doc["name"])
    description, description_tr = localized(doc.get("description", ""))
    values: dict[str, Any] = {key: doc.get(key) for key in ("version", "logo", "url", "homepage")}
    values |= {
        "uuid": str(uuid.UUID(doc["uuid"])),
        "code": doc["code"],
        "name": text,
        "description": description,
        "tags": list(doc.get("tags") or []),
        "source_format": fmt,
        "translations": {
            k: v for k, v in (("name", name_tr), ("description", description_tr)) if v
        },
        "extra": {k: v for k, v in doc.items() if k not in TOP_KEYS and k[:1] != "$"},
    }
    if fmt == TYPE:
        # The type format cannot carry these: keep what a prototype file gave the same row.
        for key in TYPE_LACKS:
            del values[key]
    if not text.strip():
        raise FileImportError(f"{name}: $.name: must not be empty")
    check_lengths(CredentialPrototype, values, f"{name}: $")
    return values


def _find_or_create(name: str, values: dict[str, Any], result: ImportResult) -> CredentialPrototype:
    """Upsert by uuid, then by code; a uuid and a code naming two different rows is refused."""
    by_uuid = db.session.scalar(
        select(CredentialPrototype).where(CredentialPrototype.uuid == values["uuid"])
    )
    by_code = db.session.scalar(
        select(CredentialPrototype).where(CredentialPrototype.code == values["code"])
    )
    if by_uuid is not None and by_code is not None and by_uuid is not by_code:
        raise FileImportError(
            f"{name}: $.code: {values['code']!r} already belongs to prototype {by_code.uuid}, "
            f"not to {values['uuid']}"
        )
    found = by_uuid or by_code
    if found is None:
        result.status = "imported"
        found = CredentialPrototype()
        db.session.add(found)
        return found
    if by_uuid is None:
        result.warnings.append(f"matched prototype {values['code']!r} by code; its uuid changes")
    result.status = "updated"
    return found


def _field_values(
    name: str, index: int, spec: dict[str, Any], result: ImportResult
) -> dict[str, Any]:
    where = f"{name}: $.fields[{index}]"
    ftype, known = normalise_type(spec["type"])
    if not known:
        result.warnings.append(
            f"{spec['keyword']}: unknown type {spec['type']!r} stored as 'string'"
        )
    label, name_tr = localized(spec.get("name")) if "name" in spec else (None, None)
    description, description_tr = localized(spec.get("description", ""))
    hint, hint_tr = localized(spec["hint"]) if "hint" in spec else (None, None)
    ignored = sorted(set(spec) - FIELD_KEYS)
    if ignored:
        result.warnings.append(f"{spec['keyword']}: keys {', '.join(ignored)} ignored")
    pairs = (("name", name_tr), ("description", description_tr), ("hint", hint_tr))
    values = {
        "keyword": spec["keyword"],
        "type": ftype,
        "name": label,
        "description": description,
        "hint": hint,
        "default": default_text(spec.get("default_value", spec.get("default"))),
        "required": spec.get("required", False),
        "secret": spec.get("secret", False) or ftype == FieldType.PASSWORD.value,
        "options": spec.get("options"),
        "position": index,
        "translations": {k: v for k, v in pairs if v},
    }
    check_lengths(CredentialPrototypeField, values, where)
    return values


def _sync_fields(
    proto: CredentialPrototype, name: str, specs: list[dict[str, Any]], result: ImportResult
) -> list[str]:
    """Update fields in place by keyword; the ones the file no longer has are deleted."""
    existing = {f.keyword: f for f in proto.fields}
    kept: list[CredentialPrototypeField] = []
    changes: list[str] = []
    for index, spec in enumerate(specs):
        keyword = spec["keyword"]
        if any(f.keyword == keyword for f in kept):
            raise FileImportError(f"{name}: $.fields[{index}].keyword: {keyword!r} given twice")
        values = _field_values(name, index, spec, result)
        field = existing.pop(keyword, None)
        if field is None:
            field = CredentialPrototypeField(keyword=keyword)
            changes.append(f"field {keyword} added")
        elif any(getattr(field, k) != v for k, v in values.items()):
            changes.append(f"field {keyword} changed")
        for key, value in values.items():
            setattr(field, key, value)
        kept.append(field)
    changes += [f"field {keyword} removed" for keyword in existing]
    proto.fields = kept
    return changes if result.status == "updated" else []
