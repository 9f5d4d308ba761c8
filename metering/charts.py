"""The usage page's charts, laid out on the server as inline SVG (no script, no CDN).

This module only computes geometry; the templates draw it, each chart with a title, a
description and a table of the same figures for screen readers and for reading exact values.
The charts:

- cumulative units over a period against the included-quota line (and the spend cap, if
  any): where the line crosses the quota is where overage starts; after a tier switch the
  count starts again, as the quota does;
- billed units per minute, hour or day of any range as bars (``units_chart``), against the
  even pace of a period's included quota;
- calls per bucket by outcome, stacked: billed, refused over the rate limit, over the quota or
  at the spend cap, failed (``outcomes_chart``).

On a phone the SVG scales down with the screen and the stylesheet enlarges its labels, so the
axes carry few ticks (six at most).
"""

import math
from dataclasses import dataclass, field
from datetime import date, datetime

from metering.selectors import Granularity, UsagePoint, UsageSummary

WIDTH = 720
HEIGHT = 260
LEFT = 60
RIGHT = 16
TOP = 18
BOTTOM = 34
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM


@dataclass(frozen=True, slots=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True, slots=True)
class Guide:
    """A horizontal reference line (the quota, the cap, the daily pace)."""

    y: float
    value: int | float
    label: str


@dataclass(slots=True)
class ChartFrame:
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)


@dataclass(slots=True)
class CumulativeChart(ChartFrame):
    # SVG "x,y x,y ..." of the cumulative units up to today.
    line: str = ""
    # The same line closed down to the axis, filled.
    area: str = ""
    quota: Guide | None = None
    cap: Guide | None = None
    # x of today's marker; None when today is outside the period.
    today_x: float | None = None
    last_point: tuple[float, float] | None = None
    # Where a tier switch started the quota's count again.
    switches: list["Marker"] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Marker:
    """A vertical line at a moment (a tier switch), with its label."""

    x: float
    label: str


def nice_ceiling(value: float) -> int:
    """The smallest 1, 2 or 5 times 10^k at or above ``value`` (at least 1): a round axis top."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return int(step * power)
    return int(10 * power)


def axis_top(highest: float) -> tuple[int, int]:
    """The axis's top value and tick step: about four round steps, 10 % headroom over the
    highest value drawn, and a labelled tick at the very top."""
    wanted = max(1.0, highest * 1.1)
    step = nice_ceiling(wanted / 4)
    return step * math.ceil(wanted / step), step


def _y_ticks(top_value: int, step: int) -> list[Tick]:
    return [
        Tick(position=_y(value, top_value), label=_short(value))
        for value in range(0, top_value + 1, step)
    ]


def _y(value: float, top_value: int) -> float:
    return round(TOP + PLOT_HEIGHT * (1 - value / top_value), 1)


def _short(value: int) -> str:
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if value >= size:
            scaled = value / size
            return (
                f"{scaled:.0f}{suffix}"
                if scaled >= 10
                else f"{scaled:.1f}".rstrip("0").rstrip(".") + suffix
            )
    return str(value)


def _x_ticks(days: list[date], slot: float, centred: bool) -> list[Tick]:
    every = max(1, math.ceil(len(days) / 6))
    offset = slot / 2 if centred else 0
    return [
        Tick(position=round(LEFT + index * slot + offset, 1), label=f"{day:%b} {day.day}")
        for index, day in enumerate(days)
        if index % every == 0
    ]


def cumulative_chart(summary: UsageSummary, *, today: date) -> CumulativeChart:
    days = summary.days
    cap = None if summary.overage_cap is None else summary.included_units + summary.overage_cap
    highest = max([summary.included_units, cap or 0, *(d.cumulative for d in days)])
    top_value, step = axis_top(highest)
    # One point per day boundary: day i's total sits at the end of day i.
    slot = PLOT_WIDTH / max(1, len(days))
    points = [(float(LEFT), _y(0, top_value))]
    for index, day in enumerate(days):
        if day.day > today:
            break
        points.append((round(LEFT + (index + 1) * slot, 1), _y(day.cumulative, top_value)))
    line = " ".join(f"{x},{y}" for x, y in points)
    baseline = _y(0, top_value)
    area = f"{line} {points[-1][0]},{baseline} {LEFT},{baseline}"
    today_x = None
    for index, day in enumerate(days):
        if day.day == today:
            today_x = round(LEFT + (index + 1) * slot, 1)
    first_day = days[0].day if days else today
    switches = [
        Marker(
            x=round(LEFT + (switch.at.date() - first_day).days * slot, 1),
            label=f"{switch.tier_name} from {switch.at:%b} {switch.at.day}",
        )
        for switch in summary.switches
    ]
    return CumulativeChart(
        y_ticks=_y_ticks(top_value, step),
        x_ticks=_x_ticks([d.day for d in days], slot, centred=False),
        line=line,
        area=area,
        quota=Guide(
            y=_y(summary.included_units, top_value),
            value=summary.included_units,
            label="Included",
        ),
        cap=None if cap is None else Guide(y=_y(cap, top_value), value=cap, label="Spend cap"),
        today_x=today_x,
        last_point=points[-1],
        switches=switches,
    )


@dataclass(frozen=True, slots=True)
class Layer:
    """One part of a stacked bar: its CSS class, its value and what it is called."""

    css: str
    label: str
    value: int
    y: float
    height: float


@dataclass(frozen=True, slots=True)
class StackedBar:
    x: float
    width: float
    start: datetime
    label: str
    layers: tuple[Layer, ...]

    @property
    def total(self) -> int:
        return sum(layer.value for layer in self.layers)


@dataclass(slots=True)
class SeriesChart(ChartFrame):
    bars: list[StackedBar] = field(default_factory=list)
    pace: Guide | None = None
    # The value at the top of the y axis.
    top_value: int = 1
    # The layers drawn, in stacking order (bottom first): (css class, label).
    legend: list[tuple[str, str]] = field(default_factory=list)


# Calls by outcome, bottom first: what was billed, then what was refused or failed.
OUTCOME_LAYERS: tuple[tuple[str, str, str], ...] = (
    ("requests", "bar-billed", "Billed calls"),
    ("refused_rate", "bar-refused-rate", "Refused: rate limit (429)"),
    ("refused_quota", "bar-refused-quota", "Refused: quota (429)"),
    ("refused_cap", "bar-refused-cap", "Refused: spend cap (429)"),
    ("errors", "bar-error", "Failed (not billed)"),
)
UNIT_LAYERS: tuple[tuple[str, str, str], ...] = (("units", "bar", "Billed units"),)


def bucket_label(moment: datetime, granularity: Granularity) -> str:
    """A bucket as the axis and the tables name it: "Nov 3", "Nov 3 14:00", "14:05"."""
    day = f"{moment:%b} {moment.day}"
    if granularity == "day":
        return day
    if granularity == "hour":
        return f"{day} {moment:%H}:00"
    return f"{moment:%H:%M}"


def units_chart(
    points: list[UsagePoint], granularity: Granularity, *, pace: float | None = None
) -> SeriesChart:
    """Billed units per bucket; ``pace``: the included units a bucket would spend at an even
    pace over the period, drawn as a guide (None: none)."""
    chart = _stacked_chart(points, granularity, UNIT_LAYERS, floor=pace or 0)
    if pace is not None:
        chart.pace = Guide(
            y=_y(pace, chart.top_value),
            # Whole units, but a small quota's pace (10 over 30 days) keeps a decimal.
            value=round(pace) if pace >= 10 else round(pace, 1),
            label="Even pace",
        )
    return chart


def outcomes_chart(points: list[UsagePoint], granularity: Granularity) -> SeriesChart:
    """Calls per bucket, stacked by outcome."""
    return _stacked_chart(points, granularity, OUTCOME_LAYERS)


def _stacked_chart(
    points: list[UsagePoint],
    granularity: Granularity,
    layers: tuple[tuple[str, str, str], ...],
    *,
    floor: float = 0,
) -> SeriesChart:
    totals = [sum(getattr(point, name) for name, _, _ in layers) for point in points]
    top_value, step = axis_top(max([1, floor, *totals]))
    slot = PLOT_WIDTH / max(1, len(points))
    # A gap between bars while they are wide enough to show one.
    width = round(max(0.5, slot * 0.72 if slot >= 3 else slot), 2)
    bars = []
    for index, point in enumerate(points):
        below = 0
        parts = []
        for name, css, label in layers:
            value = getattr(point, name)
            if value:
                top = _y(below + value, top_value)
                parts.append(
                    Layer(
                        css=css,
                        label=label,
                        value=value,
                        y=top,
                        height=round(_y(below, top_value) - top, 2),
                    )
                )
            below += value
        bars.append(
            StackedBar(
                x=round(LEFT + index * slot + (slot - width) / 2, 2),
                width=width,
                start=point.start,
                label=bucket_label(point.start, granularity),
                layers=tuple(parts),
            )
        )
    return SeriesChart(
        top_value=top_value,
        y_ticks=_y_ticks(top_value, step),
        x_ticks=_series_ticks(points, granularity, slot),
        bars=bars,
        legend=[(css, label) for _, css, label in layers],
    )


# Hours spanning more than this are labelled by day on the axis, at midnights.
HOURS_BY_DAY_PAST = 48


def _series_ticks(points: list[UsagePoint], granularity: Granularity, slot: float) -> list[Tick]:
    """At most six short labels, so they stay apart when a phone's stylesheet enlarges them:
    days as "Nov 3"; hours as "14:00", or at midnights as "Nov 3" past two days; minutes as
    "14:05"."""
    by_day = granularity == "hour" and len(points) > HOURS_BY_DAY_PAST
    if by_day:
        candidates = [(i, p) for i, p in enumerate(points) if p.start.hour == 0]
    else:
        candidates = list(enumerate(points))
    every = max(1, math.ceil(len(candidates) / 6))

    def label(moment: datetime) -> str:
        if granularity == "day" or by_day:
            return f"{moment:%b} {moment.day}"
        return f"{moment:%H:%M}"

    return [
        Tick(position=round(LEFT + index * slot + slot / 2, 1), label=label(point.start))
        for number, (index, point) in enumerate(candidates)
        if number % every == 0
    ]
