"""Upstream `apps` and their tables (conffield, app_exit_codes, app_artifacts, app_translations,
app_produces, app_consumes) -> an app definition document, imported by our own app importer, so
an application moved in is checked exactly as an imported JSON file is."""

from __future__ import annotations

import json
from typing import Any

from multiflexi_web.services.catalogue.app_import import import_app_document
from multiflexi_web.services.catalogue.import_common import ImportResult
from multiflexi_web.services.upstream_import.context import Context, Refused, outcome
from multiflexi_web.services.upstream_import.reader import Row, csv_list, flag, text_of

FIELD_FLAGS = ("required", "secret", "multiline", "expiring")
# What upstream's own exporter writes as `$schema`; the document is checked against it.
SCHEMA_URL = (
    "https://raw.githubusercontent.com/VitexSoftware/php-vitexsoftware-multiflexi-core/"
    "refs/heads/main/schema/application.json"
)


class AppTables:
    """Upstream's per-app tables, read once and grouped by app id."""

    def __init__(self, ctx: Context) -> None:
        self.fields = ctx.grouped("conffield", "app_id")
        self.codes = ctx.grouped("app_exit_codes", "app_id")
        self.artifacts = ctx.grouped("app_artifacts", "app_id")
        self.artifact_tr = ctx.grouped("app_artifact_translations", "app_artifact_id")
        self.translations = ctx.grouped("app_translations", "app_id")
        self.produces = ctx.grouped("app_produces", "app_id")
        self.consumes = ctx.grouped("app_consumes", "app_id")


def import_apps(ctx: Context) -> None:
    tables = AppTables(ctx)
    ctx.each("apps", ctx.reader.rows("apps"), lambda r: _app(ctx, tables, r))


def _app(ctx: Context, t: AppTables, row: Row) -> str:
    doc = app_document(t, row)
    result = ImportResult(file=f"upstream apps #{row['id']}", kind="application")
    app = import_app_document(result.file, doc, result)
    enabled = flag(row["enabled"]) if row.get("enabled") is not None else app.enabled
    toggled = app.enabled != enabled
    app.enabled = enabled
    ctx.ids.put("apps", row["id"], app.id, app.uuid)
    for warning in result.warnings:
        ctx.report.note(f"apps #{row['id']} ({app.name}): {warning}")
    return outcome(result.status == "imported", bool(result.changes) or toggled)


def app_document(t: AppTables, row: Row) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "$schema": SCHEMA_URL,
        "name": _localized(text_of(row.get("name")), t.translations.get(row["id"], []), "name"),
        "description": _localized(
            text_of(row.get("description")), t.translations.get(row["id"], []), "description"
        ),
        "executable": text_of(row.get("executable")),
        "environment": {f["keyname"]: _field(f) for f in t.fields.get(row["id"], [])},
    }
    for key in ("cmdparams", "setup", "deploy", "homepage", "version", "ociimage"):
        if row.get(key):
            doc[key] = text_of(row[key])
    if row.get("uuid"):
        doc["uuid"] = text_of(row["uuid"]).strip()
    if row.get("image"):
        doc["image"] = text_of(row["image"])
    doc["requirements"] = csv_list(row.get("requirements"))
    doc["tags"] = csv_list(row.get("tags") or row.get("topics"))  # topics before 2026-04
    if row.get("helmchart"):
        doc["kubernetes"] = {"helm": {"enabled": True, "chart": text_of(row["helmchart"])}}
    declared = t.artifacts.get(row["id"], [])
    artifacts = [_artifact(a, t.artifact_tr.get(a["id"], [])) for a in declared]
    if artifacts:
        doc["artifacts"] = artifacts
    codes = _exit_codes(t.codes.get(row["id"], []))
    if codes:
        doc["exitCodes"] = codes
    produces = {p["name"]: _produce(p) for p in t.produces.get(row["id"], [])}
    consumes = {c["name"]: _consume(c) for c in t.consumes.get(row["id"], [])}
    if produces:
        doc["produces"] = produces
    if consumes:
        doc["consumes"] = consumes
    return doc


def _localized(default: str, translations: list[Row], key: str) -> Any:
    """The English text, or {lang: text} when upstream kept other languages too."""
    by_lang = {text_of(t.get("lang")): text_of(t.get(key)) for t in translations if t.get(key)}
    if not by_lang:
        return default
    return {"en": default, **by_lang} if default else by_lang


def _field(row: Row) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": text_of(row.get("type")) or "string"}
    for key in ("description", "hint", "note", "category", "name"):
        if row.get(key):
            spec[key] = text_of(row[key])
    if row.get("defval") is not None:
        spec["defval"] = text_of(row["defval"])
    for key in FIELD_FLAGS:
        if key in row and row[key] is not None:
            spec[key] = flag(row[key])
    return spec


def _artifact(row: Row, translations: list[Row]) -> dict[str, Any]:
    path = text_of(row.get("path"))
    art: dict[str, Any] = {
        "name": _localized("", translations, "name") or path,
        "path": path,
        "type": text_of(row.get("type")) or "file",
    }
    description = _localized("", translations, "description")
    if description:
        art["description"] = description
    return art


def _exit_codes(rows: list[Row]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in rows:
        code = out.setdefault(str(int(row["exit_code"])), {"description": {}})
        code["description"][text_of(row.get("lang")) or "en"] = text_of(row.get("description"))
        code["severity"] = text_of(row.get("severity")) or "error"
        if row.get("retry") is not None:
            code["retry"] = flag(row["retry"])
    for code in out.values():
        if list(code["description"]) == ["en"]:
            code["description"] = code["description"]["en"]
    return out


def _json(row: Row, key: str, default: Any) -> Any:
    raw = row.get(key)
    if raw is None or raw == "":
        return default
    try:
        return json.loads(text_of(raw))
    except ValueError:
        raise Refused(f"{row.get('name')}.{key}: broken JSON") from None


def _produce(row: Row) -> dict[str, Any]:
    spec: dict[str, Any] = {"format": text_of(row.get("format")) or "json"}
    for key, col in (("description", "description_json"), ("patterns", "patterns_json")):
        value = _json(row, col, None)
        if value is not None:
            spec[key] = value
    fields = _json(row, "fields_json", None)
    if fields is not None:
        spec["fields"] = fields
    return spec


def _consume(row: Row) -> dict[str, Any]:
    spec: dict[str, Any] = {"format": text_of(row.get("format")) or "json"}
    description = _json(row, "description_json", None)
    if description is not None:
        spec["description"] = description
    if row.get("required") is not None:
        spec["required"] = flag(row["required"])
    if row.get("target_env_key"):
        spec["target"] = text_of(row["target_env_key"])
    fields = _json(row, "fields_json", None)
    if fields is not None:
        spec["fields"] = fields
    return spec
