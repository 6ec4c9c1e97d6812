"""Upstream's success/fail action maps (PHP-serialised) with their actionconfig rows, and the
global module defaults (modconfig), as our action configs."""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from typing import Any

from sqlalchemy import select

from multiflexi_web.actions import registry
from multiflexi_web.extensions import db
from multiflexi_web.models import RunTemplate
from multiflexi_web.models.action import ActionConfig, ActionDefault
from multiflexi_web.services.actions import configure, values
from multiflexi_web.services.actions.upstream import UpstreamAction, convert
from multiflexi_web.services.upstream_import.context import Context, Refused, outcome
from multiflexi_web.services.upstream_import.reader import Row, text_of

# Config keys holding an upstream RunTemplate id: renumbered to ours.
RUNTEMPLATE_KEYS = {"ChainRuntemplate": "rtid", "LaunchJob": "jobid"}


def import_actions(ctx: Context) -> None:
    defaults: dict[str, dict[str, str]] = defaultdict(dict)
    for row in ctx.reader.rows("modconfig"):
        key = row.get("cfg") if "cfg" in row else row.get("key")  # `key` before 2024-01
        defaults[text_of(row.get("module"))][text_of(key)] = text_of(row.get("value"))
    for kind, given in defaults.items():
        ctx.each("modconfig", [{"id": kind, "name": kind}], partial(_default, ctx, kind, given))
    configs = ctx.grouped("actionconfig", "runtemplate_id")
    unused = sum(
        text_of(r.get("mode")) not in ("success", "fail") for rows in configs.values() for r in rows
    )
    if unused:  # upstream reads a module's config only under success or fail
        ctx.report.note(f"actionconfig: {unused} rows without a success or fail mode not carried")
    for row in ctx.reader.rows("runtemplate"):
        rt_id = ctx.ids.get("runtemplate", row["id"])
        if rt_id is None:
            continue
        try:
            found = convert(row.get("success"), row.get("fail"), configs.get(row["id"], []))
        except ValueError as exc:
            ctx.report.refuse("actions", f"runtemplate #{row['id']}", f"action map: {exc}")
            continue
        # A kind toggled off with nothing configured carries nothing over.
        items = [{"id": row["id"], "action": a} for a in found if a.enabled or a.config]
        ctx.each("actions", items, partial(_action, ctx, rt_id), _label)


def _label(item: Row) -> str:
    action: UpstreamAction = item["action"]
    return f"runtemplate #{item['id']} {action.mode} {action.kind}"


def _known_keys(ctx: Context, where: str, kind: str, given: dict[str, str]) -> dict[str, str]:
    known = {f.key for f in registry.get(kind).fields}
    dropped = sorted(set(given) - known)
    if dropped:
        ctx.report.note(
            f"{where} {kind}: config {', '.join(dropped)} has no meaning here; left out"
        )
    return {k: v for k, v in given.items() if k in known}


def _check_kind(kind: str) -> None:
    if kind not in registry.REGISTRY:
        raise Refused(f"action {kind!r}: unknown here (known: {', '.join(registry.names())})")


def _default(ctx: Context, kind: str, given: dict[str, str], _row: Row) -> str:
    _check_kind(kind)
    given = _known_keys(ctx, "modconfig", kind, given)
    row = db.session.scalar(select(ActionDefault).where(ActionDefault.action == kind))
    if row is not None and values.plain(row.config or {}) == {
        **values.plain(row.config or {}),
        **given,
    }:
        return outcome(False, False)
    configure.put_default(kind, given, is_admin=True)
    return outcome(row is None, True)


def _renumber(ctx: Context, kind: str, config: dict[str, str]) -> dict[str, str]:
    key = RUNTEMPLATE_KEYS.get(kind)
    if key is None or not config.get(key):
        return config
    target = ctx.ids.get("runtemplate", config[key].strip())
    if target is None:
        raise Refused(f"{key} {config[key]!r}: that RunTemplate was not carried over")
    return {**config, key: str(target)}


def _action(ctx: Context, rt_id: int, item: Row) -> str:
    action: UpstreamAction = item["action"]
    _check_kind(action.kind)
    rt = db.session.get(RunTemplate, rt_id)
    assert rt is not None  # noqa: S101 - mapped in this transaction
    given = _renumber(
        ctx, action.kind, _known_keys(ctx, "actionconfig", action.kind, action.config)
    )
    row = db.session.scalar(
        select(ActionConfig).where(
            ActionConfig.runtemplate_id == rt.id,
            ActionConfig.mode == action.mode,
            ActionConfig.action == action.kind,
        )
    )
    if row is not None and _same(row, action.enabled, given):
        return outcome(False, False)
    try:
        stored = configure.put(rt, action.mode, action.kind, given, is_admin=True)
    except configure.ActionConfigError as exc:
        raise Refused(str(exc)) from None
    stored.enabled = action.enabled
    db.session.flush()
    return outcome(row is None, True)


def _same(row: ActionConfig, enabled: bool, given: dict[str, Any]) -> bool:
    mine = values.plain(row.config or {})
    return row.enabled == enabled and all(mine.get(k) == v for k, v in given.items())
