"""Hot-path statements run on the driver's connection: compiled once per dialect, bound by hand.

The executor records hundreds of finishes a second, each a handful of statements. Through the
ORM session every statement paid ~40 µs to look up the session's connection and ~60 µs of
execution set-up (cache keys, parameter processing, result objects): more than the database
took to run it. A RawStatement is a Core statement compiled once per dialect together with its
bind processors (so values are converted exactly as SQLAlchemy would); running it is the
driver's own call. It runs on the session's connection, inside the session's transaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Connection,
    Dialect,
    String,
    TypeDecorator,
    bindparam,
    literal_column,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.sql import ClauseElement

_DRIVER_KEY = "multiflexi.raw_driver"
_WORD = re.compile(r"[a-z_]+")


def constants(*values: str) -> list[ColumnElement[str]]:
    """Fixed words as SQL literals, for IN lists of a RawStatement (the code's own enum
    values, never user input: anything but lower-case letters and '_' is refused)."""
    for v in values:
        if not _WORD.fullmatch(v):
            raise ValueError(f"not a plain word: {v!r}")
    return [literal_column(f"'{v}'", String) for v in values]


class _IdList(TypeDecorator[list[int]]):
    """A list of ids bound as one value: a bigint array on PostgreSQL, JSON text elsewhere."""

    impl = String()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(BigInteger()))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        ids = [int(i) for i in value]
        return ids if dialect.name == "postgresql" else json.dumps(ids)


class _OneOf(ColumnElement[bool]):
    """`column` is one of the ids bound as `name` (a list): an IN list of a RawStatement,
    whose SQL text stays the same whatever the list's length (no expanding bind)."""

    inherit_cache = False  # compiled once per dialect by RawStatement anyway
    type = Boolean()
    _is_implicitly_boolean = True  # a comparison: SQLite must not get `(… IN …) = 1`

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column, self.ids = column, bindparam(name, type_=_IdList())


@compiles(_OneOf)
def _one_of_json(element: _OneOf, compiler: Any, **kw: Any) -> str:
    column, ids = compiler.process(element.column, **kw), compiler.process(element.ids, **kw)
    return f"{column} IN (SELECT value FROM json_each({ids}))"  # noqa: S608 (compiled SQL only)


@compiles(_OneOf, "postgresql")
def _one_of_any(element: _OneOf, compiler: Any, **kw: Any) -> str:
    column, ids = compiler.process(element.column, **kw), compiler.process(element.ids, **kw)
    return f"{column} = ANY({ids})"


def one_of(column: ColumnElement[Any] | QueryableAttribute[Any], name: str) -> ColumnElement[bool]:
    """`column IN (ids)` for a RawStatement: the ids are passed as one parameter `name`, a list
    of ints (`= ANY(array)` on PostgreSQL, `IN (SELECT value FROM json_each(...))` on SQLite)."""
    if isinstance(column, QueryableAttribute):
        return _OneOf(column.__clause_element__(), name)
    return _OneOf(column, name)


@dataclass(frozen=True)
class _Form:
    sql: str
    names: tuple[str, ...]  # the parameters the SQL takes (in order, for positional styles)
    positional: bool
    fixed: dict[str, Any]  # values bound in the statement itself (e.g. `status = 'running'`)
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]
    # Per result column, SQLAlchemy's conversion of what the driver returns (None: as is)
    results: tuple[Callable[[Any], Any] | None, ...] = ()


class RawStatement:
    """A Core statement, compiled on first use for each dialect."""

    def __init__(self, build: Callable[[], ClauseElement]) -> None:
        self._build = build
        self._forms: dict[str, _Form] = {}

    def form(self, dialect: Dialect) -> _Form:
        form = self._forms.get(dialect.name)
        if form is None:
            form = self._forms[dialect.name] = _compile(self._build(), dialect)
        return form


def _compile(stmt: ClauseElement, dialect: Dialect) -> _Form:
    compiled: Any = stmt.compile(dialect=dialect)
    # Values SQLAlchemy computes per execution cannot be bound here: the caller must pass
    # every column explicitly (no Python-side defaults, no expanding IN lists).
    if compiled.insert_prefetch or compiled.update_prefetch:
        cols = [c.name for c in [*compiled.insert_prefetch, *compiled.update_prefetch]]
        raise ValueError(f"raw statement has Python-side defaults for {cols}: pass them")
    if "POSTCOMPILE" in compiled.string or compiled.escaped_bind_names:
        raise ValueError("raw statement needs per-execution compilation (IN list or odd names)")
    rendered = dict.fromkeys(compiled.bind_names.values())  # the names in the SQL text
    names = tuple(compiled.positiontup) if compiled.positional else tuple(rendered)
    fixed: dict[str, Any] = {}
    processors: list[tuple[str, Callable[[Any], Any]]] = []
    seen: set[str] = set()
    for bind, name in compiled.bind_names.items():
        # A parameter used twice (a CTE's copy of the WHERE) is one value, converted once.
        if name not in names or name in seen:
            continue
        seen.add(name)
        if not bind.required:
            fixed[name] = bind.effective_value
        proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if proc is not None:
            processors.append((name, proc))
    return _Form(
        compiled.string,
        names,
        compiled.positional,
        fixed,
        tuple(processors),
        _result_processors(compiled, dialect),
    )


def _result_processors(compiled: Any, dialect: Dialect) -> tuple[Callable[[Any], Any] | None, ...]:
    """The result columns' conversions (JSON parsed on SQLite, aware UTC datetimes), as
    SQLAlchemy's own results apply them (read from its compiled statement's private
    `_result_columns`; tests/test_raw_sql.py checks the conversion). Asked without the driver's
    column type code: types whose conversion depends on it (Numeric on some drivers) are not
    for `Driver.read`."""
    columns = getattr(compiled, "_result_columns", None) or []
    return tuple(col[3]._cached_result_processor(dialect, None) for col in columns)


class Driver:
    """The DBAPI connection of a session's transaction, and its dialect.

    Driver errors come out as SQLAlchemy's (OperationalError, IntegrityError...), as through
    the ORM, so the daemons' retry loops see them; a connection found dead is invalidated so
    the pool never hands it out again.
    """

    __slots__ = ("conn", "dbapi_conn", "dialect", "is_pg")

    def __init__(self, conn: Connection) -> None:
        self.conn, self.dialect = conn, conn.dialect
        self.dbapi_conn: Any = conn.connection.driver_connection
        self.is_pg = self.dialect.name == "postgresql"

    def _args(self, form: _Form, params: Mapping[str, Any]) -> Any:
        values = {**form.fixed, **params}
        for name, proc in form.processors:
            values[name] = proc(values[name])
        if form.positional:
            return [values[n] for n in form.names]
        return {n: values[n] for n in form.names}

    def sql(self, stmt: RawStatement, params: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL text and the driver's arguments, as run (for EXPLAIN)."""
        form = stmt.form(self.dialect)
        return form.sql, self._args(form, params)

    def run(self, stmt: RawStatement, params: Mapping[str, Any]) -> int:
        """Execute; returns the rowcount (undefined inside a PostgreSQL pipeline)."""
        form = stmt.form(self.dialect)
        with self._cursor(form) as cur:
            cur.execute(form.sql, self._args(form, params))
            return int(cur.rowcount)

    def send(self, stmt: RawStatement, params: Mapping[str, Any]) -> Callable[[], int]:
        """Execute without reading the answer yet (inside a PostgreSQL pipeline it is only sent);
        the returned function gives the rowcount once the answer is in (after the pipeline)."""
        form = stmt.form(self.dialect)
        with self._cursor(form, keep=True) as cur:
            cur.execute(form.sql, self._args(form, params))

        def rowcount() -> int:
            with self._cursor(form, cur) as done:
                return int(done.rowcount)

        return rowcount

    def send_rows(
        self, stmt: RawStatement, params: Mapping[str, Any]
    ) -> Callable[[], list[tuple[Any, ...]]]:
        """send(), for a statement whose rows are wanted: the function gives them once the
        answer is in (off PostgreSQL, where nothing is pipelined, they are read at once)."""
        form = stmt.form(self.dialect)
        if not self.is_pg:
            found = self.rows(stmt, params)
            return lambda: found
        with self._cursor(form, keep=True) as cur:
            cur.execute(form.sql, self._args(form, params))

        def rows() -> list[tuple[Any, ...]]:
            with self._cursor(form, cur) as done:
                return [tuple(r) for r in done.fetchall()]

        return rows

    def rows(self, stmt: RawStatement, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        form = stmt.form(self.dialect)
        with self._cursor(form) as cur:
            cur.execute(form.sql, self._args(form, params))
            return [tuple(r) for r in cur.fetchall()]

    def read(self, stmt: RawStatement, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Rows converted as SQLAlchemy's results convert them (rows() gives the driver's
        values as they came)."""
        form = stmt.form(self.dialect)
        with self._cursor(form) as cur:
            cur.execute(form.sql, self._args(form, params))
            found = cur.fetchall()
        procs = list(enumerate(form.results))
        if not any(proc for _, proc in procs):
            return [tuple(r) for r in found]
        return [tuple(proc(r[i]) if proc else r[i] for i, proc in procs) for r in found]

    def many(self, stmt: RawStatement, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        form = stmt.form(self.dialect)
        with self._cursor(form) as cur:
            cur.executemany(form.sql, [self._args(form, r) for r in rows])

    @contextmanager
    def _cursor(self, form: _Form, cur: Any = None, *, keep: bool = False) -> Iterator[Any]:
        """A cursor (new, or the one given) closed afterwards unless `keep`, and errors
        translated; a cursor kept after an error is closed all the same."""
        dbapi: Any = self.dialect.loaded_dbapi
        cur = cur if cur is not None else self.dbapi_conn.cursor()
        failed = False
        try:
            yield cur
        except dbapi.Error as exc:
            failed = True
            gone = self.dialect.is_disconnect(exc, self.dbapi_conn, cur)
            if gone:
                self.conn.invalidate(exc)
            raise DBAPIError.instance(
                form.sql, None, exc, dbapi.Error, connection_invalidated=gone, dialect=self.dialect
            ) from exc
        finally:
            if failed or not keep:
                with suppress(Exception):  # a cursor of a dead connection may refuse to close
                    cur.close()


def driver(session: Session) -> Driver:
    """The session's connection as a Driver; begins the session's transaction if needed.

    Cached per transaction: asking the session for its connection is the expensive part.
    """
    txn = session.get_transaction()
    cached = session.info.get(_DRIVER_KEY)
    if txn is not None and cached is not None and cached[0] is txn:
        return cached[1]  # type: ignore[no-any-return]
    found = Driver(session.connection())
    session.info[_DRIVER_KEY] = (session.get_transaction(), found)
    return found
