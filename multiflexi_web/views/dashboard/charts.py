"""Server-rendered SVG bar charts: the geometry is computed here, the markup is a macro."""

from __future__ import annotations

from dataclasses import dataclass

ROW = 22
LABEL_WIDTH = 180
BAR_AREA = 320
VALUE_WIDTH = 80


@dataclass(frozen=True)
class Bar:
    label: str
    text: str
    y: int
    width: float
    tone: str


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: list[Bar]
    label_width: int = LABEL_WIDTH
    bar_area: int = BAR_AREA

    @property
    def width(self) -> int:
        return self.label_width + self.bar_area + VALUE_WIDTH

    @property
    def height(self) -> int:
        return max(ROW, len(self.bars) * ROW)


def bar_chart(
    title: str, items: list[tuple[str, float, str, str]], maximum: float | None = None
) -> BarChart:
    """Items are (label, value, shown text, tone); bar widths are scaled to `maximum`."""
    top = maximum if maximum is not None else max((v for _, v, _, _ in items), default=0.0)
    scale = BAR_AREA / top if top > 0 else 0.0
    bars = [
        Bar(label[:28], text, i * ROW, max(1.0, value * scale) if value > 0 else 0.0, tone)
        for i, (label, value, text, tone) in enumerate(items)
    ]
    return BarChart(title, bars)


def rate_tone(rate: float) -> str:
    return "ok" if rate >= 0.9 else "warn" if rate >= 0.5 else "bad"


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
