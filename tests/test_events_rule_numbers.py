"""Rule conditions compare numbers as numbers: JSON has one number type, so 100 and 100.0 are
the same value (and true is not 1)."""

from __future__ import annotations

from multiflexi_web.services.events.rules import condition_holds, parse_conditions


def test_the_same_number_written_as_float_matches() -> None:
    equals, in_ = parse_conditions("$.amount == 100\n$.n in 1, 2")
    assert condition_holds({"amount": "100"}, equals)  # a string is coerced ...
    assert condition_holds({"amount": 100.0}, equals)  # ... the same number is not
    assert condition_holds({"n": 2.0}, in_)


def test_different_numbers_and_booleans_do_not_match() -> None:
    [equals] = parse_conditions("$.amount == 100")
    assert not condition_holds({"amount": 100.5}, equals)
    [flag] = parse_conditions("$.flag == 1")
    assert not condition_holds({"flag": True}, flag)
