"""ANSI terminal output to safe HTML: text escaped first, SGR colours become spans."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from html import escape

# OSC sequences (ESC ] ... BEL or ST: window titles, hyperlinks) are removed first, whole.
_OSC_RE = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
# Colour (SGR) sequences; their parameters hold no character that HTML escaping changes.
_SGR_RE = re.compile(r"\x1b\[([0-9;:]*)m")
# Every other CSI sequence (cursor moves, erase...) and two-character escapes are dropped.
_OTHER_RE = re.compile(r"\x1b\[(?![0-9;:]*m)[0-9;:?<=>]*[@-~]|\x1b[@-Z\\-_]")
# An escape sequence cut off at the end of a chunk; kept until the next feed completes it.
_PARTIAL_RE = re.compile(r"\x1b(?:\[[0-9;:?<=>]*|\][^\x07\x1b]*)?\Z")
_PARTIAL_WINDOW = 512
# Control characters other than tab and newline never reach the page.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]")


@dataclass(frozen=True)
class Style:
    fg: str | None = None  # "c0".."c255": a palette class (never an inline style: the CSP)
    bg: str | None = None
    flags: frozenset[str] = frozenset()  # bold, dim, italic, underline

    def span_open(self) -> str:
        classes = [f"ansi-{n}" for n in sorted(self.flags)]
        classes += [f"ansi-{prefix}-{v}" for prefix, v in (("fg", self.fg), ("bg", self.bg)) if v]
        return f'<span class="{" ".join(classes)}">' if classes else ""


_CUBE = (0, 95, 135, 175, 215, 255)


def palette_rgb(n: int) -> tuple[int, int, int]:
    """The colour of xterm's entry 16..255 (6x6x6 cube, then 24 greys); 0..15 are themed."""
    if n < 232:
        n -= 16
        return _CUBE[n // 36], _CUBE[(n // 6) % 6], _CUBE[n % 6]
    level = 8 + (n - 232) * 10
    return level, level, level


def _nearest(rgb: tuple[int, int, int]) -> int:
    """The palette entry closest to a 24-bit colour: shown by class, never by inline style."""
    r, g, b = (_cube_index(v) for v in rgb)
    grey = min(23, max(0, round((sum(rgb) / 3 - 8) / 10)))
    candidates = (16 + 36 * r + 6 * g + b, 232 + grey)
    return min(candidates, key=lambda n: _distance(palette_rgb(n), rgb))


def _cube_index(value: int) -> int:
    return min(range(6), key=lambda i: abs(_CUBE[i] - value))


def _distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> int:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


def palette_css() -> str:
    """The rules of static/ansi256.css (entries 16..255; a test keeps the file equal to this)."""
    lines = ["/* Generated from multiflexi_web/views/jobs/ansi.py palette_css(): do not edit. */"]
    for n in range(16, 256):
        hexa = "#{:02x}{:02x}{:02x}".format(*palette_rgb(n))
        lines.append(f".ansi-fg-c{n} {{ color: {hexa}; }} .ansi-bg-c{n} {{ background: {hexa}; }}")
    return "\n".join(lines) + "\n"


def _extended(params: list[int], i: int) -> tuple[str | None, int]:
    """Colour from `38;5;n` or `38;2;r;g;b` starting at params[i] (the 5 or 2); next index."""
    if i < len(params) and params[i] == 5 and i + 1 < len(params):
        return f"c{min(max(params[i + 1], 0), 255)}", i + 2
    if i < len(params) and params[i] == 2 and i + 3 < len(params):
        r, g, b = (min(max(v, 0), 255) for v in params[i + 1 : i + 4])
        return f"c{_nearest((r, g, b))}", i + 4
    return None, len(params)


def _param(text: str) -> int:
    """One SGR parameter; an empty one is 0. One of more digits than any code has is no code
    (-1, ignored): int() of over 4,300 digits raises, and a job's output must not break its page."""
    if not text:
        return 0
    return int(text) if len(text) <= 9 else -1


_FLAG_ON = {1: "bold", 2: "dim", 3: "italic", 4: "underline"}
_FLAG_OFF = {22: {"bold", "dim"}, 23: {"italic"}, 24: {"underline"}}


def apply_sgr(style: Style, raw: str) -> Style:
    """The style after one SGR sequence (`raw` is the parameter text between `[` and `m`)."""
    params = [_param(p) for p in re.split(r"[;:]", raw)] if raw else [0]
    i = 0
    while i < len(params):
        p = params[i]
        i += 1
        if p == 0:
            style = Style()
        elif p in _FLAG_ON:
            style = replace(style, flags=style.flags | {_FLAG_ON[p]})
        elif p in _FLAG_OFF:
            style = replace(style, flags=style.flags - _FLAG_OFF[p])
        elif 30 <= p <= 37 or 90 <= p <= 97:
            style = replace(style, fg=f"c{p - 30 if p < 90 else p - 82}")
        elif 40 <= p <= 47 or 100 <= p <= 107:
            style = replace(style, bg=f"c{p - 40 if p < 100 else p - 92}")
        elif p == 38:
            colour, i = _extended(params, i)
            style = replace(style, fg=colour)
        elif p == 48:
            colour, i = _extended(params, i)
            style = replace(style, bg=colour)
        elif p == 39:
            style = replace(style, fg=None)
        elif p == 49:
            style = replace(style, bg=None)
    return style


@dataclass
class AnsiConverter:
    """Stateful converter: colours carry over between feeds; each feed returns balanced HTML."""

    style: Style = field(default_factory=Style)
    _pending: str = ""

    def feed(self, text: str) -> str:
        text = self._pending + text
        tail_at = max(0, len(text) - _PARTIAL_WINDOW)
        partial = _PARTIAL_RE.search(text, tail_at)
        self._pending = partial.group(0) if partial else ""
        if partial:
            text = text[: partial.start()]
        text = _OSC_RE.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
        text = _OTHER_RE.sub("", _CONTROL_RE.sub("", text))
        # Escape the whole text once; split() then alternates text and SGR parameters.
        parts = _SGR_RE.split(escape(text, quote=False))
        out: list[str] = []
        style, opening = self.style, _opening(self.style)
        for i, part in enumerate(parts):
            if i % 2:
                style, opening = _step(style, part)
            elif part:
                out.append(f"{opening}{part}</span>" if opening else part)
        self.style = style
        # What ESC is left did not start a recognised sequence: dropped rather than shown.
        return "".join(out).replace("\x1b", "")


@lru_cache(maxsize=1024)
def _step(style: Style, raw: str) -> tuple[Style, str]:
    """The style after an SGR sequence and its opening tag (cached: output repeats itself)."""
    after = apply_sgr(style, raw)
    return after, after.span_open()


@lru_cache(maxsize=1024)
def _opening(style: Style) -> str:
    return style.span_open()


def to_html(text: str) -> str:
    """Convert one complete piece of terminal output."""
    return AnsiConverter().feed(text)
