"""Credential prototype and credential type JSON import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import CredentialPrototype, CredentialPrototypeField
from multiflexi_web.services.catalogue.credproto_import import (
    import_credproto_bytes,
    import_credproto_paths,
)
from multiflexi_web.services.catalogue.import_common import ImportResult
from tests.services import upstream_files

SHARED = upstream_files() / "credentials"
REAL = sorted(SHARED.glob("*.json"))
DATA = Path(__file__).parent / "data" / "credentials"


def import_one(path: Path) -> ImportResult:
    [result] = import_credproto_paths([path])
    db.session.commit()
    return result


def proto(code: str) -> CredentialPrototype:
    found = db.session.scalar(select(CredentialPrototype).where(CredentialPrototype.code == code))
    assert found is not None
    return found


def fields(code: str) -> dict[str, CredentialPrototypeField]:
    return {f.keyword: f for f in proto(code).fields}


def count(model: type[Any]) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def test_real_files_import(app: Flask) -> None:
    for path in REAL:
        result = import_one(path)
        assert result.status == "imported", result.error
        doc = json.loads(path.read_text(encoding="utf-8"))
        p = proto(doc["code"])
        assert p.uuid == doc["uuid"] and p.version == doc["version"], path.name
        is_type = path.name.endswith(".credtype.json")
        assert p.source_format == ("type" if is_type else "prototype")
        assert [f.keyword for f in p.fields] == [f["keyword"] for f in doc["fields"]]
        assert import_one(path).status == "updated"
        db.session.delete(p)
        db.session.commit()


def test_localized_names_and_secrets(app: Flask) -> None:
    import_one(SHARED / "abraflexi.credprototype.json")
    p = proto("AbraFlexi")
    assert p.name == "AbraFlexi" and p.description.startswith("AbraFlexi credential type")
    assert p.translations["description"]["cs"].startswith("Typ přihlašovacích")
    assert p.tags == ["AbraFlexi", "ERP", "accounting", "invoicing"]
    f = fields("AbraFlexi")
    assert f["ABRAFLEXI_PASSWORD"].secret and f["ABRAFLEXI_PASSWORD"].type == "password"
    assert not f["ABRAFLEXI_URL"].secret and f["ABRAFLEXI_URL"].type == "url"
    assert f["ABRAFLEXI_URL"].name == "AbraFlexi Server URI"
    assert f["ABRAFLEXI_URL"].translations["name"]["cs"] == "URI Serveru AbraFlexi"
    assert all(field.required for field in f.values())


def test_credential_type_updates_the_prototype_of_the_same_uuid(app: Flask) -> None:
    assert import_one(SHARED / "probe.multiflexi.credprototype.json").status == "imported"
    result = import_one(SHARED / "probe.multiflexi.credtype.json")
    assert result.status == "updated"
    assert count(CredentialPrototype) == 1
    p = proto("Probe")
    assert p.source_format == "type"
    f = fields("Probe")
    # credtype spells the secret type "secret" and integers "number".
    assert (f["PROBE_API_KEY"].type, f["PROBE_API_KEY"].secret) == ("password", True)
    assert (f["PROBE_TIMEOUT"].type, f["PROBE_TIMEOUT"].default) == ("integer", "30")
    assert f["PROBE_ENDPOINT"].default == "https://probe.example.com/api"


def test_every_prototype_field_type_is_normalised(app: Flask) -> None:
    result = import_one(DATA / "custom.credprototype.json")
    assert result.status == "imported" and result.warnings == []
    f = fields("CustomApi")
    assert {k: v.type for k, v in f.items()} == {
        "CUSTOM_URL": "url",
        "CUSTOM_TOKEN": "password",
        "CUSTOM_VERIFY": "bool",
        "CUSTOM_REGION": "set",
        "CUSTOM_NOTES": "text",
        "CUSTOM_KEYFILE": "file-path",
        "CUSTOM_PORT": "integer",
    }
    assert f["CUSTOM_TOKEN"].secret and f["CUSTOM_TOKEN"].hint == "starts with tk_"
    assert f["CUSTOM_REGION"].options == [
        {"value": "eu", "label": "Europe"},
        {"value": "us", "label": "USA"},
    ]
    assert (f["CUSTOM_REGION"].default, f["CUSTOM_PORT"].default) == ("eu", "443")
    p = proto("CustomApi")
    assert (p.logo, p.url, p.extra) == (
        "custom.svg",
        "https://example.com/custom",
        {"x-vendor": "acme"},
    )


def doc(**changes: Any) -> dict[str, Any]:
    base = json.loads((DATA / "custom.credprototype.json").read_text(encoding="utf-8"))
    base.update(changes)
    return base


def write(folder: Path, name: str, content: dict[str, Any]) -> Path:
    path = folder / name
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def test_reimport_updates_fields_in_place(app: Flask, tmp_path: Path) -> None:
    first = import_one(DATA / "custom.credprototype.json")
    changed = doc(version="2.0")
    changed["fields"] = [
        {"keyword": "CUSTOM_URL", "type": "string", "name": "URL"},
        {"keyword": "CUSTOM_NEW", "type": "email", "name": "Mail"},
    ]
    result = import_one(write(tmp_path, "c.credprototype.json", changed))
    assert (result.status, result.id) == ("updated", first.id)
    assert "version changed" in result.changes and "field CUSTOM_NEW added" in result.changes
    assert "field CUSTOM_TOKEN removed" in result.changes
    assert list(fields("CustomApi")) == ["CUSTOM_URL", "CUSTOM_NEW"]
    assert count(CredentialPrototypeField) == 2


def test_match_by_code_and_conflicts(app: Flask, tmp_path: Path) -> None:
    import_one(DATA / "custom.credprototype.json")
    moved = doc(uuid="0a0a0a0a-1b1b-4c2c-8d3d-4e4e4e4e4e4e")
    result = import_one(write(tmp_path, "moved.credprototype.json", moved))
    assert result.status == "updated" and "by code" in result.warnings[0]
    assert proto("CustomApi").uuid == "0a0a0a0a-1b1b-4c2c-8d3d-4e4e4e4e4e4e"

    import_one(SHARED / "mail.credprototype.json")
    clash = doc(uuid="0a0a0a0a-1b1b-4c2c-8d3d-4e4e4e4e4e4e", code="Mail")
    error = import_one(write(tmp_path, "clash.credprototype.json", clash)).error
    assert error and "$.code: 'Mail' already belongs to prototype" in error


SCHEMA_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    ({"code": None}, "c.credprototype.json", "$.code: None is not of type 'string'"),
    ({"code": "bad code!"}, "c.credprototype.json", "$.code: 'bad code!' does not match"),
    ({"uuid": "nope"}, "c.credprototype.json", "$.uuid: 'nope' does not match"),
    (
        {"fields": [{"keyword": "lower", "type": "string"}]},
        "c.credprototype.json",
        "$.fields[0].keyword: 'lower' does not match",
    ),
    (
        {"fields": [{"keyword": "A", "type": "magic"}]},
        "c.credprototype.json",
        "$.fields[0].type: 'magic' is not one of",
    ),
    ({"logo": "x"}, "c.credtype.json", "not a valid credential type: $: Additional properties"),
]


def test_schema_errors(app: Flask, tmp_path: Path) -> None:
    for content, name, expected in SCHEMA_ERRORS:
        result = import_one(write(tmp_path, name, doc(**content)))
        assert result.failed and result.error and expected in result.error, expected
        assert result.error.startswith(str(tmp_path / name))
    assert count(CredentialPrototype) == 0


def test_duplicate_keyword_and_missing_code(app: Flask, tmp_path: Path) -> None:
    twice = doc(fields=[{"keyword": "A", "type": "string"}, {"keyword": "A", "type": "url"}])
    error = import_one(write(tmp_path, "t.credprototype.json", twice)).error
    assert error and "$.fields[1].keyword: 'A' given twice" in error
    error = import_one(DATA / "broken-missing-code.credprototype.json").error
    assert error and "$: 'code' is a required property" in error
    assert count(CredentialPrototype) == 0


def test_folder_and_bytes(app: Flask, tmp_path: Path) -> None:
    write(tmp_path, "a.credprototype.json", doc())
    (tmp_path / "b.credprototype.json").write_bytes(b"\xff\xfe{}")
    results = import_credproto_paths([tmp_path])
    db.session.commit()
    assert [r.status for r in results] == ["imported", "failed"]
    assert results[1].error and "not UTF-8" in results[1].error
    assert count(CredentialPrototype) == 1
    upload = import_credproto_bytes(
        "up.credtype.json", (SHARED / "probe.multiflexi.credtype.json").read_bytes()
    )
    assert upload.status == "imported" and proto("Probe").source_format == "type"
