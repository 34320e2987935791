"""Small server-side SVG charts (no JavaScript, no external assets); every text is escaped.

Charts use presentation attributes and CSS classes only (no style attributes), so the page's
Content-Security-Policy can forbid inline styles.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

logger = logging.getLogger(__name__)

EXPRESSION_COLOURS = {
    "happy": "#f2b705", "neutral": "#9aa5b1", "surprise": "#5b8def", "sad": "#3d5a80",
    "angry": "#d64545", "fear": "#8e5ea2", "disgust": "#4d9e5a",
}
_FALLBACK = ("#c97b63", "#6bb3a8", "#b0a160", "#7d7fb8")


def colour_of(label: str, i: int = 0) -> str:
    """The fill colour of an expression class (stable across charts)."""
    return EXPRESSION_COLOURS.get(label, _FALLBACK[i % len(_FALLBACK)])


def _t(x: float, y: float, text: str, cls: str = "", anchor: str = "start") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}">'
            f"{escape(text)}</text>")


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000, 2000, 5000):
        if value <= step:
            return float(step)
    return float(value)


def _svg_open(w: int, h: float, title: str) -> list[str]:
    """The opening <svg> tag and its <title>, as the first parts of a chart."""
    return [f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" '
            f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
            f"<title>{escape(title)}</title>"]


def _svg_close(parts: list[str]) -> Markup:
    """Close the <svg> and join its parts."""
    parts.append("</svg>")
    return Markup("".join(parts))


def _grid(w: int, left: int, top: int, plot_h: int, tick: Callable[[float], str | None]) -> list[str]:
    """Horizontal grid lines at 0, 1/2 and 1 of the plot height, labelled by tick(frac) if not None."""
    parts = []
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{w - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        text = tick(frac)
        if text is not None:
            parts.append(_t(left - 4, y + 4, text, "axis", "end"))
    return parts


def _column(x: float, y: float, bw: float, height: float, attr: str, tip: str) -> str:
    """One vertical bar of a column chart (1 px gap each side) with an escaped tooltip."""
    return (f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(bw - 2, 1):.1f}" '
            f'height="{height:.1f}" {attr}><title>{escape(tip)}</title></rect>')


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str, unit: str = "",
              every: int = 1) -> Markup:
    """Vertical bars, one per label (x-axis label shown for every `every`-th bar)."""
    w, h, left, bottom, top = 640, 180, 36, 28, 16
    n = max(len(values), 1)
    vmax = _nice_max(max(values, default=0))
    plot_w, plot_h = w - left - 8, h - bottom - top
    bw = plot_w / n

    def tick(frac: float) -> str | None:
        v = vmax * frac
        return f"{v:g}" if v == int(v) else None

    parts = _svg_open(w, h, title) + _grid(w, left, top, plot_h, tick)
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        bh = plot_h * (v / vmax)
        x = left + i * bw
        if v > 0:
            parts.append(_column(x, top + plot_h - bh, bw, bh, 'class="bar"',
                                 f"{label}: {v:g}{unit}"))
        if i % every == 0:
            parts.append(_t(x + bw / 2, h - 10, label, "axis", "middle"))
    return _svg_close(parts)


def hbar_chart(rows: Sequence[tuple[str, float]], title: str, unit: str = "") -> Markup:
    """Horizontal bars, one row per (label, value), values printed at the bar ends."""
    row_h, left, right, top = 22, 150, 60, 8
    w = 640
    h = top * 2 + row_h * max(len(rows), 1)
    vmax = _nice_max(max((v for _, v in rows), default=0))
    plot_w = w - left - right
    parts = _svg_open(w, h, title)
    for i, (label, v) in enumerate(rows):
        y = top + i * row_h
        bw = plot_w * (v / vmax)
        short = label if len(label) <= 22 else label[:21] + "\u2026"
        parts.append(_t(left - 6, y + row_h * 0.7, short, "axis", "end"))
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{max(bw, 0):.1f}" '
                     f'height="{row_h - 6}" class="bar"><title>{escape(label)}: {v:g}'
                     f"{escape(unit)}</title></rect>")
        parts.append(_t(left + bw + 4, y + row_h * 0.7, f"{v:g}{unit}", "axis"))
    if not rows:
        parts.append(_t(w / 2, top + row_h * 0.7, "no data", "axis", "middle"))
    return _svg_close(parts)


def stacked_shares(columns: Sequence[tuple[str, dict[str, float] | None]], classes: Sequence[str],
                   title: str) -> Markup:
    """One 100 % stacked column per (label, shares); None shares draw a grey "hidden" column."""
    w, h, left, bottom, top = 640, 220, 36, 28, 10
    n = max(len(columns), 1)
    plot_w, plot_h = w - left - 8, h - bottom - top
    bw = plot_w / n
    every = max(1, -(-n // 8))
    parts = _svg_open(w, h, title) + _grid(w, left, top, plot_h,
                                           lambda frac: f"{int(frac * 100)}%")
    for i, (label, shares) in enumerate(columns):
        x = left + i * bw
        if shares is None:
            parts.append(f'<rect x="{x + 1:.1f}" y="{top}" width="{max(bw - 2, 1):.1f}" '
                         f'height="{plot_h}" class="hidden-col"><title>{escape(label)}: hidden '
                         "(too few people)</title></rect>")
        else:
            y: float = top + plot_h
            for j, cls in enumerate(classes):
                share = shares.get(cls, 0.0)
                if share <= 0:
                    continue
                sh = plot_h * share
                y -= sh
                parts.append(_column(x, y, bw, sh, f'fill="{colour_of(cls, j)}"',
                                     f"{label} {cls}: {share:.0%}"))
        if i % every == 0:
            parts.append(_t(x + bw / 2, h - 10, label, "axis", "middle"))
    return _svg_close(parts)
