"""A daily cost chart as server-rendered SVG: no script, no CDN, CSP-friendly.

Stacked bars, one per day, one colour per series, with a legend and a y-axis
in dollars. Every label is escaped; the markup is built here only.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils.formats import date_format
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from usage.money import usd_display

PALETTE = ("#c96442", "#3b82c4", "#5a9e4b", "#b5892f", "#8a63b8", "#8c8c8c")
WIDTH, HEIGHT = 860, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 16, 40


def _nice_max(value: Decimal) -> Decimal:
    """A round top for the y-axis at or above `value` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (1, 2, 5, 10):
        top = Decimal(step) * Decimal(10) ** exponent
        if top >= value:
            return top
    return Decimal(10) ** (exponent + 1)


def daily_chart_svg(
    *, days: list[dt.date], series: list[tuple[str, list[Decimal]]], title: str
) -> SafeString:
    """The chart for `series` (label, cost per day) over `days`."""
    totals = [sum((values[i] for _, values in series), Decimal(0)) for i in range(len(days))]
    top = _nice_max(max(totals, default=Decimal(0)))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.72, 1.0)
    parts = [
        f'<svg class="usage-chart" viewBox="0 0 {WIDTH} {HEIGHT + 24 * ((len(series) + 3) // 4)}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid" '
            f'stroke="currentColor" stroke-opacity="0.15"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="currentColor">{escape(usd_display(value))}</text>'
        )
    label_every = max(1, len(days) // 10)
    for i, day in enumerate(days):
        x = LEFT + slot * i + (slot - bar) / 2
        y = TOP + plot_h
        for index, (label, values) in enumerate(series):
            value = values[i]
            if value <= 0:
                continue
            h = float(value / top) * plot_h
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{max(h, 0.5):.1f}" '
                f'fill="{PALETTE[index % len(PALETTE)]}"><title>{escape(label)}, '
                f"{escape(date_format(day, 'j M'))}: {escape(usd_display(value))}</title></rect>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{LEFT + slot * i + slot / 2:.1f}" y="{TOP + plot_h + 16}" '
                f'text-anchor="middle" font-size="11" fill="currentColor">'
                f"{escape(date_format(day, 'j M'))}</text>"
            )
    for index, (label, values) in enumerate(series):
        lx = LEFT + (index % 4) * 200
        ly = HEIGHT + 4 + 24 * (index // 4)
        parts.append(
            f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" '
            f'fill="{PALETTE[index % len(PALETTE)]}"/>'
            f'<text x="{lx + 18}" y="{ly}" font-size="12" fill="currentColor">'
            f"{escape(label[:24])} · {escape(usd_display(sum(values, Decimal(0))))}</text>"
        )
    if not series:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" '
            f'font-size="14" fill="currentColor">{escape(gettext("No spend in this period"))}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated label is escaped above
