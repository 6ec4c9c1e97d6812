"""Ranges of the numbers users type: one place for forms, CLI options and services alike."""

from __future__ import annotations

from dataclasses import dataclass

INT32_MAX = 2**31 - 1  # an INTEGER column on PostgreSQL; no bound below may exceed it
DIGITS_MAX = 12  # longer input is refused before int() (which is slow on 100k digits)


class BoundError(ValueError):
    """A number outside its range; the message names the field, the value and the range."""


@dataclass(frozen=True)
class Bound:
    name: str
    low: int
    high: int
    unit: str = ""

    def check(self, value: int) -> int:
        unit = f" {self.unit}" if self.unit else ""
        if value < self.low:
            raise BoundError(f"{self.name} {value}: must be {self.low} or more{unit}")
        if value > self.high:
            raise BoundError(f"{self.name} {value}: must be at most {self.high}{unit}")
        return value

    def parse(self, raw: str) -> int:
        """A whole number typed in a form or sent in JSON, checked against the range."""
        text = raw.strip()
        digits = text.removeprefix("-")
        if not (digits.isascii() and digits.isdigit()) or len(digits) > DIGITS_MAX:
            unit = f" {self.unit}" if self.unit else ""
            shown = text if len(text) <= 40 else text[:40] + "…"
            raise BoundError(f"{self.name} {shown!r}: must be a whole number{unit}")
        return self.check(int(text))


DAY = 86_400
TIMEOUT = Bound("timeout", 1, 366 * DAY, "seconds")
DELAY = Bound("delay", 0, 366 * DAY, "seconds")
MAX_ATTEMPTS = Bound("max_attempts", 1, 100)
RETRY_MIN_GAP = Bound("retry_min_gap", 0, 30 * DAY, "seconds")
RULE_PRIORITY = Bound("priority", -1_000_000, 1_000_000)
SIGNATURE_TOLERANCE = Bound("signature_tolerance", 1, DAY, "seconds")


BIGINT_MAX = 2**63 - 1  # ids of the tables that grow without bound (jobs, output, audit)


def parse_id(raw: str, high: int = INT32_MAX) -> int | None:
    """A row id or count typed in a form or a query string; None when it is not one. `high` is
    the column's type: PostgreSQL refuses a larger parameter with an error, not "no row"."""
    text = raw.strip()
    if text.isascii() and text.isdigit() and len(text) <= len(str(high)) and int(text) <= high:
        return int(text)
    return None


JSON_DEPTH = 64  # payloads and definitions nest a few levels; deeper is refused, not recursed


def check_json_depth(value: object, name: str) -> None:
    """BoundError when a parsed JSON value nests deeper than JSON_DEPTH (checked iteratively)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > JSON_DEPTH:
                raise BoundError(f"{name}: nested deeper than {JSON_DEPTH} levels")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
