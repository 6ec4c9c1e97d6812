"""Configuration sources, precedence and validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from multiflexi_web.config import ConfigError, load_settings
from multiflexi_web.services.actions.settings import load


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    base = {
        "MULTIFLEXI_ENV_FILE": str(tmp_path / "none.env"),
        "MULTIFLEXI_LOCAL_ENV": str(tmp_path / "none-local.env"),
    }
    base.update(values)
    return base


def test_defaults_use_embedded_sqlite(tmp_path: Path) -> None:
    s = load_settings(env(tmp_path))
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("var/multiflexi.db")
    assert s.timezone == "UTC" and s.output_cap_mb == 64 and s.max_parallel >= 1


def test_database_url_wins_and_postgres_scheme_is_normalised(tmp_path: Path) -> None:
    s = load_settings(
        env(tmp_path, DATABASE_URL="postgres://u:p@h:5433/db", DB_CONNECTION="sqlite")
    )
    assert s.database_url == "postgresql+psycopg://u:p@h:5433/db"


def test_upstream_db_keys(tmp_path: Path) -> None:
    s = load_settings(
        env(
            tmp_path,
            DB_CONNECTION="pgsql",
            DB_HOST="db.local",
            DB_PORT="5544",
            DB_DATABASE="multiflexi",
            DB_USERNAME="mf",
            DB_PASSWORD="p@ss word",
        )
    )
    assert s.database_url == "postgresql+psycopg://mf:p%40ss+word@db.local:5544/multiflexi"
    s = load_settings(env(tmp_path, DB_CONNECTION="sqlite", DB_DATABASE="/tmp/x.db"))
    assert s.database_url == "sqlite:////tmp/x.db"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("MULTIFLEXI_MAX_PARALLEL", "many", "MULTIFLEXI_MAX_PARALLEL: must be a positive integer"),
        ("MULTIFLEXI_MAX_PARALLEL", "0", "MULTIFLEXI_MAX_PARALLEL"),
        ("MULTIFLEXI_TIMEZONE", "Mars/Olympus", "MULTIFLEXI_TIMEZONE: must be an IANA time zone"),
        ("MULTIFLEXI_MEMORY_LIMIT_MB", "-5", "MULTIFLEXI_MEMORY_LIMIT_MB"),
        ("MULTIFLEXI_CYCLE_PAUSE", "soon", "MULTIFLEXI_CYCLE_PAUSE"),
        ("MULTIFLEXI_KEEP_WORKDIR_ON_FAILURE", "maybe", "must be true or false"),
        ("DB_CONNECTION", "mssql", "DB_CONNECTION"),
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL"),
        ("MULTIFLEXI_API_RATE", "lots", "MULTIFLEXI_API_RATE: must be requests per period"),
        ("MULTIFLEXI_API_RATE", "0/minute", "MULTIFLEXI_API_RATE"),
        ("MULTIFLEXI_API_RATE", "10/fortnight", "MULTIFLEXI_API_RATE"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, key: str, value: str, message: str) -> None:
    extra = {"DB_DATABASE": "x"} if key == "DB_CONNECTION" else {}
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(env(tmp_path, **{key: value}, **extra))
    assert value in str(info.value) or key.startswith("DB_")


def test_api_rate(tmp_path: Path) -> None:
    assert load_settings(env(tmp_path)).api_rate == (120, 60)
    assert load_settings(env(tmp_path, MULTIFLEXI_API_RATE="5/second")).api_rate == (5, 1)
    assert load_settings(env(tmp_path, MULTIFLEXI_API_RATE="1000 / hours")).api_rate == (1000, 3600)


def test_precedence_environment_then_system_file_then_local(tmp_path: Path) -> None:
    system = tmp_path / "multiflexi.env"
    local = tmp_path / "local.env"
    system.write_text("MULTIFLEXI_TIMEZONE=Europe/Prague\nMULTIFLEXI_OUTPUT_CAP_MB=7\n")
    local.write_text(
        "MULTIFLEXI_TIMEZONE=America/New_York\nMULTIFLEXI_OUTPUT_CAP_MB=9\nSECRET_KEY=l\n"
    )
    s = load_settings(
        {
            "MULTIFLEXI_ENV_FILE": str(system),
            "MULTIFLEXI_LOCAL_ENV": str(local),
            "MULTIFLEXI_OUTPUT_CAP_MB": "3",
        }
    )
    assert s.output_cap_mb == 3  # process environment wins
    assert s.timezone == "Europe/Prague"  # system file beats local .env
    assert s.secret_key == "l"  # local .env fills what nothing else sets


def test_cli_reports_bad_config_in_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "multiflexi_web.cli", "company", "list"],
        env={**os.environ, **env(tmp_path, MULTIFLEXI_MAX_PARALLEL="lots")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "Error: configuration: MULTIFLEXI_MAX_PARALLEL: must be a positive integer, got 'lots'"
    ]


def test_keys_from_files_and_credentials_directory(tmp_path: Path) -> None:
    secret, master = tmp_path / "secret", tmp_path / "creds" / "encryption_master_key"
    master.parent.mkdir()
    for path, text in ((secret, "s3cret\n"), (master, "m4ster\n")):
        path.write_text(text)
        path.chmod(0o600)
    settings = load_settings(
        env(tmp_path, SECRET_KEY_FILE=str(secret), CREDENTIALS_DIRECTORY=str(master.parent))
    )
    assert (settings.secret_key, settings.encryption_master_key) == ("s3cret", "m4ster")
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match=r"SECRET_KEY_FILE: .* readable by others"):
        load_settings(env(tmp_path, SECRET_KEY_FILE=str(secret)))
    with pytest.raises(ConfigError, match="ENCRYPTION_MASTER_KEY_FILE: cannot read"):
        load_settings(env(tmp_path, ENCRYPTION_MASTER_KEY_FILE=str(tmp_path / "absent")))


def test_env_allow_and_job_user(tmp_path: Path) -> None:
    settings = load_settings(env(tmp_path, MULTIFLEXI_ENV_ALLOW="HTTPS_PROXY, NO_PROXY"))
    assert {"HTTPS_PROXY", "NO_PROXY", "TZ"} <= settings.env_allow
    assert settings.job_user == "multiflexi-job"
    assert load_settings(env(tmp_path, MULTIFLEXI_JOB_USER="daemon")).job_user == ""
    with pytest.raises(ConfigError, match="MULTIFLEXI_ENV_ALLOW 'LD_PRELOAD': never allowed"):
        load_settings(env(tmp_path, MULTIFLEXI_ENV_ALLOW="LD_PRELOAD"))


def test_action_nice_is_checked() -> None:
    assert load({"MULTIFLEXI_ACTION_NICE": "0"}).nice == 0
    assert load({}).nice == 10
    with pytest.raises(ConfigError, match=r"MULTIFLEXI_ACTION_NICE.*0-19"):
        load({"MULTIFLEXI_ACTION_NICE": "20"})
