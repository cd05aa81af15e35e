"""Chart geometry for server-rendered inline SVG (metrics/_chart.html draws it).

No JavaScript and no chart library: the view turns numbers into coordinates here, the template
writes `<svg>` with a <title>/<desc> and a data-table fallback, and autoescaping keeps labels
safe. Colours are fixed mid-tones readable on light and dark backgrounds; text and grid use
currentColor so they follow the theme.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PALETTE = ("#4f46e5", "#0d9488", "#d97706", "#e11d48", "#0284c7", "#7c3aed", "#65a30d", "#64748b")
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 60, 28, 12, 28


@dataclass
class Chart:
    id: str
    kind: str  # "line" | "bars" | "hbars"
    title: str
    desc: str
    unit: str
    width: int = WIDTH
    height: int = HEIGHT
    legend: list[dict] = field(default_factory=list)
    y_ticks: list[dict] = field(default_factory=list)
    x_ticks: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    rects: list[dict] = field(default_factory=list)
    table_head: list[str] = field(default_factory=list)
    table_rows: list[list] = field(default_factory=list)
    empty: bool = False

    @property
    def plot_left(self) -> int:
        return LEFT

    @property
    def plot_right(self) -> int:
        return self.width - RIGHT

    @property
    def plot_bottom(self) -> int:
        return self.height - BOTTOM


def nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    base = 10**exponent
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * base:
            return step * base
    return 10 * base


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if unit == "ms":
        return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
    if unit == "$":
        if value >= 1:
            return f"${value:,.2f}"
        return "$" + (f"{value:.4f}".rstrip("0").rstrip(".") or "0")
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _y_ticks(top: float, unit: str, height: int) -> list[dict]:
    plot_h = height - TOP - BOTTOM
    return [{"y": round(height - BOTTOM - plot_h * i / 4, 1), "label": fmt(top * i / 4, unit)} for i in range(5)]


def _x_ticks(labels: list[str], xs: list[float]) -> list[dict]:
    if not labels:
        return []
    every = max(1, math.ceil(len(labels) / 8))
    return [{"x": round(x, 1), "label": label} for i, (label, x) in enumerate(zip(labels, xs, strict=True)) if i % every == 0]


def line_chart(*, id: str, title: str, desc: str, unit: str, labels: list[str], series: list[tuple[str, list[float | None]]]) -> Chart:
    chart = Chart(id=id, kind="line", title=title, desc=desc, unit=unit)
    values = [v for _, vs in series for v in vs if v is not None]
    chart.empty = not values
    top = nice_max(max(values, default=0))
    plot_w = chart.plot_right - chart.plot_left
    plot_h = chart.plot_bottom - TOP
    n = len(labels)
    xs = [chart.plot_left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2) for i in range(n)]
    for index, (name, vs) in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        chart.legend.append({"name": name, "color": color})
        segments, current = [], []
        points = []
        for x, v in zip(xs, vs, strict=True):
            if v is None:
                if current:
                    segments.append(current)
                current = []
                continue
            y = chart.plot_bottom - plot_h * (v / top)
            current.append(f"{x:.1f},{y:.1f}")
            points.append({"x": round(x, 1), "y": round(y, 1)})
        if current:
            segments.append(current)
        d = " ".join("M" + " L".join(seg) for seg in segments)
        chart.lines.append({"name": name, "color": color, "d": d, "points": points})
    chart.y_ticks = _y_ticks(top, unit, chart.height)
    chart.x_ticks = _x_ticks(labels, xs)
    chart.table_head = ["Time"] + [name for name, _ in series]
    chart.table_rows = [[label] + [fmt(vs[i], unit) for _, vs in series] for i, label in enumerate(labels)]
    return chart


def stacked_bars(*, id: str, title: str, desc: str, unit: str, labels: list[str], series: list[tuple[str, list[float]]]) -> Chart:
    chart = Chart(id=id, kind="bars", title=title, desc=desc, unit=unit)
    n = len(labels)
    totals = [sum(vs[i] for _, vs in series) for i in range(n)]
    chart.empty = not any(totals)
    top = nice_max(max(totals, default=0))
    plot_w = chart.plot_right - chart.plot_left
    plot_h = chart.plot_bottom - TOP
    slot = plot_w / max(n, 1)
    bar_w = max(2.0, slot * 0.7)
    xs = [chart.plot_left + slot * i + slot / 2 for i in range(n)]
    for index, (name, _) in enumerate(series):
        chart.legend.append({"name": name, "color": PALETTE[index % len(PALETTE)]})
    for i in range(n):
        base = chart.plot_bottom
        for index, (name, vs) in enumerate(series):
            value = vs[i]
            if not value:
                continue
            h = plot_h * value / top
            base -= h
            chart.rects.append({
                "x": round(xs[i] - bar_w / 2, 1), "y": round(base, 1), "w": round(bar_w, 1), "h": round(h, 1),
                "color": PALETTE[index % len(PALETTE)], "label": f"{labels[i]} · {name}: {fmt(value, unit)}",
            })
    chart.y_ticks = _y_ticks(top, unit, chart.height)
    chart.x_ticks = _x_ticks(labels, xs)
    chart.table_head = ["Time"] + [name for name, _ in series] + (["Total"] if len(series) > 1 else [])
    chart.table_rows = [
        [label] + [fmt(vs[i], unit) for _, vs in series] + ([fmt(totals[i], unit)] if len(series) > 1 else [])
        for i, label in enumerate(labels)
    ]
    return chart


def horizontal_bars(*, id: str, title: str, desc: str, unit: str, items: list[tuple[str, float]]) -> Chart:
    row_h = 26
    chart = Chart(id=id, kind="hbars", title=title, desc=desc, unit=unit)
    chart.empty = not any(v for _, v in items)
    chart.height = max(60, TOP + row_h * len(items) + 8)
    label_w = 230
    plot_w = chart.width - label_w - 70
    top = max((v for _, v in items), default=0) or 1
    for i, (name, value) in enumerate(items):
        y = TOP + row_h * i
        w = plot_w * value / top
        chart.rects.append({
            "x": label_w, "y": y, "w": round(max(w, 1 if value else 0), 1), "h": row_h - 8,
            "color": PALETTE[3] if not name.startswith("DAC") else PALETTE[0],
            "label": name, "value": fmt(value, unit), "text_x": round(label_w + w + 6, 1), "text_y": y + row_h / 2,
        })
    chart.table_head = ["Class", "Count"]
    chart.table_rows = [[name, fmt(value, unit)] for name, value in items]
    return chart
