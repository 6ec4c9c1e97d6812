"""Every systemd unit: shaped like upstream's and clean under `systemd-analyze verify`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from multiflexi_web.config import PROJECT_ROOT
from tests.services import need

VENV_BIN = "/opt/multiflexi/.venv/bin"
COMMON = [
    "User=multiflexi",
    "Group=multiflexi",
    "EnvironmentFile=/etc/multiflexi/multiflexi.env",
    "LimitNOFILE=8192:16384",
    "Restart=always",
    "RestartSec=10",
    "Type=notify",
    "UMask=0077",  # SPEC §15: files the platform writes are its own user's only
]
UNITS: dict[str, tuple[str, list[str]]] = {
    "multiflexi-executor.service": (
        "multiflexi-executor",
        [
            "MemoryMax=2G",
            "Environment=MULTIFLEXI_MEMORY_LIMIT_MB=1800",
            "WatchdogSec=180",
            "KillMode=mixed",  # SIGTERM to the daemon alone, so running jobs get their grace
            "Environment=MULTIFLEXI_JOB_USER=multiflexi-job",  # jobs never as multiflexi
            "AmbientCapabilities=CAP_SETUID CAP_SETGID CAP_CHOWN CAP_KILL CAP_DAC_OVERRIDE "
            "CAP_FOWNER",
            "CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_CHOWN CAP_KILL CAP_DAC_OVERRIDE "
            "CAP_FOWNER",
            "NoNewPrivileges=yes",
        ],
    ),
    "multiflexi-scheduler.service": ("multiflexi-scheduler", ["WatchdogSec=180"]),
    "multiflexi-eventor.service": (
        "multiflexi-eventor",
        ["MemoryMax=1G", "Environment=MULTIFLEXI_MEMORY_LIMIT_MB=900", "WatchdogSec=180"],
    ),
    "multiflexi-web.service": (
        "gunicorn",
        [
            "Environment=MULTIFLEXI_WEB_BIND=127.0.0.1:8000 MULTIFLEXI_WEB_WORKERS=2",
            "WorkingDirectory=/opt/multiflexi",
        ],
    ),
}


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_has_the_required_settings(unit: str) -> None:
    binary, extra = UNITS[unit]
    lines = (PROJECT_ROOT / "systemd" / unit).read_text().splitlines()
    for line in [*COMMON, *extra]:
        assert line in lines, f"{unit}: missing {line!r}"
    exec_start = next(ln for ln in lines if ln.startswith("ExecStart="))
    assert exec_start.startswith(f"ExecStart={VENV_BIN}/{binary}")


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_systemd_analyze_verify_is_clean(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    need(analyze is not None, "systemd-analyze (Debian package systemd)")
    assert analyze is not None
    binary, _ = UNITS[unit]
    # verify insists that ExecStart's binary exists: check a copy pointing at one that does.
    fake = tmp_path / "bin" / binary
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    copy = tmp_path / unit
    text = (PROJECT_ROOT / "systemd" / unit).read_text()
    copy.write_text(text.replace(f"{VENV_BIN}/{binary}", str(fake)))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_sysusers_declares_the_platform_and_the_job_user() -> None:
    lines = (PROJECT_ROOT / "systemd" / "multiflexi.sysusers.conf").read_text().splitlines()
    users = [ln.split()[1] for ln in lines if ln.startswith("u ")]
    assert users == ["multiflexi", "multiflexi-job"]


def test_the_nightly_backup_unit_and_its_timer(tmp_path: Path) -> None:
    service = (PROJECT_ROOT / "systemd" / "multiflexi-backup.service").read_text()
    lines = service.splitlines()
    for line in (
        "Type=oneshot",
        "User=multiflexi",
        "Group=multiflexi",
        "EnvironmentFile=/etc/multiflexi/multiflexi.env",
        "UMask=0077",
        "StateDirectory=multiflexi-backups",
        "StateDirectoryMode=0700",
        f"ExecStart={VENV_BIN}/multiflexi backup /var/lib/multiflexi-backups --keep 14",
    ):
        assert line in lines, f"multiflexi-backup.service: missing {line!r}"
    timer = (PROJECT_ROOT / "systemd" / "multiflexi-backup.timer").read_text()
    assert "Persistent=true" in timer.splitlines()
    analyze = shutil.which("systemd-analyze")
    need(analyze is not None, "systemd-analyze (Debian package systemd)")
    assert analyze is not None
    fake = tmp_path / "bin" / "multiflexi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    (tmp_path / "multiflexi-backup.service").write_text(
        service.replace(f"{VENV_BIN}/multiflexi", str(fake))
    )
    (tmp_path / "multiflexi-backup.timer").write_text(timer)
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "multiflexi-backup.service"),
         str(tmp_path / "multiflexi-backup.timer")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
