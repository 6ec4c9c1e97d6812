"""Event rules: payload selectors, match conditions and the environment a matching rule produces."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from multiflexi_web.models import EventRule, SourceKind
from multiflexi_web.models.bounds import BoundError, check_json_depth
from multiflexi_web.security.env_names import forbidden_reason
from multiflexi_web.security.expressions import PATH_DEPTH, PATH_MAX, ExpressionError, check_path

OPS = ("equals", "exists", "in")
OPERATIONS = ("any", "create", "update", "delete")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MISSING = object()
MAX_CONDITIONS = 50
MAX_IN_VALUES = 1000
_STEP_RE = re.compile(r"[^.\[\]]+|\[-?\d+\]")
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


def select_path(payload: Any, selector: str) -> Any:
    """Walk `$.a.b[0].c` (or upstream's plain `a.b.c`); returns _MISSING when absent."""
    path = selector.strip()[:PATH_MAX]
    path = path[1:] if path.startswith("$") else path
    node = payload
    # Bounded whatever was stored: a path deeper than PATH_DEPTH selects nothing.
    steps = _STEP_RE.findall(path)
    for step in steps if len(steps) <= PATH_DEPTH else [""]:
        node = _step(node, step)
        if node is _MISSING:
            break
    return node


def _step(node: Any, step: str) -> Any:
    if len(step) > 20 and step.lstrip("[-").rstrip("]").isdigit():
        return _MISSING  # no list is that long; int() of it would be slow
    if step.startswith("[") or (isinstance(node, list) and step.isdigit()):
        index = int(step.strip("[]"))
        inside = isinstance(node, list) and -len(node) <= index < len(node)
        return node[index] if inside else _MISSING
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
    if _is_number(actual) and _is_number(expected):
        # JSON has one number type: 100 and 100.0 are the same value, whatever the spelling.
        return bool(actual == expected)
    scalar = (str, int, float, bool, type(None))
    return (
        isinstance(actual, scalar)
        and isinstance(expected, scalar)
        and (as_env_value(actual) == as_env_value(expected))
    )


def _is_number(value: Any) -> bool:
    # bool is an int to Python, but true is not 1 in a JSON payload.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def condition_holds(payload: Any, cond: Mapping[str, Any]) -> bool:
    actual = select_path(payload, str(cond.get("path", "")))
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
    if rule.evidence and not _same(select_path(payload, "evidence"), rule.evidence):
        return False
    operation = rule.operation or "any"
    if operation != "any" and not _same(select_path(payload, "operation"), operation):
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
        path = select_path(facts.payload, "path")
        if path is not _MISSING:
            env["EVENT_FILE"] = as_env_value(path)
    if facts.source_kind == SourceKind.CHANGES_DB.value:
        for key, column in CHANGES_DB_ENV.items():
            value = select_path(facts.payload, column)
            env[key] = "" if value is _MISSING or value is None else as_env_value(value)
    return env


def rule_env(rule: EventRule, facts: EventFacts) -> dict[str, str]:
    """EVENT_* defaults, overlaid by the rule's env_mapping (selectors that resolve)."""
    env = builtin_env(facts)
    for key, selector in (rule.env_mapping or {}).items():
        value = select_path(facts.payload, selector)
        if value is not _MISSING:
            env[key] = as_env_value(value)
    return env


def validate_rule_fields(
    conditions: list[dict[str, Any]], env_mapping: dict[str, str], operation: str
) -> None:
    """Raise RuleError naming the first bad condition, env key or operation."""
    if operation not in OPERATIONS:
        raise RuleError(f"operation {operation!r}: must be one of {', '.join(OPERATIONS)}")
    if len(conditions) > MAX_CONDITIONS or len(env_mapping) > MAX_CONDITIONS:
        raise RuleError(f"conditions: at most {MAX_CONDITIONS} conditions and env_mapping keys")
    for i, cond in enumerate(conditions, 1):
        _validate_condition(i, cond)
    for key, selector in env_mapping.items():
        if not ENV_KEY_RE.match(key[:256]):
            raise RuleError(f"env_mapping key {key!r}: letters, digits and _, not a leading digit")
        reason = forbidden_reason(key)
        if reason:
            raise RuleError(f"env_mapping key {key!r}: not allowed, {reason}")
        if not isinstance(selector, str) or not selector.strip():
            raise RuleError(f"env_mapping {key}: the selector must be a path such as $.a.b")
        _check_path(selector, f"env_mapping {key}:")


def _validate_condition(i: int, cond: dict[str, Any]) -> None:
    if not isinstance(cond, dict) or not str(cond.get("path", "")).strip():
        raise RuleError(f"condition {i}: needs a path such as $.a.b")
    op = cond.get("op", "equals")
    if op not in OPS:
        raise RuleError(f"condition {i} ({cond['path']}): op must be one of {', '.join(OPS)}")
    if op == "in" and not isinstance(cond.get("value"), list):
        raise RuleError(f"condition {i} ({cond['path']}): 'in' needs a list of values")
    if op == "in" and len(cond["value"]) > MAX_IN_VALUES:
        raise RuleError(f"condition {i}: 'in' takes {MAX_IN_VALUES} values at most")
    _check_path(str(cond["path"]), f"condition {i}: path")


def _check_path(path: str, where: str) -> None:
    try:
        check_path(path, len(_STEP_RE.findall(path[: PATH_MAX + 1])), where)
    except ExpressionError as exc:
        raise RuleError(str(exc)) from None


_COND_RE = re.compile(r"^(?P<path>\S+)\s+(?P<op>==|=|exists|in)\s*(?P<value>.*)$")


def parse_conditions(text: str) -> list[dict[str, Any]]:
    """Form lines `$.a == x`, `$.a exists`, `$.a in x, y` to conditions (values JSON or text)."""
    out: list[dict[str, Any]] = []
    for i, line in enumerate((ln.strip() for ln in text.splitlines()), 1):
        if not line:
            continue
        match = _COND_RE.match(line)
        if match is None:
            raise RuleError(
                f"conditions line {i} {line!r}: write $.path == value, "
                "$.path exists or $.path in a, b"
            )
        path, op, value = match["path"], match["op"], match["value"].strip()
        if op == "exists":
            out.append({"path": path, "op": "exists"})
        elif op == "in":
            out.append(
                {
                    "path": path,
                    "op": "in",
                    "value": [_typed(v.strip()) for v in value.split(",") if v.strip()],
                }
            )
        else:
            out.append({"path": path, "op": "equals", "value": _typed(value)})
    return out


def format_conditions(conditions: list[dict[str, Any]]) -> str:
    lines = []
    for cond in conditions or []:
        op = cond.get("op", "equals")
        if op == "exists":
            lines.append(f"{cond['path']} exists")
        elif op == "in":
            lines.append(f"{cond['path']} in " + ", ".join(_text(v) for v in cond.get("value", [])))
        else:
            lines.append(f"{cond['path']} == {_text(cond.get('value'))}")
    return "\n".join(lines)


def parse_env_mapping(text: str) -> dict[str, str]:
    """Form lines `KEY=$.a.b` to an env_mapping."""
    out: dict[str, str] = {}
    for i, line in enumerate((ln.strip() for ln in text.splitlines()), 1):
        if not line:
            continue
        key, sep, selector = line.partition("=")
        if not sep:
            raise RuleError(f"env_mapping line {i} {line!r}: write KEY=$.path")
        out[key.strip()] = selector.strip()
    return out


def _loads(raw: str) -> Any:
    """JSON when the text is JSON (42, true, [..]), else the text itself."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # also 5,000-digit numbers and very deep lists
        return raw


def _typed(raw: str) -> Any:
    value = _loads(raw)
    try:
        check_json_depth(value, f"value {raw[:40]!r}")
    except BoundError as exc:
        raise RuleError(str(exc)) from None
    return value


def _text(value: Any) -> str:
    # A string that would read back as something else ("42", "true") keeps its JSON quotes.
    if isinstance(value, str) and _loads(value) == value and "," not in value:
        return value
    return json.dumps(value, ensure_ascii=False)
