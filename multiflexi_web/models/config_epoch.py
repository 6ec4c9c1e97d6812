"""A counter the database bumps whenever configuration a job runs with changes.

The executor caches each RunTemplate's context (application, company, config, credentials:
eight queries to read). A cache kept for a fixed time either serves stale configuration or
reloads all the time; instead, triggers on every table the context is read from bump this one
row, and the executor reloads what it cached only when the counter moved. Triggers, not the
services, so that no write path (portal, CLI, import, key rotation, plain SQL) can forget it.

The scheduler's and the executor's own writes to `runtemplate` (next run, counters, last run)
touch none of the listed columns, so they never bump it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, event
from sqlalchemy.orm import Mapped, mapped_column

from multiflexi_web.models.base import Base

EPOCH_ID = 1

# table -> the UPDATE columns that matter (None: any column); inserts and deletes always count.
WATCHED: dict[str, tuple[str, ...] | None] = {
    "runtemplate": (
        "name",
        "timeout",
        "executor_options",
        "application_id",
        "company_id",
        "mask_output",
    ),
    "runtemplate_config": None,
    "runtemplate_credential": None,
    "application": None,
    "app_field": None,
    "company": None,
    "company_env": None,
    "credential": None,
    "credential_value": None,
    "credential_type": None,
    "credential_prototype": None,
    "credential_prototype_field": None,
    "file_upload": None,  # a RunTemplate's stored input files
    "action_config": None,  # TemplateContext.has_actions and action_facts
    # TemplateContext.action_facts: the global defaults merged into each config, exit meanings
    "action_default": None,
    "app_exit_code": None,
    # The webhook view's cached sources (services/events/intake.py); not the eventor's
    # bookkeeping columns (last_processed_id, last_error*), written all the time.
    "event_source": (
        "kind",
        "token",
        "secret",
        "config",
        "enabled",
        "require_timestamp",
        "signature_tolerance",
    ),
}

# An upsert: a missing row (a wiped table) is simply created again.
_BUMP = (
    "INSERT INTO config_epoch (id, n) VALUES (1, 1) "  # 1: EPOCH_ID
    "ON CONFLICT (id) DO UPDATE SET n = config_epoch.n + 1"
)
_PG_FUNCTION = "multiflexi_config_changed"


class ConfigEpoch(Base):
    __tablename__ = "config_epoch"

    id: Mapped[int] = mapped_column(primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


Watched = dict[str, tuple[str, ...] | None]


def trigger_names(dialect: str, watched: Watched = WATCHED) -> list[str]:
    if dialect == "postgresql":
        return [f"config_changed_{t}" for t in watched]
    return [f"config_changed_{t}_{op.lower()}" for t in watched for op in _sqlite_ops(t)]


def _sqlite_ops(table: str) -> tuple[str, ...]:
    # A new RunTemplate has no cached context: its inserts need not count.
    return ("INSERT", "UPDATE", "DELETE") if table != "runtemplate" else ("UPDATE", "DELETE")


def _update_clause(cols: tuple[str, ...] | None) -> str:
    return f"UPDATE OF {', '.join(cols)}" if cols else "UPDATE"


def create_sql(dialect: str, watched: Watched = WATCHED) -> list[str]:
    """The statements that install the triggers on this dialect (migrations pass the table
    list as it was when they were written)."""
    if dialect == "postgresql":
        out = [
            f"CREATE OR REPLACE FUNCTION {_PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {_BUMP}; RETURN NULL; END $$"
        ]
        for table, cols in watched.items():
            ops = [op for op in _sqlite_ops(table) if op != "UPDATE"]
            events = " OR ".join([*ops[:-1], _update_clause(cols), ops[-1]])
            out.append(
                f"CREATE TRIGGER config_changed_{table} AFTER {events} ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {_PG_FUNCTION}()"
            )
        return out
    out = []
    for table, cols in watched.items():
        for op in _sqlite_ops(table):
            what = _update_clause(cols) if op == "UPDATE" else op
            out.append(
                f"CREATE TRIGGER config_changed_{table}_{op.lower()} AFTER {what} ON {table} "
                f"BEGIN {_BUMP}; END"
            )
    return out


def drop_sql(dialect: str, watched: Watched = WATCHED) -> list[str]:
    if dialect == "postgresql":
        drops = [f"DROP TRIGGER IF EXISTS config_changed_{t} ON {t}" for t in watched]
        return [*drops, f"DROP FUNCTION IF EXISTS {_PG_FUNCTION}()"]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in trigger_names(dialect, watched)]


def _install(target: Any, connection: Any, **_: Any) -> None:
    """After create_all (tests, benchmarks): the triggers the migration installs (replaced when
    create_all runs again on an existing schema)."""
    for statement in [*drop_sql(connection.dialect.name), *create_sql(connection.dialect.name)]:
        connection.exec_driver_sql(statement)


def _uninstall(target: Any, connection: Any, **_: Any) -> None:
    """After drop_all: the triggers went with their tables; PostgreSQL keeps the function."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {_PG_FUNCTION}()")


event.listen(Base.metadata, "after_create", _install)
event.listen(Base.metadata, "after_drop", _uninstall)
