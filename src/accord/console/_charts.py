"""Charts drawn on the server as SVG: no script, readable by screen readers (each chart has a
title, a description and the figures as a table beside it), and sharp at any size."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

# colour-blind-safe (Okabe-Ito), in the order series are given
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000")
STATUS_COLOURS = {
    "failed": "#D55E00",
    "cancelled": "#999999",
    "compensated": "#CC79A7",
    "running": "#56B4E9",
    "waiting": "#E69F00",
}


@dataclass(frozen=True, slots=True)
class Chart:
    """An SVG figure, its caption, and the table of the numbers it shows."""

    title: str
    svg: Markup
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _colour(name: str, index: int) -> str:
    return STATUS_COLOURS.get(name, PALETTE[index % len(PALETTE)])


def _svg(title: str, description: str, width: int, height: int, body: list[str]) -> Markup:
    ident = f"c{zlib.crc32((title + description).encode()):08x}"
    return Markup(
        f'<svg role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-labelledby="{ident}t {ident}d" class="chart">'
        f'<title id="{ident}t">{escape(title)}</title>'
        f'<desc id="{ident}d">{escape(description)}</desc>' + "".join(body) + "</svg>"
    )


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return value


def stacked_bars(
    title: str, labels: Sequence[str], series: Mapping[str, Sequence[int]], *, unit: str = "runs"
) -> Chart:
    """Columns per label, each stacked by series (e.g. runs per hour by outcome)."""
    width, height, left, bottom, top = 640, 260, 40, 40, 16
    names = list(series)
    totals = [sum(series[n][i] for n in names) for i in range(len(labels))]
    peak = _nice_max(max(totals, default=0))
    plot_w, plot_h = width - left - 8, height - bottom - top
    slot = plot_w / max(len(labels), 1)
    body = []
    for tick in range(5):
        value = peak * tick / 4
        y = top + plot_h - plot_h * tick / 4
        body.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
            f"{value:g}</text>"
        )
    for i, label in enumerate(labels):
        x = left + i * slot + slot * 0.15
        y = top + plot_h
        for index, name in enumerate(names):
            count = series[name][i]
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                f'fill="{_colour(name, index)}"><title>{escape(label)}: {count} '
                f"{escape(name)}</title></rect>"
            )
        if i % max(1, len(labels) // 6) == 0:
            body.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{height - bottom + 16}" class="axis" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    for index, name in enumerate(names):
        x = left + index * 110
        body.append(
            f'<rect x="{x}" y="{height - 14}" width="10" height="10" '
            f'fill="{_colour(name, index)}"/>'
            f'<text x="{x + 14}" y="{height - 5}" class="legend">{escape(name)}</text>'
        )
    description = f"{sum(totals)} {unit} in {len(labels)} periods, by " + ", ".join(names)
    rows = tuple((label, *(str(series[n][i]) for n in names)) for i, label in enumerate(labels))
    return Chart(title, _svg(title, description, width, height, body), ("period", *names), rows)


def bars(
    title: str,
    items: Sequence[tuple[str, float, str]],
    *,
    maximum: float | None = None,
    percent: bool = False,
) -> Chart:
    """Horizontal bars: (label, value, note) each, e.g. escalation rate per journey."""
    row_h, left, width = 26, 200, 640
    height = max(row_h * len(items) + 10, 40)
    peak = maximum if maximum is not None else _nice_max(max((v for _, v, _ in items), default=0))
    plot_w = width - left - 70
    body = []
    for i, (label, value, note) in enumerate(items):
        y = 6 + i * row_h
        w = plot_w * (value / peak if peak else 0)
        shown = f"{value:.0%}" if percent else f"{value:g}"
        body.append(
            f'<text x="{left - 8}" y="{y + 15}" class="axis" text-anchor="end">'
            f"{escape(label[:32])}</text>"
            f'<rect x="{left}" y="{y}" width="{max(w, 1):.1f}" height="{row_h - 8}" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: {shown} {escape(note)}</title></rect>'
            f'<text x="{left + w + 6:.1f}" y="{y + 15}" class="value">{shown}</text>'
        )
    if not items:
        body.append(f'<text x="{left}" y="24" class="axis">nothing to show yet</text>')
    description = "; ".join(
        f"{label} {value:.0%}" if percent else f"{label} {value:g}" for label, value, _ in items
    )
    rows = tuple(
        (label, f"{value:.1%}" if percent else f"{value:g}", note) for label, value, note in items
    )
    return Chart(
        title,
        _svg(title, description or "no data", width, height, body),
        ("", "value", "of"),
        rows,
    )


def histogram(title: str, counts: Sequence[int], *, lo: float = 0.0, hi: float = 1.0) -> Chart:
    """Counts per equal-width bin between ``lo`` and ``hi`` (e.g. confidence)."""
    width, height, left, bottom = 320, 140, 30, 24
    peak = _nice_max(max(counts, default=0))
    bins = len(counts)
    slot = (width - left - 6) / max(bins, 1)
    plot_h = height - bottom - 8
    body = []
    step = (hi - lo) / max(bins, 1)
    for i, count in enumerate(counts):
        h = plot_h * count / peak
        x = left + i * slot
        body.append(
            f'<rect x="{x + 1:.1f}" y="{8 + plot_h - h:.1f}" width="{slot - 2:.1f}" '
            f'height="{h:.1f}" fill="{PALETTE[2]}"><title>{lo + i * step:.1f} to '
            f"{lo + (i + 1) * step:.1f}: {count}</title></rect>"
        )
    body.append(
        f'<text x="{left}" y="{height - 6}" class="axis">{lo:g}</text>'
        f'<text x="{width - 6}" y="{height - 6}" class="axis" text-anchor="end">{hi:g}</text>'
        f'<text x="{left - 4}" y="16" class="axis" text-anchor="end">{peak:g}</text>'
    )
    description = f"{sum(counts)} values; " + ", ".join(
        f"{lo + i * step:.1f}-{lo + (i + 1) * step:.1f}: {c}" for i, c in enumerate(counts) if c
    )
    rows = tuple(
        (f"{lo + i * step:.1f} to {lo + (i + 1) * step:.1f}", str(c)) for i, c in enumerate(counts)
    )
    return Chart(title, _svg(title, description, width, height, body), ("range", "count"), rows)
