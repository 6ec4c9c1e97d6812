"""Shared CLI plumbing: --format, output of rows, K=V parsing, one-line errors."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

from multiflexi_web.db.engine import begin_write
from multiflexi_web.extensions import db
from multiflexi_web.models.bounds import BIGINT_MAX, INT32_MAX, Bound, BoundError

F = TypeVar("F", bound=Callable[..., Any])
# Ids typed on the command line, within their column's type: a huge one is refused naming the
# argument, not an overflow traceback from the driver (SQLite) or the server (PostgreSQL).
ROW_ID = click.IntRange(0, INT32_MAX)
BIG_ID = click.IntRange(0, BIGINT_MAX)  # jobs, their output and artifacts, action runs, events

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)


def parse_pairs(pairs: Sequence[str], what: str = "--env") -> dict[str, str]:
    """K=V arguments to a dict; a pair without '=' is a usage error naming it."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"{what} {pair!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def emit(rows: Iterable[dict[str, Any]] | dict[str, Any], fmt: str, columns: Sequence[str]) -> None:
    """Print one record or a list of records as JSON or an aligned text table."""
    if fmt == "json":
        payload: Any
        if isinstance(rows, dict):
            payload = {k: _jsonable(v) for k, v in rows.items()}
        else:
            payload = [{k: _jsonable(v) for k, v in r.items()} for r in rows]
        echo_json(payload)
        return
    if isinstance(rows, dict):
        width = max((len(k) for k in rows), default=0)
        for key, value in rows.items():
            click.echo(f"{key.ljust(width)}  {_text(value)}")
        return
    table = [[_text(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in table]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


# C0 and C1 control characters and DEL: what a terminal may act on rather than show.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_WIDE_CONTROL = re.compile(r"[\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` for an operator's terminal: each control character written as its escape (\\n,
    \\x1b). Names, config values, event payloads and peers' answers are other people's input,
    and an escape sequence in them would act on the terminal (retitle it, hide or rewrite what
    is shown, set the clipboard); a newline would also break a table's rows."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def echo_json(payload: Any, default: Callable[[Any], Any] | None = str) -> None:
    """Print `payload` as indented JSON whose strings escape DEL and the C1 controls too
    (json.dumps escapes only C0 ones): they can only stand inside a string, where \\u0080
    means the same character."""
    text = json.dumps(payload, indent=2, ensure_ascii=False, default=default)
    click.echo(_WIDE_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S%z")
    if isinstance(value, (list, tuple)):
        return printable(",".join(str(v) for v in value))
    if isinstance(value, dict):
        return printable(json.dumps(value, ensure_ascii=False))
    return printable(str(value))


def writer(fn: F) -> F:
    """A command that writes: its unit of work begins as SQLite's writer (BEGIN IMMEDIATE),
    waiting up to the busy timeout for the lock. Begun as a reader, its first write would fail
    at once with "database is locked" whenever a daemon wrote after its first read (WAL)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        begin_write()
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def domain_errors(*errors: type[Exception]) -> Callable[[F], F]:
    """Turn the listed domain errors into a one-line CLI error and roll back the unit of work."""

    def decorate(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except errors as exc:
                db.session.rollback()
                raise click.ClickException(str(exc)) from None

        return wrapper  # type: ignore[return-value]

    return decorate


if TYPE_CHECKING:  # generic in the installed click; older releases are not subscriptable
    _IntParam = click.ParamType[int, Any]
else:
    _IntParam = click.ParamType


class BoundedInt(_IntParam):
    """A whole number within a Bound: the portal's range and message, on the command line."""

    name = "integer"

    def __init__(self, bound: Bound) -> None:
        self.bound = bound

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            value = str(value)
        try:
            return self.bound.parse(str(value))
        except BoundError as exc:
            self.fail(str(exc), param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        return f"{self.bound.low}..{self.bound.high}"


def in_range(bound: Bound) -> BoundedInt:
    """A click type for a bounded number: the same range as the portal's forms and services."""
    return BoundedInt(bound)


def company_id(ref: str | None) -> int | None:
    """`--company` as every command takes it: an id or a slug (CompanyError when unknown)."""
    from multiflexi_web.services.accounts.companies import get_company

    return None if ref is None else get_company(ref).id


def application_id(ref: str | None) -> int | None:
    """`--app` as every command takes it: an id or a uuid (ApplicationError when unknown)."""
    from multiflexi_web.services.catalogue.applications import get_application

    return None if ref is None else get_application(ref).id


def stdin_option(flag: str, what: str) -> Callable[[F], F]:
    """`--value-stdin KEY` and its kin: KEY's value read from standard input. A secret given as
    K=V on the command line is seen by every user of the host in the process list and kept in
    shell history; the parameter is `stdin_key`."""
    return click.option(
        f"{flag}-stdin",
        "stdin_key",
        metavar="KEY",
        help=f"Read KEY's {what} from standard input (one trailing newline dropped) instead of "
        f"{flag} K=V, which every user of the host sees in the process list.",
    )


def pairs_and_stdin(pairs: Sequence[str], flag: str, stdin_key: str | None) -> dict[str, str]:
    """parse_pairs(pairs), plus stdin_key's value from standard input when given."""
    values = parse_pairs(pairs, flag)
    if stdin_key:
        text = sys.stdin.read()
        values[stdin_key] = text[:-1] if text.endswith("\n") else text
    return values
