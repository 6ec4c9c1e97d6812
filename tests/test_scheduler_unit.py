"""The scheduler's systemd unit: shaped like upstream's and clean under `systemd-analyze verify`."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from multiflexi_web.config import PROJECT_ROOT

UNIT = PROJECT_ROOT / "systemd" / "multiflexi-scheduler.service"
EXEC = "/opt/multiflexi/.venv/bin/multiflexi-scheduler"


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser["Service"]


def test_unit_has_the_required_settings() -> None:
    service = _service()
    expected = {
        "Type": "simple",
        "User": "multiflexi",
        "Group": "multiflexi",
        "EnvironmentFile": "/etc/multiflexi/multiflexi.env",
        "LimitNOFILE": "8192:16384",
        "Restart": "always",
        "RestartSec": "10",
        "ExecStart": EXEC,
    }
    assert {k: service.get(k) for k in expected} == expected


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify insists the ExecStart binary exists: check a copy pointing at one that does.
    exe = tmp_path / "multiflexi-scheduler"
    exe.write_text(f"#!{sys.executable}\n")
    exe.chmod(0o755)
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(EXEC, str(exe)))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")
