"""The numbers behind the probability bar chart, formatted once in Python for the template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

BAR_PITCH = 22  # SVG units from one bar's top to the next
BAR_LENGTH = 220  # SVG width of a bar at probability 1


@dataclass(frozen=True, slots=True)
class Bar:
    """One class's bar: its digit, CSS classes, vertical offset, fill width and percentage."""

    digit: int
    css_class: str
    y: int
    width: str
    percent: str


@dataclass(frozen=True, slots=True)
class BarChart:
    bars: tuple[Bar, ...]
    title: str  # every class and percentage, for screen readers


def bar_chart(probabilities: Sequence[float], predicted: int, label: int | None = None) -> BarChart:
    """Format the ten class probabilities as bars, marking the predicted class and the true label.

    `label` is None for a user's own digit, which has no true label.
    """
    bars = []
    for digit, probability in enumerate(probabilities):
        css_class = "bar"
        if digit == predicted:
            css_class += " predicted"
        if digit == label:
            css_class += " label"
        bars.append(
            Bar(
                digit=digit,
                css_class=css_class,
                y=BAR_PITCH * digit,
                width=f"{BAR_LENGTH * probability:.1f}",
                percent=f"{100 * probability:.1f}",
            )
        )
    title = "Class probabilities: " + ", ".join(f"{bar.digit} {bar.percent}%" for bar in bars)
    return BarChart(bars=tuple(bars), title=title)
