"""Event rules: payload selectors, match conditions and the environment a matching rule produces."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from multiflexi_web.models import EventRule, SourceKind

OPS = ("equals", "exists", "in")
OPERATIONS = ("any", "create", "update", "delete")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MISSING = object()
_STEP_RE = re.compile(r"[^.\[\]]+|\[\d+\]")
# Upstream's names for a changes_cache row, in the order the row's columns feed them.
CHANGES_DB_ENV = {
    "EVENT_INVERSION": "inversion",
    "EVENT_EVIDENCE": "evidence",
    "EVENT_OPERATION": "operation",
    "EVENT_RECORD_ID": "recordid",
    "EVENT_DOCUMENT_URI": "document_uri",
}


class RuleError(ValueError):
    """A rule definition is invalid; the message names the field and the reason."""


def select(payload: Any, selector: str) -> Any:
    """Walk `$.a.b[0].c` (or upstream's plain `a.b.c`); returns _MISSING when absent."""
    path = selector.strip()
    path = path[1:] if path.startswith("$") else path
    node = payload
    for step in _STEP_RE.findall(path):
        node = _step(node, step)
        if node is _MISSING:
            break
    return node


def _step(node: Any, step: str) -> Any:
    if step.startswith("[") or (isinstance(node, list) and step.isdigit()):
        index = int(step.strip("[]"))
        return node[index] if isinstance(node, list) and -len(node) <= index < len(node) else _MISSING
    if isinstance(node, Mapping) and step in node:
        return node[step]
    return _MISSING


def is_missing(value: Any) -> bool:
    return value is _MISSING


def as_env_value(value: Any) -> str:
    """Scalars as text (JSON spelling for true/false/null); objects and lists as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _same(actual: Any, expected: Any) -> bool:
    # A payload number and a rule typed in a form as text ("42") are the same value.
    if actual == expected and type(actual) is type(expected):
        return True
    scalar = (str, int, float, bool, type(None))
    return isinstance(actual, scalar) and isinstance(expected, scalar) and (
        as_env_value(actual) == as_env_value(expected)
    )


def condition_holds(payload: Any, cond: Mapping[str, Any]) -> bool:
    actual = select(payload, str(cond.get("path", "")))
    op = cond.get("op", "equals")
    if op == "exists":
        return actual is not _MISSING
    if actual is _MISSING:
        return False
    if op == "in":
        return any(_same(actual, v) for v in cond.get("value") or [])
    return _same(actual, cond.get("value"))


def rule_matches(rule: EventRule, payload: Any) -> bool:
    """Enabled, evidence and operation (empty/any = every one), then every condition."""
    if not rule.enabled:
        return False
    if rule.evidence and not _same(select(payload, "evidence"), rule.evidence):
        return False
    if rule.operation and rule.operation != "any":
        if not _same(select(payload, "operation"), rule.operation):
            return False
    return all(condition_holds(payload, c) for c in rule.conditions or [])


def ordered(rules: Iterable[EventRule]) -> list[EventRule]:
    """Higher priority first; ties in creation order."""
    return sorted(rules, key=lambda r: (-r.priority, r.id or 0))


@dataclass(frozen=True)
class EventFacts:
    """What the built-in EVENT_* variables are made of."""

    event_id: int | None
    source_name: str
    source_kind: str
    payload: Any


def builtin_env(facts: EventFacts) -> dict[str, str]:
    env = {
        "EVENT_ID": "" if facts.event_id is None else str(facts.event_id),
        "EVENT_SOURCE": facts.source_name,
    }
    if facts.source_kind == SourceKind.DIRECTORY.value:
        path = select(facts.payload, "path")
        if path is not _MISSING:
            env["EVENT_FILE"] = as_env_value(path)
    if facts.source_kind == SourceKind.CHANGES_DB.value:
        for key, column in CHANGES_DB_ENV.items():
            value = select(facts.payload, column)
            env[key] = "" if value is _MISSING or value is None else as_env_value(value)
    return env


def rule_env(rule: EventRule, facts: EventFacts) -> dict[str, str]:
    """EVENT_* defaults, overlaid by the rule's env_mapping (selectors that resolve)."""
    env = builtin_env(facts)
    for key, selector in (rule.env_mapping or {}).items():
        value = select(facts.payload, selector)
        if value is not _MISSING:
            env[key] = as_env_value(value)
    return env


def validate_rule_fields(
    conditions: list[dict[str, Any]], env_mapping: dict[str, str], operation: str
) -> None:
    """Raise RuleError naming the first bad condition, env key or operation."""
    if operation not in OPERATIONS:
        raise RuleError(f"operation {operation!r}: must be one of {', '.join(OPERATIONS)}")
    for i, cond in enumerate(conditions, 1):
        _validate_condition(i, cond)
    for key, selector in env_mapping.items():
        if not ENV_KEY_RE.match(key):
            raise RuleError(f"env_mapping key {key!r}: letters, digits and _, not starting with a digit")
        if not isinstance(selector, str) or not selector.strip():
            raise RuleError(f"env_mapping {key}: the selector must be a path such as $.a.b")


def _validate_condition(i: int, cond: dict[str, Any]) -> None:
    if not isinstance(cond, dict) or not str(cond.get("path", "")).strip():
        raise RuleError(f"condition {i}: needs a path such as $.a.b")
    op = cond.get("op", "equals")
    if op not in OPS:
        raise RuleError(f"condition {i} ({cond['path']}): op must be one of {', '.join(OPS)}")
    if op == "in" and not isinstance(cond.get("value"), list):
        raise RuleError(f"condition {i} ({cond['path']}): 'in' needs a list of values")
