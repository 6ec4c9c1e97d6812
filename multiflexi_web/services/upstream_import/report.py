"""What an upstream import did (or, dry, would do) per table, and every row it could not carry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TableCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0


@dataclass(frozen=True)
class Refusal:
    table: str
    row: str  # upstream id and a name a person recognises
    reason: str


@dataclass
class Report:
    source: str
    dry_run: bool
    tables: dict[str, TableCounts] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    committed: bool = False

    def _t(self, table: str) -> TableCounts:
        return self.tables.setdefault(table, TableCounts())

    def count(self, table: str, outcome: str) -> None:
        """outcome: created | updated | unchanged."""
        counts = self._t(table)
        setattr(counts, outcome, getattr(counts, outcome) + 1)

    def refuse(self, table: str, row: str, reason: str) -> None:
        self._t(table).refused += 1
        self.refusals.append(Refusal(table, row, reason))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def changed_anything(self) -> bool:
        return any(c.created or c.updated for c in self.tables.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            "committed": self.committed,
            "tables": {name: vars(c) for name, c in self.tables.items()},
            "refused": [vars(r) for r in self.refusals],
            "notes": list(self.notes),
        }

    def lines(self) -> list[str]:
        head = "dry run: nothing written" if self.dry_run else "imported"
        out = [f"upstream import from {self.source} ({head})"]
        width = max([len(t) for t in self.tables] + [5])
        out.append(f"{'table'.ljust(width)}  created  updated  unchanged  refused")
        for name, c in self.tables.items():
            out.append(
                f"{name.ljust(width)}  {c.created:7}  {c.updated:7}  {c.unchanged:9}  {c.refused:7}"
            )
        if self.refusals:
            out.append("not carried over:")
            out += [f"  {r.table} {r.row}: {r.reason}" for r in self.refusals]
        out += [f"note: {n}" for n in self.notes]
        return out
