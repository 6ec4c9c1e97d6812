"""Tenant-supplied expressions: regexes in linear time (RE2) and JSON paths within bounds."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    import re2

# A pattern is a file-name regex; longer ones are not file-name patterns.
PATTERN_MAX = 500
# RE2 builds a bounded automaton; this caps the memory one pattern may take.
PATTERN_MEMORY = 8 * 1024 * 1024
# `$.a.b[0]`: at most this many characters and steps (payloads nest less than this).
PATH_MAX = 500
PATH_DEPTH = 32


class Matcher(Protocol):
    def search(self, text: str) -> object | None: ...


class ExpressionError(ValueError):
    """An expression a tenant supplied cannot be used; the message names it and says why."""


def _options() -> re2.Options:
    import re2  # RE2 and libstdc++ (~4 MiB): loaded by the first pattern, not by every daemon

    opts = re2.Options()
    opts.log_errors = False  # the error is raised to the caller, not printed on stderr
    opts.max_mem = PATTERN_MEMORY
    return opts


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Matcher:
    """A linear-time matcher; ExpressionError for what RE2 refuses (backreferences, lookaround)."""
    if len(pattern) > PATTERN_MAX:
        raise ExpressionError(f"pattern {pattern[:40]!r}…: longer than {PATTERN_MAX} characters")
    import re2

    try:
        return cast(Matcher, re2.compile(pattern, _options()))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise ExpressionError(
            f"pattern {pattern!r}: {reason} (backreferences and lookaround are not supported)"
        ) from None


def check_patterns(patterns: Iterable[str], where: str) -> None:
    """Raise ExpressionError naming the first pattern that cannot be compiled."""
    for pattern in patterns:
        try:
            compile_pattern(pattern)
        except ExpressionError as exc:
            raise ExpressionError(f"{where}: {exc}") from None


def check_path(path: str, steps: int, where: str) -> None:
    """A JSON path within PATH_MAX characters and PATH_DEPTH steps."""
    if len(path) > PATH_MAX:
        raise ExpressionError(f"{where} {path[:40]!r}…: longer than {PATH_MAX} characters")
    if steps > PATH_DEPTH:
        raise ExpressionError(f"{where} {path[:40]!r}…: deeper than {PATH_DEPTH} steps")
