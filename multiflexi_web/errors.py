"""Exceptions shown to people and logs: their first line, never a multi-line traceback text."""

from __future__ import annotations

LINE_MAX = 300


def first_line(exc: BaseException, limit: int = LINE_MAX) -> str:
    """The first line of an exception's message, cut to `limit`; its class name when empty."""
    text = str(exc).strip()
    return text.splitlines()[0].rstrip()[:limit] if text else type(exc).__name__
