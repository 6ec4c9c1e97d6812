"""Numbered pages of a list query: rows of one page, the total, links to the neighbours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import InstrumentedAttribute

from multiflexi_web.extensions import db

T = TypeVar("T")
PAGE_SIZE = 50


@dataclass(frozen=True)
class Paged(Generic[T]):
    rows: list[T]
    total: int
    number: int  # 1-based
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def first_row(self) -> int:
        """1-based position of the page's first row (0 when there are none)."""
        return (self.number - 1) * self.size + 1 if self.rows else 0

    @property
    def last_row(self) -> int:
        return (self.number - 1) * self.size + len(self.rows)


def paginate(
    query: Select[Any], key: InstrumentedAttribute[int], number: int, size: int = PAGE_SIZE
) -> Paged[Any]:
    """Page `number` of `query` (ordered on something unique, so pages never overlap); a number
    past the end gives the last page. The offset is walked over the keys alone (an index scan),
    then only the page's rows are read with what they join."""
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    pages = max(1, -(-(total or 0) // size))
    number = min(max(number, 1), pages)
    keys = list(
        db.session.scalars(query.with_only_columns(key).limit(size).offset((number - 1) * size))
    )
    rows = list(db.session.scalars(query.where(key.in_(keys))).unique()) if keys else []
    return Paged(rows, total or 0, number, size)
