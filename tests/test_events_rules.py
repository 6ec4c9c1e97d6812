"""Rule matching and the environment a rule produces (pure functions, no database)."""

from __future__ import annotations

from typing import Any

import pytest

from multiflexi_web.models import EventRule
from multiflexi_web.services.events.rules import (
    EventFacts,
    RuleError,
    is_missing,
    ordered,
    rule_env,
    rule_matches,
    select_path,
    validate_rule_fields,
)

PAYLOAD = {
    "action": "opened",
    "repo": {"name": "multiflexi", "stars": 42, "private": False},
    "items": [{"sku": "A"}, {"sku": "B"}],
    "empty": None,
}


def _rule(**kw: Any) -> EventRule:
    values: dict[str, Any] = {
        "id": 1,
        "enabled": True,
        "operation": "any",
        "priority": 0,
        "conditions": [],
        "env_mapping": {},
        "evidence": None,
    }
    values.update(kw)
    return EventRule(**values)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("$.action", "opened"),
        ("action", "opened"),
        ("$.repo.name", "multiflexi"),
        ("repo.stars", 42),
        ("$.items[1].sku", "B"),
        ("$.items.0.sku", "A"),
        ("$.items[-1].sku", "B"),
        ("$.empty", None),
        ("$", PAYLOAD),
    ],
)
def test_select_walks_dotted_and_indexed_paths(selector: str, expected: Any) -> None:
    assert select_path(PAYLOAD, selector) == expected


@pytest.mark.parametrize(
    "selector", ["$.nope", "$.repo.name.deeper", "$.items[5].sku", "$.action[0]"]
)
def test_select_reports_missing_paths(selector: str) -> None:
    assert is_missing(select_path(PAYLOAD, selector))


@pytest.mark.parametrize(
    ("conditions", "matches"),
    [
        ([{"path": "$.action", "op": "equals", "value": "opened"}], True),
        ([{"path": "$.action", "op": "equals", "value": "closed"}], False),
        ([{"path": "$.repo.stars", "value": "42"}], True),  # text typed in a form
        ([{"path": "$.repo.private", "value": "false"}], True),
        ([{"path": "$.repo.private", "value": 0}], False),
        ([{"path": "$.empty", "op": "exists"}], True),
        ([{"path": "$.missing", "op": "exists"}], False),
        ([{"path": "$.action", "op": "in", "value": ["closed", "opened"]}], True),
        ([{"path": "$.action", "op": "in", "value": ["closed"]}], False),
        ([{"path": "$.missing", "op": "in", "value": [None]}], False),
        ([{"path": "$.action", "value": "opened"}, {"path": "$.x", "op": "exists"}], False),
        ([], True),
    ],
)
def test_conditions_all_have_to_hold(conditions: list[dict[str, Any]], matches: bool) -> None:
    assert rule_matches(_rule(conditions=conditions), PAYLOAD) is matches


def test_disabled_rule_never_matches() -> None:
    assert not rule_matches(_rule(enabled=False), PAYLOAD)


@pytest.mark.parametrize(
    ("evidence", "operation", "matches"),
    [
        (None, "any", True),
        ("faktura-vydana", "any", True),
        ("banka", "any", False),
        ("faktura-vydana", "update", True),
        (None, "delete", False),
        ("", "any", True),
    ],
)
def test_changes_db_evidence_and_operation(
    evidence: str | None, operation: str, matches: bool
) -> None:
    change = {"inversion": 7, "evidence": "faktura-vydana", "operation": "update", "recordid": 12}
    assert rule_matches(_rule(evidence=evidence, operation=operation), change) is matches


def test_higher_priority_first_then_creation_order() -> None:
    rules = [_rule(id=1, priority=0), _rule(id=2, priority=5), _rule(id=3, priority=5)]
    assert [r.id for r in ordered(rules)] == [2, 3, 1]


def test_env_mapping_and_builtin_variables() -> None:
    rule = _rule(
        env_mapping={
            "REPO": "$.repo.name",
            "STARS": "$.repo.stars",
            "FIRST": "$.items[0]",
            "PRIVATE": "$.repo.private",
            "GONE": "$.missing",
        }
    )
    env = rule_env(rule, EventFacts(17, "github", "webhook", PAYLOAD))
    assert env == {
        "EVENT_ID": "17",
        "EVENT_SOURCE": "github",
        "REPO": "multiflexi",
        "STARS": "42",
        "FIRST": '{"sku": "A"}',
        "PRIVATE": "false",
    }


def test_directory_events_get_event_file() -> None:
    env = rule_env(_rule(), EventFacts(3, "inbox", "directory", {"path": "/in/a.csv", "size": 3}))
    assert env["EVENT_FILE"] == "/in/a.csv"


def test_changes_db_events_get_upstream_names() -> None:
    change = {
        "inversion": 7,
        "evidence": "banka",
        "operation": "create",
        "recordid": 12,
        "document_uri": None,
    }
    env = rule_env(
        _rule(env_mapping={"DOC": "recordid"}), EventFacts(9, "abra", "changes-db", change)
    )
    assert env == {
        "EVENT_ID": "9",
        "EVENT_SOURCE": "abra",
        "EVENT_INVERSION": "7",
        "EVENT_EVIDENCE": "banka",
        "EVENT_OPERATION": "create",
        "EVENT_RECORD_ID": "12",
        "EVENT_DOCUMENT_URI": "",
        "DOC": "12",
    }


@pytest.mark.parametrize(
    ("conditions", "env_mapping", "operation", "message"),
    [
        ([{"path": ""}], {}, "any", "condition 1: needs a path"),
        ([{"path": "$.a", "op": "like"}], {}, "any", "op must be one of"),
        ([{"path": "$.a", "op": "in", "value": "x"}], {}, "any", "'in' needs a list"),
        ([], {"1BAD": "$.a"}, "any", "env_mapping key '1BAD'"),
        ([], {"OK": ""}, "any", "env_mapping OK"),
        ([], {}, "merge", "operation 'merge'"),
    ],
)
def test_invalid_rules_are_refused_with_a_reason(
    conditions: list[dict[str, Any]], env_mapping: dict[str, str], operation: str, message: str
) -> None:
    with pytest.raises(RuleError, match=message):
        validate_rule_fields(conditions, env_mapping, operation)
