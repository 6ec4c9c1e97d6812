"""The system env file (/etc/multiflexi/multiflexi.env) is both the platform's settings file
and the lowest layer of every job's environment: only DATABASE_URL, the keys and DB_* were
taken out, so the metrics token, the first admin's password and the platform's Azure service
principal reached every tenant's job. Now no platform setting does (every name of
multiflexi.env.example is one), while what the operator put there for jobs still arrives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask

from multiflexi_web.config import PROJECT_ROOT
from multiflexi_web.services.jobs.environment import platform_setting
from tests.executor_support import drain, job, output_of, schedule, shell_rt
from tests.factories import make_company

EXAMPLE = PROJECT_ROOT / "multiflexi.env.example"
PLATFORM = {
    "MULTIFLEXI_METRICS_TOKEN": "metrics-token-sentinel",
    "MULTIFLEXI_ADMIN_PASSWORD": "admin-pw-sentinel",
    "AZURE_CLIENT_SECRET": "azure-secret-sentinel",
    "ENCRYPTION_MASTER_KEY": "fernet-sentinel",
    "DOCKER_HOST": "unix:///docker-sentinel.sock",
}


def test_platform_keys_in_the_system_env_file_do_not_reach_a_tenant_job(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sysfile = tmp_path / "multiflexi.env"
    sysfile.write_text("".join(f"{k}={v}\n" for k, v in PLATFORM.items()) + "HTTPS_PROXY=px\n")
    monkeypatch.setenv("MULTIFLEXI_ENV_FILE", str(sysfile))
    rt = shell_rt("env", make_company(), mask_output=False)
    [job_id] = schedule(rt)
    drain(app)
    assert job(job_id).status == "succeeded", job(job_id).status_reason
    out = output_of(job_id).decode()
    leaked = [k for k, v in PLATFORM.items() if v in out]
    assert leaked == [], f"the tenant's job environment holds the platform's {leaked}"
    assert "HTTPS_PROXY=px" in out  # the operator's value for jobs


def test_every_documented_setting_is_withheld() -> None:
    names = re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", EXAMPLE.read_text(), re.MULTILINE)
    assert len(names) > 50
    assert [n for n in names if not platform_setting(n)] == []
