"""SVG drawing for the HTML run report: scales, axes, bars and lines, as plain strings.

The report must be one file that opens with no network, so the charts are drawn here as
inline SVG rather than by a JavaScript library. Every element that shows a datum carries
the class `mark` and a `<title>` (the browser shows it on hover), which is how a test (or a
reader) tells a chart with data from an empty frame.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

WIDTH = 1100  # viewBox width of every chart; the page scales it to the window
LEFT = 210  # room for lane and bar labels
RIGHT = 24
TOP = 14
AXIS_H = 34

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac")
FAILED = "#d62728"
MUTED = "#9aa0a6"


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def fmt_bytes(n: float) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def fmt_count(n: float) -> str:
    n = float(n)
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= threshold:
            return f"{n / threshold:.3g}{suffix}"
    return f"{n:.3g}" if n != int(n) else f"{int(n)}"


def fmt_seconds(s: float) -> str:
    if s >= 3600:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    if s >= 120:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{s:.3g}s" if s < 10 else f"{s:.0f}s"


def time_ticks(hi: float, count: int = 10):
    """Ticks over [0, hi] seconds at round values of one unit (s, min or h), and their formatter."""
    for unit, name in ((3600, "h"), (60, "min"), (1, "s")):
        if hi >= 10 * unit or unit == 1:
            return [t * unit for t in nice_ticks(0, hi / unit, count)], (lambda t, u=unit, n=name: f"{t / u:g}{n}")
    raise AssertionError("unreachable")


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values from the first at or above lo to the first at or above hi: steps of 1, 2 or 5 x 10^k."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    ticks, value = [], first
    while not ticks or ticks[-1] < hi - step * 1e-9:  # the last tick is at or above hi: the frame has a top line
        ticks.append(round(value, 12))
        value += step
    return ticks


def byte_ticks(hi: float, count: int = 5) -> list[float]:
    """Ticks at round multiples of a power of 1024, so byte labels read 256 MiB rather than 268.4 MiB."""
    if hi <= 0:
        return [0.0, 1.0]
    unit = 1024 ** max(0, min(4, int(math.log(hi, 1024))))
    return [t * unit for t in nice_ticks(0, hi / unit, count)]


@dataclass
class Scale:
    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo or 1.0
        return self.start + (value - self.lo) / span * (self.end - self.start)


def svg(height: float, body: list[str], label: str) -> str:
    return (f'<svg viewBox="0 0 {WIDTH} {height:.0f}" width="100%" preserveAspectRatio="xMinYMin meet" '
            f'role="img" aria-label="{esc(label)}" xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>")


def text(x: float, y: float, content, anchor: str = "start", cls: str = "lbl", title: str | None = None) -> str:
    tip = f"<title>{esc(title)}</title>" if title else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}">{tip}{esc(content)}</text>'


def rect(x: float, y: float, w: float, h: float, fill: str, title: str, cls: str = "mark", extra: str = "") -> str:
    return (f'<rect class="{cls}" x="{x:.2f}" y="{y:.2f}" width="{max(w, 0.8):.2f}" height="{h:.2f}" '
            f'fill="{fill}"{extra}><title>{esc(title)}</title></rect>')


def line(x1: float, y1: float, x2: float, y2: float, cls: str = "grid", extra: str = "") -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" class="{cls}"{extra}/>'


def x_axis(scale: Scale, ticks: list[float], fmt, top: float, bottom: float, title: str) -> list[str]:
    """Vertical grid lines from `top` to `bottom`, tick labels under them, the axis title at the right."""
    out = []
    for t in ticks:
        x = scale(t)
        out.append(line(x, top, x, bottom))
        out.append(text(x, bottom + 15, fmt(t), "middle", "tick"))
    out.append(line(scale.start, bottom, scale.end, bottom, "axis"))
    out.append(text(scale.end, bottom + 30, title, "end", "axis-title"))
    return out


def y_axis(scale: Scale, ticks: list[float], fmt, left: float, right: float, title: str) -> list[str]:
    out = []
    for t in ticks:
        y = scale(t)
        out.append(line(left, y, right, y))
        out.append(text(left - 8, y + 4, fmt(t), "end", "tick"))
    if title:
        out.append(text(left - 8, scale.end - 12, title, "end", "axis-title"))
    return out


LEGEND_CHAR_W = 7.4  # a generous width of one 12px legend character, so an estimated row never overflows
LEGEND_ROW_H = 16


def legend(items: list[tuple[str, str, str]], x: float, y: float,
           right: float = WIDTH - RIGHT) -> tuple[list[str], float]:
    """Swatches in rows that wrap before `right`: (label, colour, style) with style "bar", "line" or "dash".
    Returns the elements and the height the rows below the first take, by which the caller moves its plot down."""
    out, left, top = [], x, y
    longest = max(8, int((right - left - 18) / LEGEND_CHAR_W))  # one label alone on a row still fits
    for label, fill, style in items:
        label = short(label, longest)
        width = 18 + LEGEND_CHAR_W * len(label)
        if x > left and x + width > right:
            x, y = left, y + LEGEND_ROW_H
        out.append('<g class="legend-item">')
        if style == "bar":
            out.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="12" height="10" fill="{fill}" rx="2"/>')
        else:
            dash = ' stroke-dasharray="6 4"' if style == "dash" else ""
            out.append(f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x + 14:.1f}" y2="{y - 4:.1f}" stroke="{fill}" '
                       f'stroke-width="2.5"{dash}/>')
        out.append(text(x + 18, y, label, cls="legend") + "</g>")
        x += width + 12
    return out, y - top


def row_label(x: float, y: float, label: str) -> str:
    """A lane label right-aligned at x: "stage 1" over its operator chain, when the label has both."""
    head, sep, rest = label.partition(": ")
    if not sep:
        return text(x, y + 4, short(label, 30), "end", title=label)
    return (f'<text x="{x:.1f}" y="{y - 2:.1f}" text-anchor="end" class="lbl"><title>{esc(label)}</title>'
            f'<tspan font-weight="600">{esc(short(head, 30))}</tspan>'
            f'<tspan x="{x:.1f}" dy="14" class="sub">{esc(short(rest, 31))}</tspan></text>')


def short(label: str, limit: int = 30) -> str:
    return label if len(label) <= limit else label[:limit - 1] + "…"


# ---------------------------------------------------------------- bar charts


@dataclass
class Bar:
    value: float
    fill: str
    title: str


@dataclass
class BarRow:
    label: str
    bars: list[Bar]
    note: str = ""  # printed after the bars


def hbar_chart(rows: list[BarRow], fmt, axis_title: str, label: str, bar_h: float = 16) -> tuple[str, int]:
    """Horizontal bars, one row per label, several bars stacked in each row (grouped)."""
    per_row = max(len(r.bars) for r in rows)
    row_h = per_row * bar_h + 10
    hi = max((b.value for r in rows for b in r.bars), default=0) or 1
    ticks = byte_ticks(hi) if fmt is fmt_bytes else nice_ticks(0, hi, 5)
    notes = any(r.note for r in rows)
    scale = Scale(0, max(ticks[-1], hi), LEFT, WIDTH - RIGHT - (230 if notes else 70))
    bottom = TOP + row_h * len(rows)
    out = x_axis(scale, ticks, fmt, TOP, bottom, axis_title)
    marks = 0
    for i, row in enumerate(rows):
        y = TOP + i * row_h + 5
        out.append(row_label(LEFT - 10, y + per_row * bar_h / 2, row.label))
        for j, bar in enumerate(row.bars):
            width = scale(bar.value) - LEFT
            out.append(rect(LEFT, y + j * bar_h, width, bar_h - 3, bar.fill, bar.title, extra=' rx="2"'))
            out.append(text(LEFT + max(width, 0.8) + 6, y + j * bar_h + bar_h - 6, fmt(bar.value), cls="value"))
            marks += 1
        if row.note:
            out.append(text(WIDTH - RIGHT, y + per_row * bar_h / 2 + 4, row.note, "end", "note"))
    return svg(bottom + AXIS_H, out, label), marks


def column_chart(values: list[float], titles: list[str], fmt, height: float, label: str,
                 reference: float | None = None, reference_label: str = "") -> tuple[str, int]:
    """Vertical bars in the given order, with an optional dashed reference line (e.g. the median)."""
    hi = max(values, default=0) or 1
    ticks = byte_ticks(hi, 3) if fmt is fmt_bytes else nice_ticks(0, hi, 3)
    y = Scale(0, max(ticks[-1], hi), TOP + height, TOP)
    out = y_axis(y, ticks, fmt, LEFT, WIDTH - RIGHT, "")
    slot = (WIDTH - RIGHT - LEFT) / max(1, len(values))
    gap = min(2.0, slot * 0.2)
    for i, (value, title) in enumerate(zip(values, titles)):
        top = y(value)
        out.append(rect(LEFT + i * slot + gap / 2, top, slot - gap, TOP + height - top, color(0), title))
    if reference is not None:
        ry = y(reference)
        out.append(line(LEFT, ry, WIDTH - RIGHT, ry, "ref", f' stroke="{FAILED}"'))
        out.append(text(WIDTH - RIGHT - 4, ry - 4, reference_label, "end", "note"))
    out.append(line(LEFT, TOP + height, WIDTH - RIGHT, TOP + height, "axis"))
    return svg(TOP + height + 10, out, label), len(values)


# ---------------------------------------------------------------- line charts


@dataclass
class Series:
    label: str
    points: list[tuple[float, float]]
    stroke: str
    dash: bool = False
    fill: bool = False  # shade the area under the line
    key: int = 0  # what the series is of (a stage id), for ordering


def downsample(points: list[tuple[float, float]], limit: int = 800) -> list[tuple[float, float]]:
    """At most `limit` points, keeping each bucket's highest value so peaks survive."""
    if len(points) <= limit:
        return points
    size = math.ceil(len(points) / limit)
    return [max(points[i:i + size], key=lambda p: p[1]) for i in range(0, len(points), size)]


def line_chart(series: list[Series], x_hi: float, fmt, y_title: str, label: str, height: float = 230) -> tuple[str, int]:
    """Lines over run time (seconds from the start); returns the SVG and the number of points drawn."""
    y_hi = max((v for s in series for _, v in s.points), default=0) or 1
    y_ticks = byte_ticks(y_hi) if fmt is fmt_bytes else nice_ticks(0, y_hi, 5)
    out, legend_h = legend([(s.label, s.stroke, "dash" if s.dash else "line") for s in series], LEFT, TOP + 8)
    plot_top = TOP + 22 + legend_h
    bottom = plot_top + height
    y = Scale(0, max(y_ticks[-1], y_hi), bottom, plot_top)
    seconds, fmt_time = time_ticks(x_hi or 1)
    x = Scale(0, seconds[-1], LEFT, WIDTH - RIGHT)
    out += y_axis(y, y_ticks, fmt, LEFT, WIDTH - RIGHT, y_title)
    out += x_axis(x, seconds, fmt_time, plot_top, bottom, "time since the run started")
    drawn = 0
    for s in series:
        points = downsample(s.points)
        if not points:
            continue
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        if s.fill and len(points) > 1:
            area = f"{x(points[0][0]):.1f},{bottom:.1f} {coords} {x(points[-1][0]):.1f},{bottom:.1f}"
            out.append(f'<polygon points="{area}" fill="{s.stroke}" fill-opacity="0.12" stroke="none"/>')
        dash = ' stroke-dasharray="6 4"' if s.dash else ""
        peak = max(v for _, v in points)
        out.append(f'<polyline class="mark" points="{coords}" fill="none" stroke="{s.stroke}" stroke-width="2"'
                   f'{dash} stroke-linejoin="round"><title>{esc(s.label)}: peak {esc(fmt(peak))}</title></polyline>')
        if len(points) == 1:  # a lone sample is a dot, not an invisible line
            out.append(f'<circle class="mark" cx="{x(points[0][0]):.1f}" cy="{y(points[0][1]):.1f}" r="3" '
                       f'fill="{s.stroke}"><title>{esc(s.label)}: {esc(fmt(points[0][1]))}</title></circle>')
        drawn += len(points)
    return svg(bottom + AXIS_H, out, label), drawn
