"""The executor's systemd unit: shaped as specified and `systemd-analyze verify` clean."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "multiflexi-executor.service"
BINARY = "/opt/multiflexi/.venv/bin/multiflexi-executor"


def test_unit_shape() -> None:
    lines = UNIT.read_text().splitlines()
    for line in (
        "Type=notify",
        "User=multiflexi",
        "Group=multiflexi",
        "EnvironmentFile=/etc/multiflexi/multiflexi.env",
        "LimitNOFILE=8192:16384",
        "Restart=always",
        "RestartSec=10",
        "MemoryMax=2G",
        "Environment=MULTIFLEXI_MEMORY_LIMIT_MB=1800",
        f"ExecStart={BINARY}",
        "KillMode=mixed",  # SIGTERM to the daemon alone, so running jobs get their grace
    ):
        assert line in lines, line


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart's binary exists: point a copy at one that does.
    fake = tmp_path / "bin" / "multiflexi-executor"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(BINARY, str(fake)))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
