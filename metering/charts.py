"""The usage page's charts, laid out on the server as inline SVG (no script, no CDN).

This module only computes geometry from a ``UsageSummary``; the templates draw it. Two charts:

- cumulative units over the period against the included-quota line (and the spend cap, if
  any): where the line crosses the quota is where overage starts;
- units per day as bars, against the even daily pace of the included quota.
"""

import math
from dataclasses import dataclass, field
from datetime import date

from metering.selectors import UsageSummary

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
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    units: int


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


@dataclass(slots=True)
class DailyChart(ChartFrame):
    bars: list[Bar] = field(default_factory=list)
    pace: Guide | None = None


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
    )


def daily_chart(summary: UsageSummary) -> DailyChart:
    days = summary.days
    pace = summary.included_units / max(1, len(days))
    top_value, step = axis_top(max([pace, *(d.units for d in days)]))
    slot = PLOT_WIDTH / max(1, len(days))
    width = round(max(1.0, slot * 0.72), 1)
    bars = []
    for index, day in enumerate(days):
        y = _y(day.units, top_value)
        bars.append(
            Bar(
                x=round(LEFT + index * slot + (slot - width) / 2, 1),
                y=y,
                width=width,
                height=round(TOP + PLOT_HEIGHT - y, 1),
                day=day.day,
                units=day.units,
            )
        )
    return DailyChart(
        y_ticks=_y_ticks(top_value, step),
        x_ticks=_x_ticks([d.day for d in days], slot, centred=True),
        bars=bars,
        # Whole units a day, but a small quota's pace (10 over 30 days) keeps a decimal.
        pace=Guide(
            y=_y(pace, top_value),
            value=round(pace) if pace >= 10 else round(pace, 1),
            label="Even pace",
        ),
    )
