"""A sales report in pictures: its best day and its revenue per day as an SVG bar chart.

Pure functions of the report's stored `revenue_per_day`; shop/report_views.py puts them in the
page.
"""

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.utils.html import format_html
from django.utils.safestring import mark_safe

from shop.templatetags.money import money


@dataclass(frozen=True)
class Day:
    day: date
    revenue: Decimal


def days_of(revenue_per_day):
    """The report's stored [["2026-11-24", "1234.50"], ...] as Day objects."""
    return [Day(date.fromisoformat(day), Decimal(amount)) for day, amount in revenue_per_day]


def best_day(revenue_per_day):
    """The day with the highest revenue (the earliest of equals), or None without sales."""
    days = [d for d in days_of(revenue_per_day) if d.revenue > 0]
    return max(days, key=lambda d: d.revenue, default=None)


# Chart geometry, in SVG user units: the drawing scales to the width of the page.
CHART_WIDTH, CHART_HEIGHT = 720, 260
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 60, 708, 34, 230
MAX_BAR_WIDTH = 48  # a report of a few days gets bars, not slabs
MAX_DATE_LABELS = 8


def revenue_chart_svg(revenue_per_day):
    """Revenue per day as an SVG bar chart, ready to put in a page as it is.

    One bar per day of the range, days without sales included (a gap is news too); round
    gridlines with their amounts on the left, a few dates below, a dashed line at the daily
    average, and each bar's exact amount in its tooltip. Everything written into the markup
    goes through format_html, so it is escaped.
    """
    days = days_of(revenue_per_day)
    peak = max((d.revenue for d in days), default=Decimal(0))
    top, step = nice_scale(float(peak))
    plot_width, plot_height = PLOT_RIGHT - PLOT_LEFT, PLOT_BOTTOM - PLOT_TOP
    slot = plot_width / max(len(days), 1)
    # Thin bars touch; wide ones get some air between them.
    bar_width = min(slot * 0.8 if slot >= 4 else slot, MAX_BAR_WIDTH)

    def y_of(amount):
        return PLOT_BOTTOM - float(amount) / top * plot_height

    total = sum((d.revenue for d in days), Decimal("0.00"))
    summary = f"{money(total)} in total" if total else "no sales"
    if days:
        period = f"{long_date(days[0].day)} to {long_date(days[-1].day)}"
        summary = f"Revenue per day, {period}: {summary}"
    parts = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {} {}" '
            'width="{}" height="{}" role="img" aria-label="{}">',
            CHART_WIDTH,
            CHART_HEIGHT,
            CHART_WIDTH,
            CHART_HEIGHT,
            summary,
        )
    ]
    ticks = round(top / step) if peak else 0  # without sales, only the zero line
    for n in range(ticks + 1):
        value = n * step
        y = f"{y_of(value):.1f}"
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="axis" x="{}" y="{}" text-anchor="end" dy="0.32em">{}</text>',
                PLOT_LEFT,
                PLOT_RIGHT,
                y,
                y,
                PLOT_LEFT - 8,
                y,
                short_money(value),
            )
        )
    for index, d in enumerate(days):
        x = PLOT_LEFT + index * slot + (slot - bar_width) / 2
        y = y_of(d.revenue)
        parts.append(
            format_html(
                '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="#3b5bdb">'
                "<title>{}: {}</title></rect>",
                f"{x:.2f}",
                f"{y:.2f}",
                f"{bar_width:.2f}",
                f"{PLOT_BOTTOM - y:.2f}",
                long_date(d.day),
                money(d.revenue),
            )
        )
    every = math.ceil(len(days) / MAX_DATE_LABELS) if days else 1
    for index in range(0, len(days), every):
        parts.append(
            format_html(
                '<text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                f"{PLOT_LEFT + (index + 0.5) * slot:.1f}",
                PLOT_BOTTOM + 20,
                f"{days[index].day.day} {days[index].day:%b}",
            )
        )
    if total:
        # The daily average: a dashed line across the bars, named in a legend above them.
        average = total / len(days)
        y = f"{y_of(average):.1f}"
        parts.append(
            format_html(
                '<line class="average" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<line class="average" x1="{}" x2="{}" y1="12" y2="12"/>'
                '<text class="axis average-label" x="{}" y="12" dy="0.32em">'
                "average: {} a day</text>",
                PLOT_LEFT,
                PLOT_RIGHT,
                y,
                y,
                PLOT_LEFT,
                PLOT_LEFT + 24,
                PLOT_LEFT + 30,
                money(average),
            )
        )
    else:
        parts.append(
            format_html(
                '<text class="axis" x="{}" y="{}" text-anchor="middle">'
                "No sales in this period</text>",
                (PLOT_LEFT + PLOT_RIGHT) // 2,
                (PLOT_TOP + PLOT_BOTTOM) // 2,
            )
        )
    parts.append("</svg>")
    # Every part is either a constant or came out of format_html, which escaped its values.
    return mark_safe("".join(parts))


def nice_scale(peak, ticks=4):
    """A round top for the axis and the step between gridlines: (1000, 250) for a peak of 870."""
    if peak <= 0:
        return 1.0, 1.0
    raw_step = peak / ticks
    magnitude = 10 ** math.floor(math.log10(raw_step))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * magnitude
        if step * ticks >= peak:
            return step * ticks, step
    return peak, raw_step  # not reached: 10 * magnitude * ticks is always enough


def short_money(value):
    """Axis labels: $0, $250, $1.5k, $2M."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if value >= size:
            return f"${value / size:g}{suffix}"
    return f"${value:g}"


def long_date(day):
    return f"{day:%a} {day.day} {day:%b %Y}"
