"""The application schema as this importer applies it, and the legacy spellings it accepts."""

from __future__ import annotations

from functools import cache
from typing import Any

from jsonschema import Draft7Validator

from multiflexi_web.services.catalogue.import_common import normalise_type
from multiflexi_web.services.catalogue.json_load import load_schema, make_validator, schema_copy

# Real files use keys such as "BANKA+"; execve only forbids '=' and NUL in a variable name.
ENV_KEY = {"pattern": "^[^=\x00]+$", "maxLength": 128}


@cache
def app_validator() -> Draft7Validator:
    """Upstream's schema, tightened where it leaves holes this importer would fall into."""
    schema = schema_copy("application")
    props = schema["properties"]
    env = props["environment"]
    field = next(iter(env["patternProperties"].values()))
    # Upstream checks only upper-case keys; every key becomes an environment variable.
    env["additionalProperties"] = field
    env["propertyNames"] = ENV_KEY
    for key in ("name", "note"):
        field["properties"][key] = {"type": "string"}
    for key in ("secret", "multiline", "expiring"):
        field["properties"][key] = {"type": "boolean"}
    # Keys upstream reads although its schema does not list them.
    for key in ("cmdparams", "setup", "deploy"):
        props[key] = {"type": "string"}
    props["topics"] = props["tags"]
    # The executor matches artifact paths as regular expressions.
    props["artifacts"]["items"]["properties"]["path"]["format"] = "regex"
    return make_validator(schema)


@cache
def _language_keys() -> frozenset[str]:
    localized_object = load_schema("application")["$defs"]["localizedString"]["oneOf"][1]
    return frozenset(localized_object["properties"])


def normalise_legacy(doc: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """A copy of the document with legacy spellings turned into the current ones."""
    doc = dict(doc)
    _rename_list(doc, "topics", "tags", warnings)
    for key in ("requirements", "tags"):
        if isinstance(doc.get(key), str):
            doc[key] = [p.strip() for p in doc[key].split(",") if p.strip()]
            warnings.append(f"{key} given as a comma-separated string; read as a list")
    if "exitcodes" in doc:
        _legacy_exit_codes(doc, warnings)
    if isinstance(doc.get("environment"), dict):
        doc["environment"] = {
            key: _field_type(key, spec, warnings) for key, spec in doc["environment"].items()
        }
    return doc


def _rename_list(doc: dict[str, Any], old: str, new: str, warnings: list[str]) -> None:
    if old not in doc:
        return
    if new in doc:
        warnings.append(f"both '{new}' and legacy '{old}' given; '{old}' kept as an extra key")
        return
    doc[new] = doc.pop(old)
    warnings.append(f"legacy key '{old}' read as '{new}'")


def _legacy_exit_codes(doc: dict[str, Any], warnings: list[str]) -> None:
    if "exitCodes" in doc:
        warnings.append(
            "both 'exitCodes' and misspelt 'exitcodes' given; 'exitcodes' kept as extra"
        )
        return
    legacy = doc.pop("exitcodes")
    warnings.append("misspelt key 'exitcodes' read as 'exitCodes'")
    if isinstance(legacy, dict):
        legacy = {code: _exit_code_entry(code, entry) for code, entry in legacy.items()}
    doc["exitCodes"] = legacy


def _exit_code_entry(code: str, entry: Any) -> Any:
    """Old files map a code straight to its (localized) text; give it the current shape."""
    if isinstance(entry, str) or (
        isinstance(entry, dict) and entry and set(entry) <= _language_keys()
    ):
        return {"description": entry, "severity": "success" if code == "0" else "error"}
    return entry


def _field_type(key: str, spec: Any, warnings: list[str]) -> Any:
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        return spec
    raw = spec["type"]
    canonical, known = normalise_type(raw)
    if canonical == raw:
        return spec
    if known:
        warnings.append(f"environment {key}: legacy type {raw!r} read as {canonical!r}")
    else:
        warnings.append(f"environment {key}: unknown type {raw!r} stored as 'string'")
    return {**spec, "type": canonical}
