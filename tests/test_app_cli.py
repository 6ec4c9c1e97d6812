"""`multiflexi app ...` and `multiflexi credential-prototype ...` through the Flask CLI runner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from flask.testing import FlaskCliRunner
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Application, AuditLog
from multiflexi_web.services.catalogue.app_schema import app_validator
from tests.services import upstream_files

SHARED = upstream_files()
DATA = Path(__file__).parent / "data"
PROBE = SHARED / "apps" / "probe.multiflexi.app.json"
PROBE_UUID = "775ed801-2489-4981-bc14-d8a01cba1938"


def test_import_folder_prints_one_line_per_file(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["app", "import", str(SHARED / "apps")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if not line.startswith(" ")]
    assert len(lines) == len(list((SHARED / "apps").glob("*.json")))
    assert all(line.startswith("imported ") for line in lines)
    assert f"probe.multiflexi.app.json: MultiFlexi Probe ({PROBE_UUID})" in result.output
    assert "warning: misspelt key 'exitcodes'" in result.output
    assert db.session.scalar(select(AuditLog).where(AuditLog.entity_type == "application"))

    again = runner.invoke(args=["app", "import", str(PROBE), "--format", "json"])
    assert again.exit_code == 0
    [report] = json.loads(again.output)
    assert (report["status"], report["uuid"], report["error"]) == ("updated", PROBE_UUID, None)


def test_mixed_folder_exits_non_zero(runner: FlaskCliRunner, tmp_path: Path) -> None:
    shutil.copy(PROBE, tmp_path / "a.json")
    shutil.copy(DATA / "broken" / "required-yes.multiflexi.app.json", tmp_path / "b.json")
    (tmp_path / "c.json").write_bytes(b"")
    result = runner.invoke(args=["app", "import", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("imported ") and f"{tmp_path / 'a.json'}" in lines[0]
    assert lines[1] == (
        f"failed    {tmp_path / 'b.json'}: not a valid MultiFlexi application definition: "
        "$.environment.FOO.required: 'yes' is not of type 'boolean'"
    )
    assert lines[2] == f"failed    {tmp_path / 'c.json'}: the file is empty"
    assert db.session.scalars(select(Application.uuid)).all() == [PROBE_UUID]

    as_json = runner.invoke(args=["app", "import", str(tmp_path), "--format", "json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.output)
    assert [r["status"] for r in report] == ["updated", "failed", "failed"]
    assert "$.environment.FOO.required" in report[1]["error"]


def test_import_needs_a_path(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["app", "import"])
    assert result.exit_code == 2 and "give at least one PATH" in result.output


def test_list_show_enable_disable(runner: FlaskCliRunner) -> None:
    runner.invoke(args=["app", "import", str(PROBE)])
    listed = json.loads(runner.invoke(args=["app", "list", "--format", "json"]).output)
    assert [(a["uuid"], a["enabled"]) for a in listed] == [(PROBE_UUID, True)]
    text = runner.invoke(args=["app", "list"]).output
    assert text.splitlines()[0].split() == ["ID", "UUID", "NAME", "VERSION", "ENABLED", "TAGS"]

    shown = runner.invoke(args=["app", "show", PROBE_UUID, "--format", "json"])
    detail = json.loads(shown.output)
    assert detail["cmdparams_template"] == "${FILE_UPLOAD}"
    fields = {f["keyname"]: f for f in detail["fields"]}
    assert fields["PASSWORD"]["secret"] and fields["PASSWORD"]["default"] == "••••••••"
    text = runner.invoke(args=["app", "show", str(listed[0]["id"])]).output
    assert "FILE_UPLOAD" in text and "donotcare" not in text

    off = runner.invoke(args=["app", "disable", PROBE_UUID, "--format", "json"])
    assert json.loads(off.output)["enabled"] is False
    assert runner.invoke(args=["app", "enable", PROBE_UUID]).exit_code == 0
    db.session.expire_all()
    assert db.session.scalar(select(Application.enabled)) is True


def test_unknown_application(runner: FlaskCliRunner) -> None:
    for command in ("show", "export", "enable", "disable"):
        result = runner.invoke(args=["app", command, "nope"])
        assert result.exit_code == 1
        assert "application 'nope': not found" in result.output


def test_export_to_stdout_and_file(runner: FlaskCliRunner, tmp_path: Path) -> None:
    runner.invoke(args=["app", "import", str(DATA / "apps" / "full.multiflexi.app.json")])
    uuid = "5f0c6a52-8f3e-4b8e-9a51-7d0e2c1b9a11"
    out = runner.invoke(args=["app", "export", uuid])
    assert out.exit_code == 0
    doc = json.loads(out.output)
    app_validator().validate(doc)
    assert doc["uuid"] == uuid and doc["name"] == {"cs": "Úplná aplikace", "en": "Full app"}

    target = tmp_path / "out.json"
    written = runner.invoke(args=["app", "export", uuid, "-o", str(target)])
    assert written.exit_code == 0 and f"exported to {target}" in written.output
    assert json.loads(target.read_text(encoding="utf-8")) == doc
    again = runner.invoke(args=["app", "import", str(target)])
    assert again.exit_code == 0 and again.output.startswith("updated ")
    assert "changes:" not in again.output


def test_demo_flag(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["app", "import", "--demo", "--format", "json"])
    assert result.exit_code == 0
    names = sorted(r["name"] for r in json.loads(result.output))
    assert names == ["Hello", "Report writer", "Slow counter"]


def test_credential_prototype_commands(runner: FlaskCliRunner, tmp_path: Path) -> None:
    result = runner.invoke(args=["credential-prototype", "import", str(SHARED / "credentials")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if not line.startswith(" ")]
    assert len(lines) == 6
    assert "changes: source_format changed" in result.output
    listed = json.loads(
        runner.invoke(args=["credential-prototype", "list", "--format", "json"]).output
    )
    assert [(p["code"], p["fields"]) for p in listed] == [
        ("AbraFlexi", 4),
        ("DatabaseConnection", 6),
        ("EnvFile", 1),
        ("Mail", 1),
        ("Probe", 3),
    ]
    shown = runner.invoke(args=["credential-prototype", "show", "Probe", "--format", "json"])
    detail = json.loads(shown.output)
    assert detail["source_format"] == "type"
    assert detail["homepage"] == "https://github.com/VitexSoftware/multiflexi-probe"
    assert [f["keyword"] for f in detail["fields"] if f["secret"]] == ["PROBE_API_KEY"]
    assert "PROBE_TIMEOUT" in runner.invoke(args=["credential-prototype", "show", "Probe"]).output

    missing = runner.invoke(args=["credential-prototype", "show", "Nope"])
    assert missing.exit_code == 1 and "'Nope': not found" in missing.output
    (tmp_path / "x.credprototype.json").write_text('{"code": "X",}', encoding="utf-8")
    bad = runner.invoke(args=["credential-prototype", "import", str(tmp_path)])
    assert bad.exit_code == 1 and "line 1, column 14" in bad.output
