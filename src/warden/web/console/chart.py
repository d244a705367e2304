"""Inline SVG charts drawn on the server: admins look rather than read.

No script and no inline `style` (the console's CSP allows neither): colours
are SVG presentation attributes. One chart stacks decisions per minute by
outcome (accept green, review amber, reject red); the other draws one line per
source. Each bar and line has a `<title>` with its numbers for screen readers
and hover.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

from jinja2 import Environment
from markupsafe import Markup

WIDTH, HEIGHT, LEFT, BOTTOM = 760, 180, 36, 22
COLOURS = {"accept": "#3a9d5d", "review": "#d9a400", "reject": "#d53a3a"}
LINE_COLOURS = ("#3a7bd5", "#8e44ad", "#16a085", "#c0392b", "#7f8c8d", "#d35400")


def _axis(since: datetime, minutes: int, top: int) -> list[str]:
    out = [
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - BOTTOM}" stroke="#999"/>',
        f'<text x="2" y="12" font-size="11" fill="#555">{top}/min</text>',
    ]
    step = 30 if minutes > 120 else 10
    plot = WIDTH - LEFT
    for m in range(0, minutes + 1, step):
        x = LEFT + plot * m / minutes
        label = f"{since + timedelta(minutes=m):%H:%M}"
        anchor = "end" if m == minutes else "middle"
        out.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 6}" font-size="10" fill="#555" '
            f'text-anchor="{anchor}">{label}</text>'
        )
    return out


def stacked(series: dict[str, list[int]], since: datetime, minutes: int) -> Markup:
    """Decisions per minute, stacked by outcome."""
    top = max([sum(v[i] for v in series.values()) for i in range(minutes)] + [1])
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM - 16
    bar = plot_w / minutes
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" id="chart-outcomes" aria-label="decisions per minute by outcome">'
    ]
    parts += _axis(since, minutes, top)
    for i in range(minutes):
        y: float = HEIGHT - BOTTOM
        for outcome in ("accept", "review", "reject"):
            count = series.get(outcome, [0] * minutes)[i]
            if not count:
                continue
            h = plot_h * count / top
            y -= h
            when = f"{since + timedelta(minutes=i):%H:%M}"
            parts.append(
                f'<rect class="bar-{outcome}" x="{LEFT + i * bar:.1f}" y="{y:.1f}" '
                f'width="{max(bar - 0.5, 0.5):.1f}" height="{h:.1f}" fill="{COLOURS[outcome]}">'
                f"<title>{when} {outcome}: {count}</title></rect>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (numbers and escaped names only)


def lines(series: dict[str, list[int]], since: datetime, minutes: int) -> Markup:
    """Decisions per minute, one line per source."""
    top = max([max(v) for v in series.values() if v] + [1])
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM - 16
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" id="chart-sources" aria-label="decisions per minute by source">'
    ]
    parts += _axis(since, minutes, top)
    for n, (source, values) in enumerate(series.items()):
        colour = LINE_COLOURS[n % len(LINE_COLOURS)]
        points = " ".join(
            f"{LEFT + plot_w * i / max(minutes - 1, 1):.1f},{HEIGHT - BOTTOM - plot_h * v / top:.1f}"
            for i, v in enumerate(values)
        )
        name = escape(source)
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5">'
            f"<title>{name}: {sum(values)} decisions</title></polyline>"
            f'<text x="{WIDTH - 4}" y="{14 + 12 * n}" font-size="11" fill="{colour}" '
            f'text-anchor="end">{name}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (numbers and escaped names only)


def register(env: Environment) -> None:
    env.globals["stacked_chart"] = stacked
    env.globals["lines_chart"] = lines
