"""Importing MultiFlexi application JSON (`*.multiflexi.app.json`) into Application rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import AppExitCode, AppField, Application, FieldType
from multiflexi_web.security.expressions import ExpressionError, check_patterns
from multiflexi_web.services.catalogue.app_schema import app_validator, normalise_legacy
from multiflexi_web.services.catalogue.import_common import (
    ImportResult,
    check_lengths,
    default_text,
    import_file,
    localized,
    run_imports,
)
from multiflexi_web.services.catalogue.json_load import (
    FileImportError,
    parse_json_bytes,
    read_json_file,
)
from multiflexi_web.services.catalogue.json_load import validate as validate_schema

KIND = "application"
DEMO_DIR = Path(__file__).resolve().parents[2] / "demo_apps"
# Namespace of the uuids given to files that have none, so re-importing finds the same app.
APP_NAMESPACE = uuid.UUID("0b1e8f0c-5d0a-4c57-9a43-6d2f0e3c7a10")
MAX_EXIT_CODE = 2**31 - 1
# File key -> Application column, for keys stored as they are.
PLAIN_KEYS = {
    "executable": "executable",
    "cmdparams": "cmdparams",
    "cmdparamsTemplate": "cmdparams_template",
    "setup": "setup",
    "deploy": "deploy",
    "homepage": "homepage",
    "version": "version",
    "schemaVersion": "schema_version",
    "ociimage": "ociimage",
    "image": "icon",
    "produces": "produces",
    "consumes": "consumes",
    "kubernetes": "kubernetes",
    "events": "events",
}
MODELLED_KEYS = {*PLAIN_KEYS, "uuid", "name", "title", "description", "requirements", "tags"}
MODELLED_KEYS |= {"artifacts", "environment", "exitCodes"}
FIELD_KEYS = {"type", "description", "hint", "defval", "required", "secret", "options"}
FIELD_KEYS |= {"category", "name", "note", "multiline", "expiring"}


def import_app_paths(paths: Iterable[str | Path]) -> list[ImportResult]:
    """Import files and folders of app JSON; one result per file. The caller commits."""
    return run_imports(paths, KIND, _import_path)


def import_app_bytes(name: str, data: bytes) -> ImportResult:
    """Import uploaded JSON (the portal's import form); `name` is shown in messages."""

    def one(_path: Path, result: ImportResult) -> None:
        import_app_document(name, parse_json_bytes(name, data), result)

    return import_file(Path(name), KIND, one)


def import_demo_apps() -> list[ImportResult]:
    """Import the bundled demo applications; running it again updates them in place."""
    return import_app_paths([DEMO_DIR])


def _import_path(path: Path, result: ImportResult) -> None:
    import_app_document(str(path), read_json_file(path), result)


def import_app_document(name: str, raw: dict[str, Any], result: ImportResult) -> Application:
    """Validate a parsed document and create or update its application (add + flush)."""
    doc = normalise_legacy(raw, result.warnings)
    validate_schema(name, doc, app_validator(), "MultiFlexi application definition")
    values = _columns(name, doc)
    _check_artifact_patterns(name, values["artifacts"])
    app = _find_or_create(doc, values["name"], result)
    result.changes += _apply(app, values)
    result.changes += _sync_fields(app, name, doc["environment"])
    result.changes += _sync_exit_codes(app, name, doc.get("exitCodes") or {})
    app.source_file = name[-1024:]
    db.session.flush()
    result.id, result.name, result.uuid = app.id, app.name, app.uuid
    return app


def _columns(name: str, doc: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {col: doc.get(key) for key, col in PLAIN_KEYS.items()}
    translations: dict[str, Any] = {}
    for key in ("name", "title", "description"):
        text, originals = localized(doc.get(key))
        values[key] = text if key in doc else None
        if originals:
            translations[key] = originals
    values["description"] = values["description"] or ""
    values["translations"] = translations
    values["requirements"] = list(doc.get("requirements") or [])
    values["tags"] = list(doc.get("tags") or [])
    values["artifacts"] = list(doc.get("artifacts") or [])
    values["extra"] = {k: v for k, v in doc.items() if k not in MODELLED_KEYS and k[:1] != "$"}
    for key in ("name", "executable"):
        if not values[key].strip():
            raise FileImportError(f"{name}: $.{key}: must not be empty")
    check_lengths(Application, values, f"{name}: $")
    return values


def _check_artifact_patterns(name: str, artifacts: list[dict[str, Any]]) -> None:
    """The executor matches artifact paths with RE2: refuse now what it could not compile."""
    for i, art in enumerate(artifacts):
        try:
            check_patterns([str(art.get("path") or "")], f"$.artifacts[{i}].path")
        except ExpressionError as exc:
            raise FileImportError(f"{name}: {exc}") from None


def _find_or_create(doc: dict[str, Any], name: str, result: ImportResult) -> Application:
    if "uuid" in doc:
        ident = str(uuid.UUID(doc["uuid"]))
        found = db.session.scalar(select(Application).where(Application.uuid == ident))
        return _updated(found, result) if found else _new_app(ident, result)
    by_name = db.session.scalars(
        select(Application).where(Application.name == name).order_by(Application.id)
    ).first()
    if by_name is not None:
        result.warnings.append(f"no uuid in the file: matched application {by_name.uuid} by name")
        return _updated(by_name, result)
    ident = str(uuid.uuid5(APP_NAMESPACE, name))
    result.warnings.append(f"no uuid in the file: uuid {ident} derived from the name")
    found = db.session.scalar(select(Application).where(Application.uuid == ident))
    return _updated(found, result) if found else _new_app(ident, result)


def _new_app(ident: str, result: ImportResult) -> Application:
    app = Application(uuid=ident)
    db.session.add(app)
    result.status = "imported"
    return app


def _updated(app: Application, result: ImportResult) -> Application:
    result.status = "updated"
    return app


def _apply(app: Application, values: dict[str, Any]) -> list[str]:
    if app.id is None:
        for key, value in values.items():
            setattr(app, key, value)
        return []
    changed = [key for key, value in values.items() if getattr(app, key) != value]
    for key in changed:
        setattr(app, key, values[key])
    return [f"{key} changed" for key in changed]


def _field_values(name: str, key: str, spec: dict[str, Any], position: int) -> dict[str, Any]:
    ftype = spec.get("type", FieldType.STRING.value)
    description, description_tr = localized(spec.get("description", ""))
    hint, hint_tr = localized(spec["hint"]) if "hint" in spec else (None, None)
    extra = {k: v for k, v in spec.items() if k not in FIELD_KEYS}
    # Originals kept beside the columns so export gives back what the file said.
    if description_tr:
        extra["description"] = description_tr
    if hint_tr:
        extra["hint"] = hint_tr
    if spec.get("defval") is not None and not isinstance(spec["defval"], str):
        extra["defval"] = spec["defval"]
    values = {
        "type": ftype,
        "name": spec.get("name"),
        "description": description,
        "hint": hint,
        "note": spec.get("note"),
        "default": default_text(spec.get("defval")),
        "required": spec.get("required", False),
        "secret": spec.get("secret", False) or ftype == FieldType.PASSWORD.value,
        "multiline": spec.get("multiline", ftype == FieldType.TEXT.value),
        "expiring": spec.get("expiring", False),
        "options": spec.get("options"),
        "category": spec.get("category"),
        "position": position,
        "extra": extra,
    }
    check_lengths(AppField, values, f"{name}: $.environment.{key}")
    return values


def _sync_fields(app: Application, name: str, env: dict[str, Any]) -> list[str]:
    """Update fields in place by keyname; the ones the file no longer has are deleted."""
    existing = {f.keyname: f for f in app.fields}
    kept: list[AppField] = []
    changes: list[str] = []
    for position, (key, spec) in enumerate(env.items()):
        values = _field_values(name, key, spec, position)
        field = existing.pop(key, None)
        if field is None:
            field = AppField(keyname=key)
            changes.append(f"field {key} added")
        elif any(getattr(field, k) != v for k, v in values.items()):
            changes.append(f"field {key} changed")
        for k, v in values.items():
            setattr(field, k, v)
        kept.append(field)
    changes += [f"field {key} removed" for key in existing]
    app.fields = kept
    return changes if app.id is not None else []


def _exit_code_values(name: str, code: str, spec: dict[str, Any]) -> dict[str, Any]:
    if int(code) > MAX_EXIT_CODE:
        raise FileImportError(f"{name}: $.exitCodes.{code}: exit code out of range")
    description, originals = localized(spec["description"])
    return {
        "code": int(code),
        "description": description,
        "severity": spec.get("severity", "error"),
        "retry": spec.get("retry"),
        "translations": {"description": originals} if originals else {},
    }


def _sync_exit_codes(app: Application, name: str, codes: dict[str, Any]) -> list[str]:
    """Replace the exit codes, reusing rows by code (the code is unique per application)."""
    existing = {c.code: c for c in app.exit_codes}
    before = {c.code: _exit_snapshot(c) for c in app.exit_codes}
    rows: list[AppExitCode] = []
    for code, spec in sorted(codes.items(), key=lambda item: int(item[0])):
        values = _exit_code_values(name, code, spec)
        if any(r.code == values["code"] for r in rows):
            raise FileImportError(f"{name}: $.exitCodes.{code}: exit code given twice")
        row = existing.pop(values["code"], None) or AppExitCode(code=values["code"])
        for k, v in values.items():
            setattr(row, k, v)
        rows.append(row)
    app.exit_codes = rows
    after = {c.code: _exit_snapshot(c) for c in rows}
    return ["exit codes replaced"] if app.id is not None and before != after else []


def _exit_snapshot(row: AppExitCode) -> tuple[Any, ...]:
    return (row.description, row.severity, row.retry, row.translations)
