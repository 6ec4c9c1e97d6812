"""An id typed on the command line past its column's type is refused naming the argument: it
was an OverflowError traceback from the SQLite driver (a DataError from PostgreSQL)."""

from __future__ import annotations

import pytest
from flask import Flask


@pytest.mark.parametrize(
    "args",
    [
        ["job", "output", "99999999999999999999"],
        ["job", "show", "99999999999999999999"],
        ["runtemplate", "show", "99999999999"],
        ["credential", "show", "99999999999"],
        ["action", "retry", "99999999999999999999"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_huge_id_is_a_usage_error(app: Flask, args: list[str]) -> None:
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 2, result.output
    assert "is not in the range" in result.output
    assert isinstance(result.exception, SystemExit)  # click's usage error, no traceback


def test_an_id_in_range_that_does_not_exist_is_not_found(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["runtemplate", "show", "2147483647"])
    assert result.exit_code == 1 and "not found" in result.output
