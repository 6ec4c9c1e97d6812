"""Migrations: empty → head → base on both databases; models and migrations agree."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from multiflexi_web import create_app
from multiflexi_web.extensions import db
from multiflexi_web.models import Base
from tests.conftest import PG_ADMIN_URL, _pg_available, make_settings
from tests.services import need


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    need(_pg_available(), f"PostgreSQL ({PG_ADMIN_URL})")
    name = f"mf_mig_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield (
        PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        + "/"
        + name
    )
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_upgrade_matches_models_and_downgrades_to_base(empty_url: str, tmp_path: Path) -> None:
    app = create_app({"TESTING": True}, settings=make_settings(empty_url, tmp_path))
    with app.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        migrated = _partial_indexes()
        migrated_triggers = _triggers()
        assert migrated_triggers, "the config_epoch triggers are missing"
        downgrade(revision="base")
        assert _triggers() == {}
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        # Autogenerate does not compare partial indexes' predicates: the database's own
        # rendering of the migrated ones must equal that of the models' ones.
        Base.metadata.create_all(db.engine)
        assert migrated == _partial_indexes()
        assert migrated_triggers == _triggers()
        Base.metadata.drop_all(db.engine)
        db.engine.dispose()


def _triggers() -> dict[str, str]:
    """Trigger name -> its definition, as the database itself renders it."""
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
            )
        else:
            rows = conn.exec_driver_sql(
                "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"
            )
        return {str(name): " ".join(str(sql).split()) for name, sql in rows}


def _partial_indexes() -> dict[tuple[str, str], str]:
    insp = inspect(db.engine)
    key = f"{db.engine.dialect.name}_where"
    out = {}
    for table in Base.metadata.tables:
        for ix in insp.get_indexes(table):
            where = ix.get("dialect_options", {}).get(key)
            if where is not None:
                out[(table, str(ix["name"]))] = " ".join(str(where).split())
    assert out, "no partial index reflected"
    return out
