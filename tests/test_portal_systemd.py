"""The portal's systemd unit passes `systemd-analyze verify` without a single warning."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "multiflexi-web.service"
GUNICORN = "/opt/multiflexi/.venv/bin/gunicorn"


def test_unit_runs_gunicorn_as_specified() -> None:
    text = UNIT.read_text()
    for line in (
        f"ExecStart={GUNICORN} --bind ${{MULTIFLEXI_WEB_BIND}} "
        "--workers ${MULTIFLEXI_WEB_WORKERS} app:app",
        "Environment=MULTIFLEXI_WEB_BIND=127.0.0.1:8000 MULTIFLEXI_WEB_WORKERS=2",
        "WorkingDirectory=/opt/multiflexi",
        "User=multiflexi",
        "Group=multiflexi",
        "EnvironmentFile=/etc/multiflexi/multiflexi.env",
        "LimitNOFILE=8192:16384",
        "Restart=always",
        "RestartSec=10",
    ):
        assert line in text.splitlines(), line


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart's binary exists: point a copy at one that does.
    fake = tmp_path / "bin" / "gunicorn"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(GUNICORN, str(fake)))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
