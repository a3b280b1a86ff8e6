"""Plots as inline SVG text: scatter with a frontier, lines, box plots and bars.

Pure functions from numbers and labels to markup, so a report needs no plotting library and
no script to be read. Every string that reaches the markup goes through `esc`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from codeduel.metrics import percentile

__all__ = [
    "PALETTE",
    "Bar",
    "Box",
    "Dots",
    "Point",
    "Series",
    "bar_plot",
    "box_plot",
    "dot_plot",
    "esc",
    "frontier_plot",
    "line_plot",
    "pareto",
]

# Okabe-Ito, told apart with the common colour-vision deficiencies; yellow left out (on white).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
# A generous mean glyph width of the sans-serif fonts at 12 px, to lay labels out without a font.
_CHAR_PX = 7.2
_LINE_PX = 16
_GRID = "#e4e4e4"

Format = Callable[[float], str]


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _f(value: float) -> str:
    return f"{value:.1f}"


def _text_px(text: str) -> float:
    return len(text) * _CHAR_PX


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


@dataclass(frozen=True)
class Point:
    label: str
    color: str
    x: float
    y: float
    # The y value's confidence interval, drawn as a bar; equal to y when there is none.
    y_low: float
    y_high: float


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: tuple[tuple[float, float], ...]
    dashed: bool = False
    # Printed by each point (e.g. the attempt number); empty for none.
    point_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Box:
    label: str
    color: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Dots:
    """One marker per row of a dot plot (None: no value there), in one colour."""

    label: str
    color: str
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class Bar:
    label: str
    color: str
    value: float | None
    text: str


@dataclass(frozen=True)
class _Axis:
    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def at(self, value: float) -> float:
        if self.log:
            lo, hi, value = math.log10(self.lo), math.log10(self.hi), math.log10(value)
        else:
            lo, hi = self.lo, self.hi
        return self.start + (value - lo) / (hi - lo) * (self.end - self.start)

    def ticks(self) -> list[float]:
        if not self.log:
            return _linear_ticks(self.lo, self.hi)
        low = math.ceil(math.log10(self.lo) - 1e-9)
        high = math.floor(math.log10(self.hi) + 1e-9)
        decades = [10.0**k for k in range(low, high + 1)]
        if len(decades) >= 3:
            return decades
        return [
            tick
            for k in range(low - 1, high + 1)
            for m in (1, 2, 5)
            if self.lo <= (tick := m * 10.0**k) <= self.hi
        ]


def _step(span: float, count: int = 5) -> float:
    raw = span / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return magnitude * next(m for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _linear_ticks(lo: float, hi: float) -> list[float]:
    step = _step(hi - lo)
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9:
        ticks.append(round(k * step, 12))
        k += 1
    return ticks


def _linear(lo: float, hi: float, start: float, end: float) -> _Axis:
    """An axis from `lo` (0 when all values are positive) to `hi` rounded up to a tick."""
    lo = min(0.0, lo)
    if hi <= lo:
        hi = lo + 1.0
    step = _step(hi - lo)
    return _Axis(lo, math.ceil(hi / step - 1e-9) * step, start, end)


def _value_axis(values: Sequence[float], start: float, end: float) -> _Axis:
    """Logarithmic when the values are positive and span more than 20×, else linear from 0;
    either way with a margin, so no point sits on the frame."""
    lo, hi = min(values), max(values)
    if lo > 0 and hi / lo > 20:
        margin = 0.08 * math.log10(hi / lo)
        return _Axis(lo / 10**margin, hi * 10**margin, start, end, log=True)
    axis = _linear(lo, hi, start, end)
    pad = (axis.hi - axis.lo) * 0.04
    return _Axis(axis.lo - pad, axis.hi + pad, start, end)


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _percent(value: float) -> str:
    return f"{value:.0f}"


class _Canvas:
    def __init__(self, plot: str, width: float, height: float, title: str) -> None:
        self.plot = plot
        self.width = width
        self.height = height
        self.title = title
        self.parts: list[str] = []

    @staticmethod
    def _attrs(attrs: dict[str, object]) -> str:
        """Attribute names lose a trailing _ and turn _ into -; values are escaped."""
        return "".join(
            f' {name.rstrip("_").replace("_", "-")}="'
            + (_f(value) if isinstance(value, float) else esc(value))
            + '"'
            for name, value in attrs.items()
            if value is not None
        )

    def add(self, tag: str, body: str = "", **attrs: object) -> None:
        """An element; `body` is markup (callers escape text with `esc`)."""
        rendered = self._attrs(attrs)
        self.parts.append(f"<{tag}{rendered}>{body}</{tag}>" if body else f"<{tag}{rendered}/>")

    def open(self, tag: str, **attrs: object) -> None:
        self.parts.append(f"<{tag}{self._attrs(attrs)}>")

    def close(self, tag: str) -> None:
        self.parts.append(f"</{tag}>")

    def text(self, x: float, y: float, text: str, anchor: str = "start", **attrs: object) -> None:
        self.add("text", esc(text), x=x, y=y, text_anchor=anchor, **attrs)

    def render(self) -> str:
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" data-plot="{esc(self.plot)}" '
            f'viewBox="0 0 {_f(self.width)} {_f(self.height)}" width="{_f(self.width)}" '
            f'height="{_f(self.height)}" role="img" aria-label="{esc(self.title)}">'
        )
        return head + f"<title>{esc(self.title)}</title>" + "".join(self.parts) + "</svg>"


def _frame(
    canvas: _Canvas,
    x: _Axis,
    y: _Axis,
    x_label: str,
    x_format: Format,
    y_label: str = "",
    y_format: Format | None = None,
) -> None:
    """Grid, ticks, tick labels and axis titles of the plot area x and y span; no y ticks
    without a y_format (rows of labelled bars or boxes)."""
    top, bottom = min(y.start, y.end), max(y.start, y.end)
    left, right = x.start, x.end
    for value in x.ticks():
        px = x.at(value)
        canvas.add("line", x1=px, y1=top, x2=px, y2=bottom, stroke=_GRID)
        canvas.text(px, bottom + 16, x_format(value), "middle", class_="tick")
    if y_format is not None:
        for value in y.ticks():
            py = y.at(value)
            canvas.add("line", x1=left, y1=py, x2=right, y2=py, stroke=_GRID)
            canvas.text(left - 6, py + 4, y_format(value), "end", class_="tick")
    canvas.add(
        "rect", x=left, y=top, width=right - left, height=bottom - top, fill="none", stroke="#999"
    )
    canvas.text((left + right) / 2, bottom + 36, x_label, "middle", class_="axis-label")
    if y_label:
        middle = (top + bottom) / 2
        canvas.text(
            16.0,
            middle,
            y_label,
            "middle",
            class_="axis-label",
            transform=f"rotate(-90 16 {middle:.1f})",
        )


def _legend(
    canvas: _Canvas, entries: Sequence[tuple[str, str, bool]], left: float, top: float
) -> None:
    """Swatch and label per entry (label, colour, dashed), wrapped to the canvas width."""
    x, y = left, top
    for label, color, dashed in entries:
        width = 34 + _text_px(label)
        if x > left and x + width > canvas.width - 10:
            x, y = left, y + _LINE_PX + 4
        canvas.add(
            "line",
            x1=x,
            y1=y - 4,
            x2=x + 24,
            y2=y - 4,
            stroke=color,
            stroke_width=2.5,
            stroke_dasharray="6 4" if dashed else None,
        )
        canvas.text(x + 30, y, label, class_="legend")
        x += width + 18


def _legend_rows(entries: Sequence[tuple[str, str, bool]], left: float, width: float) -> int:
    rows, x = 1, left
    for label, _, _ in entries:
        entry = 34 + _text_px(label)
        if x > left and x + entry > width - 10:
            rows, x = rows + 1, left
        x += entry + 18
    return rows


def pareto(points: Sequence[Point]) -> list[Point]:
    """The points no other point beats on both counts (lower x, higher y), by increasing x."""
    frontier: list[Point] = []
    for p in sorted(points, key=lambda p: (p.x, -p.y)):
        if not frontier or p.y > frontier[-1].y:
            frontier.append(p)
    return frontier


Rect = tuple[float, float, float, float]


def _overlap(a: Rect, b: Rect) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _place_labels(
    anchors: Sequence[tuple[float, float, str]], bounds: Rect, lines: Sequence[Rect] = ()
) -> list[tuple[float, float, str]]:
    """Put each label next to its point where it covers no other label, point or line if it
    can: (x, y, text-anchor) per label, in order. `lines` are thin boxes along drawn lines."""
    offsets = [
        (9, 4, "start"),
        (-9, 4, "end"),
        (0, -11, "middle"),
        (0, 19, "middle"),
        (9, -11, "start"),
        (9, 19, "start"),
        (-9, -11, "end"),
        (-9, 19, "end"),
    ]
    offsets += [(dx, dy * k, a) for k in (2, 3) for dx, dy, a in offsets[4:]]
    # A line under a label hides less than a label or a point does: crossing one costs about
    # what moving the label 40 px off its point does.
    taken: list[tuple[Rect, float]] = [((x - 6, y - 6, x + 6, y + 6), 4.0) for x, y, _ in anchors]
    taken += [(line, 2.0) for line in lines]
    placed = []
    for x, y, text in anchors:
        width = _text_px(text)
        best: tuple[float, float, float, str, Rect] | None = None
        for dx, dy, anchor in offsets:
            tx, ty = x + dx, y + dy
            left = {"start": tx, "middle": tx - width / 2, "end": tx - width}[anchor]
            rect = (left, ty - 11, left + width, ty + 3)
            outside = (
                max(0.0, bounds[0] - rect[0])
                + max(0.0, rect[2] - bounds[2])
                + max(0.0, bounds[1] - rect[1])
                + max(0.0, rect[3] - bounds[3])
            )
            cost = (
                sum(w * _overlap(rect, other) for other, w in taken)
                + 1000 * outside
                + 1.5 * (abs(dx) + abs(dy))
            )
            if best is None or cost < best[0]:
                best = (cost, tx, ty, anchor, rect)
        assert best is not None
        taken.append((best[4], 1.0))
        placed.append((best[1], best[2], best[3]))
    return placed


def _segment_boxes(points: Sequence[tuple[float, float]], step: float = 6.0) -> list[Rect]:
    """Small boxes every `step` px along a polyline, for labels to keep off it."""
    boxes = []
    for (x1, y1), (x2, y2) in pairwise(points):
        n = max(1, int(math.hypot(x2 - x1, y2 - y1) / step))
        for i in range(n + 1):
            x, y = x1 + (x2 - x1) * i / n, y1 + (y2 - y1) * i / n
            boxes.append((x - 2, y - 2, x + 2, y + 2))
    return boxes


def frontier_plot(
    plot: str, title: str, points: Sequence[Point], x_label: str, y_label: str, x_format: Format
) -> str:
    """Points with their intervals and labels, the Pareto frontier (low x, high y) as a line."""
    width, height = 1000.0, 480.0
    left, right, top, bottom = 64.0, width - 24, 20.0, height - 56
    canvas = _Canvas(plot, width, height, title)
    x = _value_axis([p.x for p in points], left, right)
    y = _Axis(0.0, 100.0, bottom, top)
    _frame(canvas, x, y, x_label + (" (log scale)" if x.log else ""), x_format, y_label, _percent)
    frontier = pareto(points)
    line = [(x.at(p.x), y.at(100 * p.y)) for p in frontier]
    canvas.add(
        "polyline",
        points=" ".join(f"{_f(a)},{_f(b)}" for a, b in line),
        fill="none",
        stroke="#333",
        stroke_width=1.5,
        stroke_dasharray="5 4",
        class_="frontier",
    )
    anchors = []
    lines = _segment_boxes(line)
    for p in points:
        px, py = x.at(p.x), y.at(100 * p.y)
        lines.append((px - 1, y.at(100 * p.y_high), px + 1, y.at(100 * p.y_low)))
        canvas.add(
            "line",
            x1=px,
            y1=y.at(100 * p.y_low),
            x2=px,
            y2=y.at(100 * p.y_high),
            stroke=p.color,
            stroke_width=1.5,
            opacity="0.6",
        )
        canvas.add(
            "circle",
            f"<title>{esc(p.label)}</title>",
            cx=px,
            cy=py,
            r=5.5,
            fill=p.color,
            # Outlined on the frontier, which a single point leaves without a line.
            stroke="#222" if p in frontier else "#fff",
            stroke_width=2.0 if p in frontier else 1.5,
            class_="point",
            data_label=p.label,
            data_x=f"{p.x:.6g}",
            data_y=f"{p.y:.6g}",
            data_frontier="1" if p in frontier else "0",
        )
        anchors.append((px, py, p.label))
    for (tx, ty, anchor), p in zip(
        _place_labels(anchors, (left, top, right, bottom), lines), points, strict=True
    ):
        canvas.text(tx, ty, p.label, anchor, class_="point-label")
    _legend(canvas, [("Pareto frontier (its points outlined)", "#333", True)], left, height - 10)
    return canvas.render()


def line_plot(
    plot: str,
    title: str,
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    x_format: Format = _number,
) -> str:
    """Lines of y (a share, drawn as %) over x from 0, with markers and a legend below."""
    width = 1000.0
    entries = [(s.label, s.color, s.dashed) for s in series]
    left, right, top, bottom = 64.0, width - 24, 20.0, 360.0
    height = bottom + 60 + (_legend_rows(entries, left, width) - 1) * (_LINE_PX + 4) + 12
    canvas = _Canvas(plot, width, height, title)
    xs = [px for s in series for px, _ in s.points]
    x = _value_axis(xs, left, right)
    y = _Axis(0.0, 100.0, bottom, top)
    _frame(canvas, x, y, x_label + (" (log scale)" if x.log else ""), x_format, y_label, _percent)
    for s in series:
        canvas.add(
            "polyline",
            points=" ".join(f"{_f(x.at(a))},{_f(y.at(100 * b))}" for a, b in s.points),
            fill="none",
            stroke=s.color,
            stroke_width=2,
            stroke_dasharray="6 4" if s.dashed else None,
            class_="series",
            data_label=s.label,
        )
        for i, (a, b) in enumerate(s.points):
            px, py = x.at(a), y.at(100 * b)
            canvas.add(
                "circle",
                f"<title>{esc(s.label)}: {_number(a)}, {100 * b:.1f}%</title>",
                cx=px,
                cy=py,
                r=4.0,
                fill="#fff" if s.dashed else s.color,
                stroke=s.color,
                stroke_width=2,
                class_="point",
                data_label=s.label,
                data_x=f"{a:.6g}",
                data_y=f"{b:.6g}",
            )
            if i < len(s.point_labels):
                canvas.text(
                    px,
                    py - 9,
                    s.point_labels[i],
                    "middle",
                    class_="point-label small",
                    fill=s.color,
                )
    _legend(canvas, entries, left, bottom + 60)
    return canvas.render()


def _wrap(text: str, chars: int = 40, most: int = 3) -> list[str]:
    """`text` in at most `most` lines of at most `chars`, broken at spaces; a longer word is
    cut, and text beyond the last line is left out, marked with an ellipsis."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= chars:
            lines[-1] += " " + word
        else:
            lines.append(_clip(word, chars))
    if len(lines) > most:
        lines = lines[:most]
        lines[-1] = _clip(lines[-1], chars - 1) + "…"
    return lines


class _Rows:
    """The label column of a chart with one row per label: wrapped labels, the column's width
    and a row height that fits the longest label."""

    top = 12.0

    def __init__(self, labels: Sequence[str], row: float) -> None:
        self.labels = labels
        self.wrapped = [_wrap(label) for label in labels]
        self.width = 16 + max(_text_px(line) for lines in self.wrapped for line in lines)
        self.row = max(row, _LINE_PX * max(len(lines) for lines in self.wrapped) + 8)

    def mid(self, i: int) -> float:
        return self.top + self.row * (i + 0.5)

    def draw(self, canvas: _Canvas, i: int, x: float, mid: float) -> None:
        lines = self.wrapped[i]
        first = mid + 4 - (len(lines) - 1) * _LINE_PX / 2
        canvas.open("text", class_="row-label", text_anchor="end")
        canvas.add("title", esc(self.labels[i]))
        for k, line in enumerate(lines):
            canvas.add("tspan", esc(line), x=x, y=first + k * _LINE_PX)
        canvas.close("text")


def _row_chart(
    plot: str, title: str, rows: _Rows, gutter: float, hi: float, x_label: str
) -> tuple[_Canvas, _Axis]:
    """The canvas and framed x axis (0 to `hi`) of a chart of `rows`, the labels on the left
    and `gutter` px right of the plot area for text by the rows."""
    width = 1000.0
    bottom = rows.top + rows.row * len(rows.labels)
    canvas = _Canvas(plot, width, bottom + 56, title)
    x = _linear(0.0, hi, rows.width, width - gutter)
    _frame(canvas, x, _Axis(0.0, 1.0, bottom, rows.top), x_label, _number)
    return canvas, x


def box_plot(plot: str, title: str, boxes: Sequence[Box], x_label: str) -> str:
    """One row per box: the values as dots, quartiles as a box, the median as a bar, whiskers
    to the furthest values within 1.5 IQR, and a diamond at the 95th percentile."""
    rows = _Rows([b.label for b in boxes], 38.0)
    most = max(v for b in boxes for v in b.values)
    canvas, x = _row_chart(plot, title, rows, 60, most, x_label)
    for i, box in enumerate(boxes):
        mid = rows.mid(i)
        values = sorted(box.values)
        q1, median, q3 = (percentile(values, q) for q in (25, 50, 75))
        p95 = percentile(values, 95)
        reach = 1.5 * (q3 - q1)
        low = min(v for v in values if v >= q1 - reach)
        high = max(v for v in values if v <= q3 + reach)
        summary = (
            f"{box.label}: n={len(values)}, median {median:.2f} s, "
            f"IQR {q1:.2f}–{q3:.2f} s, p95 {p95:.2f} s"
        )
        canvas.open(
            "g",
            class_="box",
            data_label=box.label,
            data_n=len(values),
            data_median=f"{median:.6g}",
            data_p95=f"{p95:.6g}",
            stroke=box.color,
            fill=box.color,
        )
        canvas.add("title", esc(summary))
        canvas.add("line", x1=x.at(low), y1=mid, x2=x.at(q1), y2=mid)
        canvas.add("line", x1=x.at(q3), y1=mid, x2=x.at(high), y2=mid)
        canvas.add(
            "rect",
            x=x.at(q1),
            y=mid - 10,
            width=max(1.0, x.at(q3) - x.at(q1)),
            height=20.0,
            fill_opacity="0.15",
        )
        for j, v in enumerate(values):
            # Spread the dots over the row, the same way every time (golden-ratio offsets).
            jitter = ((j * 0.618034) % 1 - 0.5) * 14
            canvas.add("circle", cx=x.at(v), cy=mid + jitter, r=2.0, stroke="none", opacity="0.45")
        canvas.add(
            "line", x1=x.at(median), y1=mid - 12, x2=x.at(median), y2=mid + 12, stroke_width=3
        )
        p95_x = x.at(p95)
        canvas.add(
            "path",
            d=f"M{_f(p95_x)},{_f(mid - 6)} l5,6 l-5,6 l-5,-6 z",
            fill="#fff",
            stroke_width=1.5,
        )
        canvas.close("g")
        rows.draw(canvas, i, x.start - 8, mid)
        canvas.text(x.end + 8, mid + 4, f"n={len(values)}", class_="tick")
    return canvas.render()


def bar_plot(plot: str, title: str, bars: Sequence[Bar], x_label: str) -> str:
    """One horizontal bar per row with its value printed; rows without a value say so."""
    rows = _Rows([b.label for b in bars], 30.0)
    most = max(b.value for b in bars if b.value is not None)
    canvas, x = _row_chart(plot, title, rows, 110, most, x_label)
    left = x.start
    for i, bar in enumerate(bars):
        mid = rows.mid(i)
        rows.draw(canvas, i, left - 8, mid)
        if bar.value is None:
            canvas.text(left + 6, mid + 4, bar.text, class_="tick missing")
            continue
        end = x.at(bar.value)
        canvas.add(
            "rect",
            f"<title>{esc(bar.label)}: {esc(bar.text)}</title>",
            x=left,
            y=mid - 9,
            width=max(1.0, end - left),
            height=18.0,
            fill=bar.color,
            class_="bar",
            data_label=bar.label,
            data_value=f"{bar.value:.6g}",
        )
        canvas.text(end + 6, mid + 4, bar.text, class_="value")
    return canvas.render()


def _ratio_tick(value: float) -> str:
    return f"{_number(value)}×"


def dot_plot(
    plot: str,
    title: str,
    rows: Sequence[str],
    series: Sequence[Dots],
    x_label: str,
    reference: float = 1.0,
) -> str:
    """One row per label, a marker per series on a log axis of ratios, a dashed line at
    `reference` (1×: as fast as the baseline) and a legend below; a series' markers sit a
    little above or below the row's middle so equal values stay apart."""
    labels = _Rows(rows, 16.0 + 8.0 * len(series))
    values = [v for s in series for v in s.values if v is not None] + [reference]
    lo, hi = min(values), max(values)
    # At least a decade across, and a margin so no marker sits on the frame.
    margin = max(0.08 * math.log10(hi / lo), (1 - math.log10(hi / lo)) / 2)
    width = 1000.0
    entries = [(s.label, s.color, False) for s in series]
    bottom = labels.top + labels.row * len(rows)
    height = bottom + 60 + (_legend_rows(entries, labels.width, width) - 1) * (_LINE_PX + 4) + 12
    canvas = _Canvas(plot, width, height, title)
    x = _Axis(lo / 10**margin, hi * 10**margin, labels.width, width - 24, log=True)
    _frame(canvas, x, _Axis(0.0, 1.0, bottom, labels.top), x_label + " (log scale)", _ratio_tick)
    ref = x.at(reference)
    canvas.add(
        "line",
        x1=ref,
        y1=labels.top,
        x2=ref,
        y2=bottom,
        stroke="#333",
        stroke_width=1.5,
        stroke_dasharray="5 4",
        class_="reference",
    )
    for i, row in enumerate(rows):
        mid = labels.mid(i)
        labels.draw(canvas, i, x.start - 8, mid)
        for j, s in enumerate(series):
            value = s.values[i] if i < len(s.values) else None
            if value is None:
                continue
            canvas.add(
                "circle",
                f"<title>{esc(s.label)}, {esc(row)}: {_number(value)}×</title>",
                cx=x.at(value),
                cy=mid + (j - (len(series) - 1) / 2) * 8.0,
                r=4.0,
                fill=s.color,
                stroke="#fff",
                stroke_width=1.0,
                class_="point",
                data_label=s.label,
                data_row=row,
                data_x=f"{value:.6g}",
            )
    _legend(canvas, entries, labels.width, bottom + 60)
    return canvas.render()
