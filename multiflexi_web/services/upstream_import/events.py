"""Upstream `event_source` (webhook-acceptor databases) and `event_rule` -> ours."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from sqlalchemy.engine import URL

from multiflexi_web.extensions import db
from multiflexi_web.models import EventRule, EventSource, SourceKind
from multiflexi_web.security.secrets import cipher
from multiflexi_web.services.events.catalog import (
    EventSourceError,
    RuleSpec,
    create_rule,
    create_source,
    update_rule,
)
from multiflexi_web.services.upstream_import.context import Context, Refused, apply, outcome
from multiflexi_web.services.upstream_import.reader import Row, flag, text_of

DRIVERS = {"mysql": "mysql+pymysql", "pgsql": "postgresql+psycopg", "sqlite": "sqlite"}


def import_events(ctx: Context) -> None:
    ctx.each("event_source", ctx.reader.rows("event_source"), partial(_source, ctx))
    ctx.each("event_rule", ctx.reader.rows("event_rule"), partial(_rule, ctx))


def source_url(row: Row) -> str:
    kind = text_of(row.get("db_connection")).strip() or "mysql"
    driver = DRIVERS.get(kind)
    if driver is None:
        raise Refused(f"db_connection {kind!r}: unknown (known: {', '.join(DRIVERS)})")
    database = text_of(row.get("db_database"))
    if driver == "sqlite":
        return f"sqlite:///{database}"
    port = int(row["db_port"]) if row.get("db_port") else None
    url = URL.create(
        driver,
        username=text_of(row.get("db_username")) or None,
        host=text_of(row.get("db_host")) or None,
        port=port,
        database=database or None,
    )
    return url.render_as_string(hide_password=False)


def _source(ctx: Context, row: Row) -> str:
    config: dict[str, object] = {"url": source_url(row), "table": "changes_cache"}
    if row.get("poll_interval"):  # seconds; the column came in 2026-02 (default 60 upstream)
        config["poll_interval"] = max(1, int(row["poll_interval"]))
    password = text_of(row.get("db_password")) or None
    name = text_of(row.get("name")).strip() or f"upstream source {row['id']}"
    our_id = ctx.ids.get("event_source", row["id"])
    source = db.session.get(EventSource, our_id) if our_id else None
    created = source is None
    try:
        if source is None:
            source = create_source(name, SourceKind.CHANGES_DB.value, config, secret=password)
            # Continue after the last change upstream processed (it deletes processed ones).
            source.last_processed_id = int(row.get("last_processed_id") or 0)
        changed = apply(
            source,
            {
                "name": name,
                "config": {**source.config, **config},
                "enabled": flag(row.get("enabled")),
            },
        )
        if not created and password and cipher().decrypt(source.secret or "") != password:
            source.secret, changed = cipher().encrypt(password), True
    except EventSourceError as exc:
        raise Refused(str(exc)) from None
    db.session.flush()
    ctx.ids.put("event_source", row["id"], source.id)
    return outcome(created, changed)


def selector(raw: str) -> str:
    """Upstream's `a.b` and `$.a.b` selectors as our JSON paths; `@file:` has no counterpart."""
    text = raw.strip()
    if text.startswith("@file:"):
        raise Refused(
            f"selector {text!r}: produced files of a finished job are passed by the "
            "ChainRuntemplate action here (pass_files), not by event rules"
        )
    return text if text.startswith("$") else f"$.{text}"


def _spec(ctx: Context, row: Row) -> RuleSpec:
    if row.get("runtemplate_source_id"):
        raise Refused("fires on another RunTemplate's completion: use a ChainRuntemplate action")
    try:
        mapping: Any = json.loads(text_of(row.get("env_mapping")) or "{}")
    except ValueError:
        raise Refused("env_mapping: broken JSON") from None
    if not isinstance(mapping, dict):
        raise Refused("env_mapping: not a JSON object")
    return RuleSpec(
        runtemplate_id=ctx.our("runtemplate", row.get("runtemplate_id"), "runtemplate"),
        name=f"upstream rule {row['id']}",
        evidence=text_of(row.get("evidence")).strip() or None,
        operation=text_of(row.get("operation")).strip() or "any",
        env_mapping={str(k): selector(text_of(v)) for k, v in mapping.items()},
        priority=int(row.get("priority") or 0),
        enabled=flag(row.get("enabled", True)),
        admin=True,
    )


def _rule(ctx: Context, row: Row) -> str:
    spec = _spec(ctx, row)
    source_id = ctx.our("event_source", row.get("event_source_id"), "event source")
    our_id = ctx.ids.get("event_rule", row["id"])
    rule = db.session.get(EventRule, our_id) if our_id else None
    try:
        if rule is None:
            source = db.session.get(EventSource, source_id)
            assert source is not None  # noqa: S101 - mapped in this transaction
            rule = create_rule(source, spec)
            ctx.ids.put("event_rule", row["id"], rule.id)
            return outcome(True, True)
        wanted = (spec.runtemplate_id, spec.evidence, spec.operation, spec.env_mapping)
        have = (rule.runtemplate_id, rule.evidence, rule.operation, rule.env_mapping)
        if wanted == have and (rule.priority, rule.enabled) == (spec.priority, spec.enabled):
            return outcome(False, False)
        update_rule(rule, spec)
    except EventSourceError as exc:
        raise Refused(str(exc)) from None
    return outcome(False, True)
