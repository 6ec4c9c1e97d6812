"""Fixtures: every database test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, create_engine
from werkzeug.routing.rules import Rule

from multiflexi_web import create_app
from multiflexi_web.config import Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import Base
from multiflexi_web.security.secrets import generate_key
from multiflexi_web.services.events import connection as webhook_connection
from tests import state_guard
from tests.services import need

PG_ADMIN_URL = os.environ.get(
    "MULTIFLEXI_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_KEY = generate_key()

# Fuzz tests: few examples, same ones every run (CI), no example database written to the tree;
# HYPOTHESIS_PROFILE=explore searches wider with fresh examples.
hypothesis_settings.register_profile(
    "ci",
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
hypothesis_settings.register_profile(
    "explore", parent=hypothesis_settings.get_profile("ci"), max_examples=500, derandomize=False
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
# Every peer of the tests' post-job actions listens on loopback, which actions may not reach
# by default (actions/destinations.py); tests of that rule set their own.
LOOPBACK_PEERS = {"MULTIFLEXI_ACTION_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128"}
os.environ.update(LOOPBACK_PEERS)


def _share_url_builders() -> None:
    """Every test builds a fresh app (~160 URL rules), and Werkzeug compiles two URL-building
    functions per rule from a generated AST: most of create_app's time, ~0.1 s of every test.
    The generated code depends only on the rule text, its parts and whether unknown arguments
    are appended (the converters are read through `self` when called), so tests share it. Rules
    with defaults (values folded into the code) are compiled as usual."""
    original = Rule._compile_builder
    shared: dict[tuple[object, ...], Any] = {}

    def compile_builder(self: Rule, append_unknown: bool = True) -> Any:
        if self.defaults:
            return original(self, append_unknown)
        key = (self.rule, tuple(self._trace), append_unknown)
        found = shared.get(key)
        if found is None:
            found = shared[key] = original(self, append_unknown)
        return found

    Rule._compile_builder = compile_builder  # type: ignore[method-assign]


_share_url_builders()


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    need(_pg_available(), f"PostgreSQL ({PG_ADMIN_URL})")
    name = f"mf_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of one backend; each test gets it empty."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'multiflexi.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


def make_settings(db_url: str, tmp_path: Path, **extra: object) -> Settings:
    values: dict[str, object] = {
        "database_url": db_url,
        "secret_key": "test-secret",
        "encryption_master_key": TEST_KEY,
        "tmp_dir": str(tmp_path / "work"),
        "artifact_dir": str(tmp_path / "artifacts"),
        "max_parallel": 2,
        "job_user": "",  # jobs as the test's own user; tests/test_isolation.py switches users
    }
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False}, settings=settings)
    with app.app_context():
        reset_schema()
        yield app
        db.session.remove()
        db.engine.dispose()
        webhook_connection.dispose(app)


_PG_READY: set[str] = set()


def reset_schema() -> None:
    """Empty tables: create on SQLite's fresh file; on the shared PostgreSQL database delete rows.

    DELETE + sequence restart is ~10x faster than TRUNCATE of every table (which takes an
    exclusive lock and new files per table) and the suite resets before each test. Each new
    schema gets the job state guard (tests/state_guard.py); DELETE leaves it in place.
    """
    engine = db.engine
    if engine.dialect.name != "postgresql":
        if not _copy_sqlite_template(engine):
            create_schema(engine)
        return
    url = str(engine.url)
    if url not in _PG_READY:
        create_schema(engine)
        _PG_READY.add(url)
    tables = reversed(Base.metadata.sorted_tables)
    # Names come from our own metadata, not from input.
    deletes = "; ".join(f'DELETE FROM "{t.name}"' for t in tables)  # noqa: S608
    with engine.begin() as conn:
        conn.exec_driver_sql(deletes)
        # One statement for every sequence (ALTER SEQUENCE ... RESTART each took ~10 ms).
        conn.exec_driver_sql("SELECT setval(oid, 1, false) FROM pg_class WHERE relkind = 'S'")


_SQLITE_TEMPLATE: list[Path] = []


def _copy_sqlite_template(engine: Engine) -> bool:
    """A database file not made yet is made as a copy of one made with the schema once per
    run: ~2 ms instead of ~50 ms of DDL for each of the suite's ~640 SQLite tests."""
    target = Path(engine.url.database or "")
    if not engine.url.database or target.exists():
        return False
    if not _SQLITE_TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="mf-schema-"))
        atexit.register(shutil.rmtree, folder, True)
        template = folder / "schema.db"
        maker = create_engine(f"sqlite:///{template}")
        create_schema(maker)
        maker.dispose()
        _SQLITE_TEMPLATE.append(template)
    # The mode SQLite itself would create it with (0644 less the umask).
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(_SQLITE_TEMPLATE[0].read_bytes())
    return True


def create_schema(engine: Engine) -> None:
    """The models' tables, and the job state guard on them."""
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        state_guard.install(conn)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


# xdist (make test: --dist loadgroup) hands out whole files, each run on one worker in its own
# order, as in one process: some files build on their module-scoped state test after test
# (test_browser.py's last test checks what the ones before it did). These files share one
# worker, one after another: they start the tests' own container engines and check that no
# container of theirs is left (another worker's would be seen).
ONE_WORKER = {"test_containers.py": "engines", "test_containers_jobs.py": "engines"}


# tryfirst: xdist's worker reads the group marks in its own pytest_collection_modifyitems, so
# they must be there before it runs, whatever the order the plugins were registered in.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = ONE_WORKER.get(item.path.name, item.path.name)
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Refuse to run when loadgroup silently stopped grouping.

    xdist tells its scheduler a test's group by appending `@group` to the node id in the worker.
    pytest 9.2 no longer lets it (pytest-xdist issue 1386): every test then went to any worker,
    and a file's later tests found none of the state its earlier ones built (CI saw
    test_browser.py's last test on a fresh stack with no application). Stop at once, naming the
    cause, rather than run the suite scattered.
    """
    if node.config.getvalue("dist") != "loadgroup":
        return
    ungrouped = [nodeid for nodeid in ids if "@" not in nodeid]
    if ungrouped:
        pytest.exit(
            f"--dist loadgroup is not grouping: {ungrouped[0]} has no @group suffix "
            f"(pytest {pytest.__version__}; see tests/conftest.py)",
            returncode=4,
        )
