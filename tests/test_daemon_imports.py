"""A booted daemon has not loaded what only the portal, other engines or other sources need."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.executor_support import daemon_env

ROOT = Path(__file__).resolve().parent.parent
# Each is megabytes of resident memory that a daemon pays for only when it is used: the portal's
# views, API and migrations; container, cluster and cloud SDKs; broker clients; libmagic and
# cryptography (first artifact, first secret); requests (first HTTP action), RE2 (first tenant
# pattern), croniter (first cron schedule), Flask-Login (a request's user), watchdog (a
# directory source) and prometheus_client (a metrics port).
NEVER_AT_BOOT = (
    "multiflexi_web.views",
    "multiflexi_web.api",
    "multiflexi_web.cli",
    "flask_migrate",
    "alembic",
    "flask_wtf",
    "docker",
    "kubernetes",
    "azure",
    "redis",
    "pika",
    "paho",
    "magic",
    "cryptography",
    "requests",
    "re2",
    "croniter",
    "flask_login",
    "watchdog",
    "prometheus_client",
)
# Boots the daemon as its main() does, builds its loop (the executor: and asks what its engine
# watch asks), then lists what it has imported.
PROBE = """
import sys
from daemons.runtime import boot
import daemons.{kind}
rt = boot("{kind}")
if "{kind}" == "executor":
    from multiflexi_web.executors import registry
    from multiflexi_web.runner.pool import Executor
    Executor(rt)
    # What its engine watch asks each pass (runner/engines.py), on a host with no engine.
    registry.availability()
    for module in registry.engine_modules():
        module.leftovers("probe")
print(" ".join(sorted(sys.modules)))
"""


@pytest.mark.parametrize("kind", ["executor", "scheduler", "eventor"])
def test_booted_daemon_leaves_unused_libraries_unloaded(
    kind: str, db_url: str, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(kind=kind)],
        cwd=ROOT,
        env=daemon_env(db_url, tmp_path, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr  # the daemon's traceback, not only its exit status
    loaded = set(proc.stdout.split())
    assert "multiflexi_web.runner.pool" in loaded or kind != "executor"
    assert sorted(m for m in NEVER_AT_BOOT if m in loaded) == []
    # The PostgreSQL driver is for PostgreSQL: ~24 MiB a SQLite daemon does not need.
    assert ("psycopg" in loaded) == db_url.startswith("postgresql")
