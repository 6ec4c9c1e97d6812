"""Reading an upstream MultiFlexi database (MariaDB/MySQL, PostgreSQL or SQLite) as plain rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Date,
    DateTime,
    Engine,
    MetaData,
    Table,
    Text,
    create_engine,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

# URL schemes people write for upstream's databases -> the driver we read them with.
DRIVERS = {
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "pgsql": "postgresql+psycopg",
}

Row = dict[str, Any]


class UpstreamReadError(RuntimeError):
    """The upstream database cannot be opened or read; the message says which and why."""


def upstream_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except ArgumentError:
        raise UpstreamReadError(f"--from {raw!r}: not a database URL") from None
    return url.set(drivername=DRIVERS.get(url.drivername, url.drivername))


def safe_source(url: URL) -> str:
    """The URL without its password: stored with each mapping and printed in reports."""
    return url.render_as_string(hide_password=True)[:255]


class UpstreamReader:
    """Upstream's tables, reflected as they are (its schema moved over the years)."""

    def __init__(self, raw_url: str) -> None:
        self.url = upstream_url(raw_url)
        self.source = safe_source(self.url)
        if self.url.get_backend_name() == "sqlite" and not Path(self.url.database or "").is_file():
            # Opening a missing SQLite file would create an empty one.
            raise UpstreamReadError(f"{self.source}: no such SQLite database file")
        try:
            self.engine: Engine = create_engine(self.url, pool_pre_ping=True)
            self._names = set(inspect(self.engine).get_table_names())
        except (SQLAlchemyError, ImportError) as exc:
            raise UpstreamReadError(f"cannot read {self.source}: {exc}") from None
        if "apps" not in self._names or "company" not in self._names:
            raise UpstreamReadError(
                f"{self.source}: not a MultiFlexi database (no `apps` and `company` tables)"
            )
        self._meta = MetaData()
        self._tables: dict[str, Table] = {}

    def has(self, name: str) -> bool:
        return name in self._names

    def table(self, name: str) -> Table:
        if name not in self._tables:
            try:
                table = Table(name, self._meta, autoload_with=self.engine)
            except SQLAlchemyError as exc:
                raise UpstreamReadError(
                    f"cannot read table {name} of {self.source}: {exc}"
                ) from None
            if self.engine.dialect.name == "sqlite":
                _times_as_text(table)
            self._tables[name] = table
        return self._tables[name]

    def columns(self, name: str) -> set[str]:
        return {c.name for c in self.table(name).columns} if self.has(name) else set()

    def rows(self, name: str) -> list[Row]:
        """Every row of a table in id order; no rows when the installation lacks the table."""
        if not self.has(name):
            return []
        table = self.table(name)
        order = [table.c.id] if "id" in table.c else list(table.primary_key.columns)
        try:
            with self.engine.connect() as conn:
                return [dict(r) for r in conn.execute(select(table).order_by(*order)).mappings()]
        except SQLAlchemyError as exc:
            raise UpstreamReadError(f"cannot read table {name} of {self.source}: {exc}") from None

    def ids(self, name: str) -> list[Any]:
        """Only the ids of a table's rows: for tables read a batch at a time."""
        if not self.has(name):
            return []
        table = self.table(name)
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(select(table.c.id).order_by(table.c.id)).scalars())
        except SQLAlchemyError as exc:
            raise UpstreamReadError(f"cannot read table {name} of {self.source}: {exc}") from None

    def rows_for(self, name: str, column: str, values: list[Any]) -> list[Row]:
        """The rows whose `column` is one of `values` (a batch of parents), in id order."""
        if not self.has(name) or not values:
            return []
        table = self.table(name)
        query = select(table).where(table.c[column].in_(values)).order_by(table.c.id)
        try:
            with self.engine.connect() as conn:
                return [dict(r) for r in conn.execute(query).mappings()]
        except SQLAlchemyError as exc:
            raise UpstreamReadError(f"cannot read table {name} of {self.source}: {exc}") from None

    def count(self, name: str) -> int:
        if not self.has(name):
            return 0
        try:
            with self.engine.connect() as conn:
                return int(
                    conn.execute(select(func.count()).select_from(self.table(name))).scalar_one()
                )
        except SQLAlchemyError as exc:
            raise UpstreamReadError(f"cannot read table {name} of {self.source}: {exc}") from None

    def close(self) -> None:
        self.engine.dispose()


def _times_as_text(table: Table) -> None:
    """SQLite keeps whatever text PHP wrote in a DATETIME column ('0000-00-00 00:00:00'
    included); read it as text and let to_utc() judge it, rather than fail the whole table."""
    for column in table.columns:
        if isinstance(column.type, (DateTime, Date)):
            column.type = Text()


def to_utc(value: Any, zone: ZoneInfo) -> datetime | None:
    """Upstream writes naive local times (its PHP default zone): read them in `zone`."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.year < 1971:  # MySQL's zero dates and other placeholders
        return None
    aware: datetime = value if value.tzinfo else value.replace(tzinfo=zone)
    return aware.astimezone(UTC)


def flag(value: Any) -> bool:
    """Upstream booleans: tinyint on MySQL, bool on PostgreSQL, 0/1 or text on SQLite."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "t", "yes", "on")
    return bool(value)


def text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def csv_list(value: Any) -> list[str]:
    return [p.strip() for p in text_of(value).split(",") if p.strip()]
