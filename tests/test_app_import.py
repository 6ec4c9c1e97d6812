"""Application JSON import and export: real upstream files, round trips, broken inputs."""

from __future__ import annotations

import copy
import json
import random
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from jsonschema import Draft7Validator
from sqlalchemy import func, inspect, select

from multiflexi_web.extensions import db
from multiflexi_web.models import AppExitCode, AppField, Application
from multiflexi_web.security.expressions import check_patterns
from multiflexi_web.services.catalogue.app_export import AppExportError, export_app
from multiflexi_web.services.catalogue.app_import import (
    DEMO_DIR,
    import_app_bytes,
    import_app_paths,
    import_demo_apps,
)
from multiflexi_web.services.catalogue.app_schema import app_validator
from multiflexi_web.services.catalogue.import_common import ImportResult
from multiflexi_web.services.catalogue.json_load import load_schema
from tests.services import upstream_files

SHARED = upstream_files()
REAL_APPS = sorted((SHARED / "apps").glob("*.json"))
DATA = Path(__file__).parent / "data"
FULL = DATA / "apps" / "full.multiflexi.app.json"
BROKEN = DATA / "broken"
SKIP_COLUMNS = {"id", "application_id", "created_at", "updated_at", "source_file"}


def import_one(path: Path) -> ImportResult:
    [result] = import_app_paths([path])
    db.session.commit()
    return result


def write(folder: Path, name: str, doc: dict[str, Any]) -> Path:
    path = folder / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def minimal(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "$schema": "https://example.com/schema.json",
        "uuid": "7d3c1f52-0a4b-4f6e-9d21-5b8a0c3e7f10",
        "name": "Minimal",
        "description": "minimal app",
        "executable": "/bin/true",
        "environment": {"FOO": {"type": "string", "description": "foo", "defval": "x"}},
    }
    doc.update(changes)
    return doc


def columns(obj: Any) -> dict[str, Any]:
    return {
        a.key: getattr(obj, a.key)
        for a in inspect(type(obj)).column_attrs
        if a.key not in SKIP_COLUMNS
    }


def snapshot(app: Application) -> dict[str, Any]:
    """Everything an import stores, without ids and timestamps."""
    return columns(app) | {
        "fields": [columns(f) for f in app.fields],
        "exit_codes": [columns(c) for c in app.exit_codes],
    }


def the_app(result: ImportResult) -> Application:
    app = db.session.get(Application, result.id)
    assert app is not None
    return app


def reimport_export(doc: dict[str, Any], tmp_path: Path) -> Application:
    """Empty the application tables, then import an exported document."""
    for app in db.session.scalars(select(Application)):
        db.session.delete(app)
    db.session.commit()
    result = import_one(write(tmp_path, "exported.json", doc))
    assert result.status == "imported", result.error
    return the_app(result)


def assert_keeps_original(original: dict[str, Any], exported: dict[str, Any]) -> None:
    """Every key of the file comes back with its value (legacy spellings in their new form)."""
    legacy = {"$schema", "topics", "exitcodes", "environment", "exitCodes", "requirements"}
    for key, value in original.items():
        if key not in legacy:
            assert exported[key] == value, key
    assert exported.get("requirements", []) == original.get("requirements", [])
    assert list(exported["environment"]) == list(original["environment"])
    for key, spec in original["environment"].items():
        out = exported["environment"][key]
        for k, v in spec.items():
            assert out[k] == v, (key, k)


def test_real_apps_import_and_round_trip(app: Flask, tmp_path: Path) -> None:
    results = import_app_paths([SHARED / "apps"])
    db.session.commit()
    assert [r.error for r in results] == [None] * len(REAL_APPS)
    assert [r.status for r in results] == ["imported"] * len(REAL_APPS)
    before, exported = {}, {}
    for result, path in zip(results, REAL_APPS, strict=True):
        a = the_app(result)
        before[a.uuid], exported[a.uuid] = snapshot(a), export_app(a)
        assert_keeps_original(json.loads(path.read_text(encoding="utf-8")), exported[a.uuid])

    for a in db.session.scalars(select(Application)):
        db.session.delete(a)
    db.session.commit()
    for ident, doc in exported.items():
        write(tmp_path, f"{ident}.json", doc)
    for result in import_app_paths([tmp_path]):
        a = the_app(result)
        assert snapshot(a) == before[a.uuid], result.file
        assert json.dumps(export_app(a)) == json.dumps(exported[a.uuid]), result.file


def test_every_key_is_stored(app: Flask) -> None:
    result = import_one(FULL)
    a = the_app(result)
    assert (a.name, a.title, a.description) == (
        "Full app",
        "Every key of the format",
        "Uses every key the importer knows",
    )
    assert a.translations["name"] == {"cs": "Úplná aplikace", "en": "Full app"}
    assert a.cmdparams == "--mode {FULL_MODE} --out {RESULT_FILE}"
    assert a.cmdparams_template == "--mode ${FULL_MODE} --out ${RESULT_FILE}"
    assert (a.setup, a.deploy) == ("full-app --init", "apt install full-app")
    assert a.icon == "data:image/svg+xml;base64,PHN2Zy8+"
    assert (a.version, a.schema_version) == ("2.3.4", "3.4.0")
    assert a.ociimage == "docker.io/example/full-app:2.3.4"
    assert a.requirements == ["AbraFlexi", "Mail"] and a.tags == ["test", "full"]
    assert a.artifacts[0]["path"] == "full-.*\\.json"
    assert a.produces and a.consumes and a.events and a.kubernetes
    assert a.kubernetes["helm"]["chart"] == "oci://ghcr.io/example/full-app"
    assert a.extra == {
        "author": "Test Author",
        "license": "MIT",
        "category": "Testing",
        "repository": "https://example.com/full.git",
        "x-custom": {"nested": [1, 2, {"deep": True}]},
    }


def test_fields_are_normalised(app: Flask) -> None:
    result = import_one(FULL)
    a = the_app(result)
    f = {field.keyname: field for field in a.fields}
    assert [field.keyname for field in a.fields][:3] == [
        "FULL_MODE",
        "FULL_SECRET",
        "FULL_PASSWORD",
    ]
    types = {k: v.type for k, v in f.items()}
    assert types["FULL_MODE"] == "set" and types["FULL_FLAG"] == "bool"
    assert types["FULL_COUNT"] == "integer" and types["FULL_DIR"] == "file-path"
    assert types["FULL_NOTES"] == "text" and types["FULL_COLOR"] == "string"
    assert any("unknown type 'colour'" in w for w in result.warnings)
    assert any("legacy type 'checkbox'" in w for w in result.warnings)
    assert (f["FULL_FLAG"].default, f["FULL_COUNT"].default) == ("true", "42")
    assert (f["FULL_RATIO"].default, f["FULL_NOTES"].default) == ("0.5", None)
    assert f["FULL_LIST"].default == '["a", "b"]'
    assert f["FULL_PASSWORD"].secret and f["FULL_SECRET"].secret and not f["FULL_MODE"].secret
    assert f["FULL_NOTES"].multiline and f["FULL_NOTES"].expiring and f["FULL_NOTES"].note
    mode = f["FULL_MODE"]
    assert (mode.description, mode.hint, mode.name) == ("Run mode", "fast", "Mode")
    assert mode.extra == {
        "description": {"en": "Run mode", "cs": "Režim běhu"},
        "hint": {"en": "fast", "cs": "rychle"},
    }
    assert mode.options == {"fast": "Fast", "slow": "Slow"}
    assert (mode.required, mode.category) == (True, "Behavior")
    assert f["FULL_COLOR"].extra == {"x-widget": "picker"}
    assert "BANKA+" in f


def test_exit_codes_are_stored(app: Flask) -> None:
    a = the_app(import_one(FULL))
    codes = {c.code: c for c in a.exit_codes}
    assert sorted(codes) == [0, 3, 127]
    assert (codes[0].description, codes[0].severity, codes[0].retry) == ("OK", "success", False)
    assert codes[0].translations == {"description": {"en": "OK", "cs": "V pořádku"}}
    assert (codes[3].severity, codes[3].retry) == ("warning", True)
    assert (codes[127].severity, codes[127].retry) == ("error", None)


def test_full_file_round_trips(app: Flask, tmp_path: Path) -> None:
    first = the_app(import_one(FULL))
    before = snapshot(first)
    exported = export_app(first)
    env = exported["environment"]
    assert env["FULL_FLAG"]["defval"] is True and env["FULL_COUNT"]["defval"] == 42
    assert env["FULL_LIST"]["defval"] == ["a", "b"]
    assert env["FULL_SECRET"]["secret"] is True and "secret" not in env["FULL_PASSWORD"]
    assert env["FULL_COLOR"]["x-widget"] == "picker"
    again = reimport_export(exported, tmp_path)
    assert snapshot(again) == before
    assert json.dumps(export_app(again)) == json.dumps(exported)


def test_legacy_exitcodes_key_and_topics(app: Flask) -> None:
    result = import_one(SHARED / "apps" / "contract_to_invoices.multiflexi.app.json")
    a = the_app(result)
    assert any("exitcodes" in w for w in result.warnings)
    codes = {c.code: c for c in a.exit_codes}
    assert codes[0].severity == "success" and codes[1].severity == "error"
    assert codes[0].description == "Success"
    assert "exitcodes" not in a.extra and "exitcodes" not in export_app(a)

    mtr = the_app(import_one(SHARED / "apps" / "mtr.multiflexi.app.json"))
    assert mtr.tags == ["Network", "Analytics", "Sensor"]
    assert set(mtr.extra) == {"RESULT_FILE", "ZABBIX_KEY", "multiflexi"}
    assert export_app(mtr)["RESULT_FILE"]["description"]["cs"] == "zapsat výstupní json data do"


def test_requirements_as_comma_string(app: Flask, tmp_path: Path) -> None:
    doc = minimal(requirements="AbraFlexi, Mail", topics=["a"], tags=["b"])
    result = import_one(write(tmp_path, "legacy.json", doc))
    a = the_app(result)
    assert a.requirements == ["AbraFlexi", "Mail"] and a.tags == ["b"]
    assert a.extra == {"topics": ["a"]}
    assert len(result.warnings) == 2


def test_reimport_by_uuid_updates_in_place(app: Flask, tmp_path: Path) -> None:
    doc = minimal(exitCodes={"0": {"description": "ok"}, "2": {"description": "bad"}})
    doc["environment"]["BAR"] = {"type": "string", "description": "bar"}
    first = import_one(write(tmp_path, "a.json", doc))
    field_id = the_app(first).fields[0].id

    doc["version"] = "2.0"
    doc["environment"] = {
        "FOO": {"type": "integer", "description": "foo", "defval": 1},
        "BAZ": {"type": "bool", "description": "baz"},
    }
    doc["exitCodes"] = {"0": {"description": "fine"}, "5": {"description": "later", "retry": True}}
    second = import_one(write(tmp_path, "a.json", doc))
    assert (second.status, second.id) == ("updated", first.id)
    assert db.session.scalar(select(func.count()).select_from(Application)) == 1
    a = the_app(second)
    assert [(f.keyname, f.type, f.default) for f in a.fields] == [
        ("FOO", "integer", "1"),
        ("BAZ", "bool", None),
    ]
    assert a.fields[0].id == field_id
    assert [(c.code, c.description, c.retry) for c in a.exit_codes] == [
        (0, "fine", None),
        (5, "later", True),
    ]
    assert set(second.changes) == {
        "version changed",
        "field FOO changed",
        "field BAZ added",
        "field BAR removed",
        "exit codes replaced",
    }
    assert db.session.scalar(select(func.count()).select_from(AppField)) == 2
    assert db.session.scalar(select(func.count()).select_from(AppExitCode)) == 2
    assert import_one(write(tmp_path, "a.json", doc)).changes == []


def test_file_without_uuid(app: Flask, tmp_path: Path) -> None:
    doc = minimal(name="No uuid")
    del doc["uuid"]
    first = import_one(write(tmp_path, "n.json", doc))
    assert first.status == "imported"
    assert any(f"uuid {first.uuid} derived from the name" in w for w in first.warnings)
    db.session.delete(the_app(first))
    db.session.commit()
    # Deterministic: the same name gives the same uuid in another database.
    assert import_one(write(tmp_path, "n.json", doc)).uuid == first.uuid

    second = import_one(write(tmp_path, "n.json", doc))
    assert second.status == "updated"
    assert any("matched application" in w for w in second.warnings)
    assert db.session.scalar(select(func.count()).select_from(Application)) == 1


def test_file_without_uuid_matches_by_name(app: Flask, tmp_path: Path) -> None:
    existing = import_one(write(tmp_path, "with.json", minimal(name="Shared name")))
    doc = minimal(name="Shared name", version="9.9")
    del doc["uuid"]
    result = import_one(write(tmp_path, "without.json", doc))
    assert (result.status, result.id, result.uuid) == ("updated", existing.id, existing.uuid)
    assert the_app(result).version == "9.9"


def error_of(path: Path) -> str:
    result = import_one(path)
    assert result.status == "failed" and result.error
    assert db.session.scalar(select(func.count()).select_from(Application)) == 0
    return result.error


BROKEN_FILES = {
    "trailing-comma": "invalid JSON at line 11, column 5: Expecting property name enclosed in "
    "double quotes (trailing comma?)",
    "required-yes": "$.environment.FOO.required: 'yes' is not of type 'boolean'",
    "environment-list": "$.environment: [{",
    "missing-executable": "$: 'executable' is a required property",
    "type-number": "$.environment.FOO.type: 5 is not of type 'string'",
}


def test_broken_files_name_the_file_and_place(app: Flask) -> None:
    for name, expected in BROKEN_FILES.items():
        path = BROKEN / f"{name}.multiflexi.app.json"
        error = error_of(path)
        assert error.startswith(f"{path}: "), name
        assert expected in error, name
        if name != "trailing-comma":
            assert "not a valid MultiFlexi application definition" in error


def test_other_schema_failures(app: Flask, tmp_path: Path) -> None:
    cases = {
        "uuid": (minimal(uuid="not-a-uuid"), "$.uuid: 'not-a-uuid' is not a 'uuid'"),
        "lang": (minimal(name={"xx": "Name"}), "$.name: Additional properties"),
        "regex": (
            minimal(artifacts=[{"name": "a", "path": "([", "type": "file"}]),
            "$.artifacts[0].path: '([' is not a 'regex'",
        ),
        "backreference": (
            minimal(artifacts=[{"name": "a", "path": "(a)\\1", "type": "file"}]),
            "$.artifacts[0].path: pattern '(a)\\\\1': invalid escape sequence",
        ),
        "lookahead": (
            minimal(artifacts=[{"name": "a", "path": "x(?=y)", "type": "file"}]),
            "$.artifacts[0].path: pattern 'x(?=y)': invalid perl operator",
        ),
        "key": (
            minimal(environment={"A=B": {"type": "string"}}),
            "$.environment: 'A=B' does not match",
        ),
        "empty-name": (minimal(name=" "), "$.name: must not be empty"),
        "long": (minimal(name="n" * 300), "$: name is longer than 255 characters"),
        "code": (
            minimal(exitCodes={"99999999999": {"description": "x"}}),
            "$.exitCodes.99999999999: exit code out of range",
        ),
        "twice": (
            minimal(exitCodes={"1": {"description": "x"}, "01": {"description": "y"}}),
            "$.exitCodes.01: exit code given twice",
        ),
    }
    for name, (doc, expected) in cases.items():
        assert expected in error_of(write(tmp_path, f"{name}.json", doc)), name


def test_unreadable_files(app: Flask, tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_bytes(b"")
    assert "empty.json: the file is empty" in error_of(tmp_path / "empty.json")
    (tmp_path / "blank.json").write_bytes(b"  \n\t")
    assert "the file is empty" in error_of(tmp_path / "blank.json")

    good = json.dumps(minimal(description="caf\u00e9"), ensure_ascii=False).encode("utf-8")
    bad = good.replace(b"\xc3\xa9", b"\xe9")
    (tmp_path / "latin1.json").write_bytes(bad)
    error = error_of(tmp_path / "latin1.json")
    assert "latin1.json: not UTF-8 text: byte 0xe9 at line 1" in error

    big = tmp_path / "big.json"
    big.write_text(json.dumps(minimal(description="x" * (10 * 1024 * 1024))), encoding="utf-8")
    assert "big.json: file is larger than the 5 MB limit" in error_of(big)

    (tmp_path / "array.json").write_text("[1, 2]", encoding="utf-8")
    assert "top level must be a JSON object, not an array" in error_of(tmp_path / "array.json")
    (tmp_path / "nan.json").write_text('{"a": NaN}', encoding="utf-8")
    assert "NaN is not allowed" in error_of(tmp_path / "nan.json")
    assert "missing.json: no such file" in error_of(tmp_path / "missing.json")


def test_folder_mixing_good_and_bad(app: Flask, tmp_path: Path) -> None:
    write(tmp_path, "a-good.json", minimal())
    write(
        tmp_path, "b-bad.json", minimal(uuid="5c0a7b9e-1d2f-4a3b-8c4d-6e7f8091a2b3", environment=[])
    )
    # Valid against the schema, refused only after the app row was added: nothing may remain.
    late = minimal(uuid="6d1b8cae-2e3f-4b4c-9d5e-7f8091a2b3c4", name="Late failure")
    late["exitCodes"] = {"0": {"description": "ok"}, "4294967296": {"description": "too big"}}
    write(tmp_path, "c-late.json", late)
    (tmp_path / "notes.txt").write_text("not json", encoding="utf-8")
    results = import_app_paths([tmp_path])
    db.session.commit()
    assert [(Path(r.file).name, r.status) for r in results] == [
        ("a-good.json", "imported"),
        ("b-bad.json", "failed"),
        ("c-late.json", "failed"),
    ]
    assert db.session.scalars(select(Application.name)).all() == ["Minimal"]
    assert db.session.scalar(select(func.count()).select_from(AppField)) == 1
    assert db.session.scalar(select(func.count()).select_from(AppExitCode)) == 0


def test_failed_reimport_keeps_the_stored_app(app: Flask, tmp_path: Path) -> None:
    first = import_one(write(tmp_path, "a.json", minimal(version="1.0")))
    broken = minimal(version="2.0", exitCodes={"4294967296": {"description": "too big"}})
    broken["environment"] = {"NEW": {"type": "string"}}
    assert import_one(write(tmp_path, "a.json", broken)).status == "failed"
    db.session.expire_all()
    a = the_app(first)
    assert a.version == "1.0" and [f.keyname for f in a.fields] == ["FOO"]


def test_empty_folder_bytes_and_bom(app: Flask, tmp_path: Path) -> None:
    [result] = import_app_paths([tmp_path])
    assert result.failed and result.error == f"{tmp_path}: no *.json files"
    bad = import_app_bytes("upload.json", b'{"name": ')
    assert bad.failed and bad.error and bad.error.startswith("upload.json: invalid JSON at line 1")
    with_bom = b"\xef\xbb\xbf" + json.dumps(minimal()).encode()
    ok = import_app_bytes("upload.json", with_bom)
    assert ok.status == "imported" and ok.file == "upload.json"


def test_export_refuses_an_invalid_app(app: Flask) -> None:
    a = the_app(import_one(FULL))
    a.version = "1.0-beta"
    with pytest.raises(AppExportError, match=r"\$\.version: '1\.0-beta' does not match"):
        export_app(a)


def test_export_of_a_portal_made_app(app: Flask) -> None:
    a = Application(uuid="0f6b1d6e-1b7a-4f55-8d7e-2a9c3e4f5a6b", name="Made", executable="/bin/x")
    a.fields.append(AppField(keyname="K", type="string", description="", required=False))
    db.session.add(a)
    db.session.flush()
    doc = export_app(a)
    assert doc["environment"] == {"K": {"type": "string", "description": "", "required": False}}


def test_demo_apps_validate_and_import_idempotently(app: Flask) -> None:
    validator = Draft7Validator(load_schema("application"))
    files = sorted(DEMO_DIR.glob("*.multiflexi.app.json"))
    assert len(files) == 3
    for path in files:
        validator.validate(json.loads(path.read_text(encoding="utf-8")))
    first = import_demo_apps()
    db.session.commit()
    second = import_demo_apps()
    db.session.commit()
    assert [r.status for r in first] == ["imported"] * 3
    assert [(r.status, r.changes, r.warnings) for r in second] == [("updated", [], [])] * 3
    assert db.session.scalar(select(func.count()).select_from(Application)) == 3


def demo_run(name: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a demo app the way the executor does: argv from cmdparams, defaults as env."""
    doc = json.loads((DEMO_DIR / f"{name}.multiflexi.app.json").read_text(encoding="utf-8"))
    values = {k: str(v.get("defval", "")) for k, v in doc["environment"].items()} | env
    params = doc.get("cmdparamsTemplate") or doc["cmdparams"]
    fill = re.compile(r"\$?\{([A-Z0-9_]+)\}")
    argv = [doc["executable"], *(fill.sub(lambda m: values[m[1]], a) for a in shlex.split(params))]
    return subprocess.run(
        argv, cwd=cwd, env={"PATH": "/usr/bin:/bin", **values}, capture_output=True, text=True
    )


def test_demo_apps_run_with_coreutils(tmp_path: Path) -> None:
    hello = demo_run("hello", tmp_path, GREETING_NAME="Ada")
    assert (hello.returncode, hello.stdout) == (0, "Hello, Ada!\n")

    started = time.monotonic()
    counter = demo_run("slow-counter", tmp_path, COUNTER_LINES="3")
    assert counter.returncode == 0 and counter.stdout.splitlines()[-1] == "line 3 of 3"
    assert time.monotonic() - started >= 0.5

    report = demo_run("report-writer", tmp_path, REPORT_STATUS="warning", REPORT_EXIT_CODE="3")
    assert report.returncode == 3, report.stderr
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    Draft7Validator(load_schema("report")).validate(data)
    assert data["status"] == "warning" and data["producer"] == "report-writer"
    doc = json.loads((DEMO_DIR / "report-writer.multiflexi.app.json").read_text("utf-8"))
    pattern = re.compile(doc["artifacts"][0]["path"])
    assert [p.name for p in tmp_path.iterdir() if pattern.search(p.name)]


ODD_VALUES: list[Any] = [None, True, 0, -1, 1.5, "", "x", "BANKA+", [], ["a"], {}, {"en": ""}]
ODD_VALUES += [{"en": "a", "cs": "b"}, {"xx": 1}, "1.0", "0d4e3a8f-5d6b-4a39-9c27-3f9b1e4c2a01"]


def mutate(obj: Any, rnd: random.Random) -> None:
    """Replace, drop or add one value somewhere in a parsed document."""
    if isinstance(obj, dict) and obj:
        key, roll = rnd.choice(list(obj)), rnd.random()
        if roll < 0.3:
            obj[key] = copy.deepcopy(rnd.choice(ODD_VALUES))
        elif roll < 0.4:
            del obj[key]
        elif roll < 0.5:
            obj[rnd.choice(["type", "defval", "required", "secret", "options", "hint"])] = (
                copy.deepcopy(rnd.choice(ODD_VALUES))
            )
        else:
            mutate(obj[key], rnd)
    elif isinstance(obj, list) and obj:
        index = rnd.randrange(len(obj))
        if rnd.random() < 0.5:
            obj[index] = copy.deepcopy(rnd.choice(ODD_VALUES))
        else:
            mutate(obj[index], rnd)


def test_mutated_documents_import_or_fail_cleanly(app: Flask) -> None:
    """Whatever the file holds: stored and exportable, or refused with the file named."""
    rnd = random.Random(7)
    sources = [json.loads(p.read_text(encoding="utf-8")) for p in [*REAL_APPS, FULL]]
    statuses = set()
    for i in range(150):
        doc = copy.deepcopy(rnd.choice(sources))
        for _ in range(rnd.randint(1, 3)):
            mutate(doc, rnd)
        result = import_app_bytes(f"m{i}.json", json.dumps(doc).encode())
        statuses.add(result.status)
        if result.failed:
            assert result.error and result.error.startswith(f"m{i}.json: ")
        else:
            app_validator().validate(export_app(the_app(result)))
    db.session.commit()
    assert statuses == {"imported", "updated", "failed"}


def test_upstream_artifact_patterns_compile_in_linear_time() -> None:
    """Every artifact pattern of the upstream apps on this machine is an RE2 pattern."""
    files = sorted(upstream_files().glob("apps/*.json")) + sorted(DEMO_DIR.glob("*.json"))
    paths = [
        str(art["path"])
        for f in files
        for art in json.loads(f.read_text("utf-8")).get("artifacts") or []
        if isinstance(art, dict) and art.get("path")
    ]
    assert paths, "no artifact patterns found"
    check_patterns(paths, "upstream")
