"""Upstream MultiFlexi's action choices (runtemplate.success / .fail maps, actionconfig rows)
turned into our ActionConfig values; used by the upstream importer.

Upstream stores the maps PHP-serialised (`a:2:{s:7:"WebHook";b:1;...}`) or, in newer rows, as
JSON. A small parser for the subset those maps use (a, s, b, i, d, N) avoids a dependency.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MODES = {"success": "success", "fail": "failure"}
# Upstream config keys that are spelt differently here (kind -> {upstream: ours}).
RENAMED = {"WebHook": {"uri": "url"}}


class PhpSerialError(ValueError):
    """The text is not PHP-serialised data of the supported subset."""


@dataclass(frozen=True)
class UpstreamAction:
    mode: str  # success | failure
    kind: str
    enabled: bool
    config: dict[str, str] = field(default_factory=dict)


class _Parser:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def fail(self, why: str) -> PhpSerialError:
        return PhpSerialError(f"PHP-serialised value at byte {self.pos}: {why}")

    def until(self, stop: bytes) -> bytes:
        end = self.data.find(stop, self.pos)
        if end < 0:
            raise self.fail(f"expected {stop.decode()!r}")
        out, self.pos = self.data[self.pos : end], end + 1
        return out

    def expect(self, text: bytes) -> None:
        if not self.data.startswith(text, self.pos):
            raise self.fail(f"expected {text.decode()!r}")
        self.pos += len(text)

    def value(self) -> Any:
        tag = self.data[self.pos : self.pos + 2]
        self.pos += 2
        if tag == b"N;":
            return None
        if tag not in (b"a:", b"s:", b"b:", b"i:", b"d:"):
            raise self.fail(f"unsupported type {tag.decode(errors='replace')!r}")
        return getattr(self, "_" + chr(tag[0]))()

    def _b(self) -> bool:
        return self.until(b";") == b"1"

    def _i(self) -> int:
        try:
            return int(self.until(b";"))
        except ValueError:
            raise self.fail("bad integer") from None

    def _d(self) -> float:
        try:
            return float(self.until(b";"))
        except ValueError:
            raise self.fail("bad float") from None

    def _s(self) -> str:
        size = self._len(b":")
        self.expect(b'"')
        raw = self.data[self.pos : self.pos + size]
        self.pos += size
        self.expect(b'";')
        return raw.decode("utf-8", "replace")

    def _a(self) -> dict[Any, Any]:
        count = self._len(b":")
        self.expect(b"{")
        out = {}
        for _ in range(count):
            key = self.value()
            out[key] = self.value()
        self.expect(b"}")
        return out

    def _len(self, stop: bytes) -> int:
        raw = self.until(stop)
        if not raw.isdigit() or len(raw) > 9:
            raise self.fail("bad length")
        return int(raw)


def php_unserialize(text: str) -> Any:
    parser = _Parser(text.encode())
    value = parser.value()
    if parser.pos != len(parser.data):
        raise parser.fail("trailing data")
    return value


def choice_map(raw: str | None) -> dict[str, bool]:
    """A success/fail map, PHP-serialised or JSON (object or list of names), as kind -> on."""
    text = (raw or "").strip()
    if not text:
        return {}
    found = json.loads(text) if text[0] in "[{" else php_unserialize(text)
    if isinstance(found, list):
        return {str(k): True for k in found}
    if not isinstance(found, dict):
        raise PhpSerialError(f"action map: expected a map, got {type(found).__name__}")
    return {str(k): bool(v) for k, v in found.items()}


def convert(
    success: str | None, fail: str | None, actionconfig: Iterable[Mapping[str, Any]]
) -> list[UpstreamAction]:
    """Our action configs from upstream's maps and actionconfig rows (module, keyname, value,
    mode). Kinds upstream configured but never enabled are kept, disabled."""
    configs: dict[tuple[str, str], dict[str, str]] = {}
    for row in actionconfig:
        mode = MODES.get(str(row.get("mode", "")))
        if mode is None:
            continue
        kind = str(row["module"])
        key = str(row["keyname"])
        key = RENAMED.get(kind, {}).get(key, key)
        configs.setdefault((mode, kind), {})[key] = (
            "" if row.get("value") is None else str(row["value"])
        )
    out: list[UpstreamAction] = []
    for up_mode, raw in (("success", success), ("fail", fail)):
        mode = MODES[up_mode]
        chosen = choice_map(raw)
        for kind in [*chosen, *(k for m, k in configs if m == mode and k not in chosen)]:
            out.append(
                UpstreamAction(mode, kind, chosen.get(kind, False), configs.get((mode, kind), {}))
            )
    return out
