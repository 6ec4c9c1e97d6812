"""ANSI terminal output to safe HTML: text escaped first, SGR colours become spans."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from html import escape

# CSI sequences (ESC [ params final), OSC sequences (ESC ] ... BEL/ST), and other 2-byte escapes.
_ESCAPE_RE = re.compile(
    r"\x1b\[(?P<csi>[0-9;:?<=>]*)(?P<final>[@-~])"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[@-Z\\-_]"
)
# An escape sequence cut off at the end of a chunk; kept until the next feed completes it.
_PARTIAL_RE = re.compile(r"\x1b(?:\[[0-9;:?<=>]*|\][^\x07\x1b]*)?\Z")
# Control characters other than tab and newline never reach the page.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]")


@dataclass(frozen=True)
class Style:
    fg: str | None = None  # "c1".."c15" palette class or "#rrggbb"
    bg: str | None = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False

    def span_open(self) -> str:
        classes = [f"ansi-{n}" for n in ("bold", "dim", "italic", "underline") if getattr(self, n)]
        styles: list[str] = []
        for prefix, prop, value in (("fg", "color", self.fg), ("bg", "background-color", self.bg)):
            if value is None:
                continue
            if value.startswith("#"):
                styles.append(f"{prop}:{value}")
            else:
                classes.append(f"ansi-{prefix}-{value}")
        if not classes and not styles:
            return ""
        attrs = f' class="{" ".join(classes)}"' if classes else ""
        attrs += f' style="{";".join(styles)}"' if styles else ""
        return f"<span{attrs}>"


def _palette_256(n: int) -> str:
    if n < 16:
        return f"c{n}"
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        r, g, b = steps[n // 36], steps[(n // 6) % 6], steps[n % 6]
        return f"#{r:02x}{g:02x}{b:02x}"
    level = 8 + (n - 232) * 10
    return f"#{level:02x}{level:02x}{level:02x}"


def _extended(params: list[int], i: int) -> tuple[str | None, int]:
    """Colour from `38;5;n` or `38;2;r;g;b` starting at params[i] (the 5 or 2); next index."""
    if i < len(params) and params[i] == 5 and i + 1 < len(params):
        return _palette_256(min(max(params[i + 1], 0), 255)), i + 2
    if i < len(params) and params[i] == 2 and i + 3 < len(params):
        r, g, b = (min(max(v, 0), 255) for v in params[i + 1 : i + 4])
        return f"#{r:02x}{g:02x}{b:02x}", i + 4
    return None, len(params)


_FLAGS = {1: ("bold", True), 2: ("dim", True), 3: ("italic", True), 4: ("underline", True),
          22: ("bold", False), 23: ("italic", False), 24: ("underline", False)}


def apply_sgr(style: Style, raw: str) -> Style:
    """The style after one SGR sequence (`raw` is the parameter text between `[` and `m`)."""
    params = [int(p) if p.isdigit() else 0 for p in re.split(r"[;:]", raw)] if raw else [0]
    i = 0
    while i < len(params):
        p = params[i]
        i += 1
        if p == 0:
            style = Style()
        elif p in _FLAGS:
            name, on = _FLAGS[p]
            style = replace(style, **{name: on}, **({"dim": False} if p == 22 else {}))
        elif 30 <= p <= 37 or 90 <= p <= 97:
            style = replace(style, fg=f"c{p - 30 if p < 90 else p - 82}")
        elif 40 <= p <= 47 or 100 <= p <= 107:
            style = replace(style, bg=f"c{p - 40 if p < 100 else p - 92}")
        elif p in (38, 48):
            colour, i = _extended(params, i)
            style = replace(style, **{"fg" if p == 38 else "bg": colour})
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
        partial = _PARTIAL_RE.search(text)
        self._pending = partial.group(0) if partial else ""
        if partial:
            text = text[: partial.start()]
        out: list[str] = []
        pos = 0
        for m in _ESCAPE_RE.finditer(text):
            out.append(self._text(text[pos : m.start()]))
            if m.group("final") == "m":
                self.style = apply_sgr(self.style, m.group("csi") or "")
            pos = m.end()
        out.append(self._text(text[pos:]))
        return "".join(out)

    def _text(self, text: str) -> str:
        text = _CONTROL_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
        # A stray ESC (not a recognised sequence) is dropped rather than shown.
        text = text.replace("\x1b", "")
        if not text:
            return ""
        opening = self.style.span_open()
        body = escape(text, quote=False)
        return f"{opening}{body}</span>" if opening else body


def to_html(text: str) -> str:
    """Convert one complete piece of terminal output."""
    return AnsiConverter().feed(text)
