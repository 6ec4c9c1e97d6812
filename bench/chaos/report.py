"""The results as one Markdown table and as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence

from bench.chaos.account import Result

HEADER = (
    "| scenario | jobs | executed once | executed twice | lost | misrecorded | cut at exit"
    " | not terminal | recovery (s) | notes |"
)


def markdown(results: Sequence[Result]) -> str:
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for r in results:
        if r.skipped:
            lines.append(f"| {r.scenario} | - | - | - | - | - | - | - | - | skipped: {r.skipped} |")
            continue
        rec = "-" if r.recovery_s is None else f"{r.recovery_s:.1f}"
        lines.append(
            f"| {r.scenario} | {r.jobs} | {r.once} | {r.twice} | {r.lost} | {r.misrecorded}"
            f" | {r.cut_at_exit} | {r.not_terminal} | {rec} | {_notes(r)} |"
        )
    return "\n".join(lines)


def _notes(r: Result) -> str:
    shown = {k: v for k, v in r.notes.items() if k not in {"db_jobs"}}
    if r.overlapping:
        shown["overlapping"] = r.overlapping
    return "; ".join(f"{k}={_short(v)}" for k, v in shown.items())


def _short(value: object) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    return str(value)


def as_json(results: Sequence[Result]) -> str:
    return json.dumps([r.as_dict() for r in results], indent=2, default=str)
