"""Exporting an Application as MultiFlexi application JSON that re-imports to the same app."""

from __future__ import annotations

import json
from typing import Any

from multiflexi_web.models import AppExitCode, AppField, Application, FieldType
from multiflexi_web.services.catalogue.app_schema import app_validator
from multiflexi_web.services.catalogue.fields import is_secret_field
from multiflexi_web.services.catalogue.import_common import default_text, localized_out
from multiflexi_web.services.catalogue.json_load import FileImportError, validate

SCHEMA_URL = (
    "https://raw.githubusercontent.com/VitexSoftware/php-vitexsoftware-multiflexi-core"
    "/refs/heads/main/schema/application.json"
)
# Column -> file key, in the order they are written after name/title/description.
PLAIN_KEYS = [
    ("version", "version"),
    ("homepage", "homepage"),
    ("icon", "image"),
    ("executable", "executable"),
    ("cmdparams", "cmdparams"),
    ("cmdparams_template", "cmdparamsTemplate"),
    ("setup", "setup"),
    ("deploy", "deploy"),
    ("ociimage", "ociimage"),
]
BLOCK_KEYS = [("produces", "produces"), ("consumes", "consumes"), ("events", "events")]
# Keys of AppField.extra that hold originals of modelled keys, not extra keys of the file.
FIELD_ORIGINALS = {"description", "hint", "defval"}


class AppExportError(ValueError):
    """The application cannot be written as a valid definition; the message says where."""


def export_app(app: Application) -> dict[str, Any]:
    """The application as a definition document, checked against the schema."""
    doc = app_document(app)
    try:
        validate(f"application {app.uuid}", doc, app_validator(), "application definition")
    except FileImportError as exc:
        raise AppExportError(str(exc)) from None
    return doc


def app_document(app: Application) -> dict[str, Any]:
    """The application as a definition document, unchecked (the portal's editor starts here)."""
    translations = app.translations or {}
    doc: dict[str, Any] = {"$schema": SCHEMA_URL}
    _put(doc, "schemaVersion", app.schema_version)
    doc["uuid"] = app.uuid
    doc["name"] = localized_out(app.name, translations.get("name"))
    if app.title is not None:
        doc["title"] = localized_out(app.title, translations.get("title"))
    doc["description"] = localized_out(app.description, translations.get("description"))
    for column, key in PLAIN_KEYS:
        _put(doc, key, getattr(app, column))
    for key in ("requirements", "tags", "artifacts"):
        if getattr(app, key):
            doc[key] = getattr(app, key)
    doc["environment"] = {f.keyname: _field(f) for f in sorted(app.fields, key=_position)}
    if app.exit_codes:
        codes = sorted(app.exit_codes, key=lambda c: c.code)
        doc["exitCodes"] = {str(c.code): _exit_code(c) for c in codes}
    for column, key in BLOCK_KEYS:
        _put(doc, key, getattr(app, column))
    _put(doc, "kubernetes", app.kubernetes)
    for key, value in (app.extra or {}).items():
        doc.setdefault(key, value)
    return doc


def export_app_json(app: Application, *, secret_defaults: bool = True) -> str:
    """The definition as a file; without `secret_defaults`, secret fields' defaults are left
    out (a user below global administrator exports it: those are the platform's secrets)."""
    doc = export_app(app)
    if not secret_defaults:
        for f in app.fields:
            if is_secret_field(f):
                doc["environment"][f.keyname].pop("defval", None)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _put(doc: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        doc[key] = value


def _position(f: AppField) -> tuple[int, str]:
    return (f.position, f.keyname)


def _field(f: AppField) -> dict[str, Any]:
    extra = f.extra or {}
    out: dict[str, Any] = {"type": f.type}
    _put(out, "name", f.name)
    out["description"] = localized_out(f.description, extra.get("description"))
    if f.hint is not None:
        out["hint"] = localized_out(f.hint, extra.get("hint"))
    if f.default is not None:
        original = extra.get("defval")
        keep = "defval" in extra and default_text(original) == f.default
        out["defval"] = original if keep else f.default
    out["required"] = f.required
    if f.secret and f.type != FieldType.PASSWORD.value:
        out["secret"] = True
    if f.multiline != (f.type == FieldType.TEXT.value):
        out["multiline"] = f.multiline
    if f.expiring:
        out["expiring"] = True
    for key in ("options", "category", "note"):
        _put(out, key, getattr(f, key))
    for key, value in extra.items():
        if key not in FIELD_ORIGINALS:
            out.setdefault(key, value)
    return out


def _exit_code(c: AppExitCode) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": localized_out(c.description, (c.translations or {}).get("description")),
        "severity": c.severity,
    }
    _put(out, "retry", c.retry)
    return out
