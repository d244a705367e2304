"""`warden eval`: measure the operating point on an admin's own pictures.

An admin points it at a folder of their own images (ordinary uploads, or a
labelled set) and learns what the scanner would do with them: how many it
would refuse and for which labels, and for each label how the refusal rate
moves with its threshold, so `policy.labels` can be set from data rather than
guessed. The rates come from each file's first-view best score per label, so
they are what the thresholds alone would refuse: the second look then softens
some of them (a lone reject to review, a lone review no second view supports
to accept, recorded as `label_cleared`), which the refusal count includes.

Expectations come from `--expect` (every file), a CSV of `path,expect` rows
(`--labels`), or sub-folders named `accept`, `review` or `reject`; files
expected to be accepted give false-refusal rates, the others detection rates.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from warden.errors import LabelsFileError
from warden.jobs.scan import Outcome
from warden.media.pipeline import Scanner

EXPECTATIONS = ("accept", "review", "reject")
#: Thresholds of the table and the plot (model scores under 0.2 are not reported).
THRESHOLDS = tuple(round(0.2 + 0.05 * i, 2) for i in range(16))


#: The reason the second look records when it accepts a lone review (domain/policy.py).
CLEARED = "label_cleared"


@dataclass(frozen=True)
class Record:
    """One file's outcome and what was expected of it (None: nothing said)."""

    path: Path
    expected: str | None
    decision: str
    reasons: tuple[str, ...]
    labels: Mapping[str, float]
    label_reasons: tuple[tuple[str, str, float], ...]  # (code, label, score)

    @property
    def refused(self) -> bool:
        return self.decision in ("review", "reject")

    @property
    def ordinary(self) -> bool:
        """Expected to pass: its refusals are false refusals."""
        return self.expected == "accept"


def read_labels(path: Path, root: Path) -> dict[Path, str]:
    """`path,expect` rows (a header row is allowed); paths relative to `root`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsFileError(f"{path}: cannot be read ({exc})") from exc
    out: dict[Path, str] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or row[0].startswith("#"):
            continue
        if len(row) < 2:
            raise LabelsFileError(f"{path}:{number}: expected 'path,expect', got {row!r}")
        name, expect = row[0].strip(), row[1].strip().lower()
        if number == 1 and expect in ("expect", "expected", "decision"):
            continue  # a header
        if expect not in EXPECTATIONS:
            raise LabelsFileError(
                f"{path}:{number}: expect must be accept, review or reject, not {row[1]!r}"
            )
        out[(root / name).resolve()] = expect
    return out


def expectation(
    path: Path, root: Path, expect: str | None, labels: Mapping[Path, str]
) -> str | None:
    """What a file is expected to get: --labels, then its sub-folder's name, then --expect."""
    found = labels.get(path.resolve())
    if found is not None:
        return found
    try:
        first = path.resolve().relative_to(root.resolve()).parts[0]
    except (ValueError, IndexError):
        first = ""
    if first in EXPECTATIONS and path.parent != root:
        return first
    return expect


def to_record(outcome: Outcome, expected: str | None) -> Record:
    verdict = outcome.verdict
    if verdict is None:
        return Record(outcome.path, expected, "error", ("unreadable",), {}, ())
    label_reasons = tuple(
        (r.code, str(r.detail["label"]), float(r.detail.get("score", 0.0)))
        for r in verdict.reasons
        if "label" in r.detail
    )
    return Record(
        outcome.path,
        expected,
        verdict.decision.value,
        tuple(verdict.codes),
        dict(verdict.labels),
        label_reasons,
    )


def evaluate(
    scanner: Scanner,
    files: Iterable[Path],
    root: Path,
    *,
    expect: str | None,
    labels: Mapping[Path, str],
    workers: int,
) -> Iterator[Record]:
    """Scan the files (streaming, as `warden scan` does) and yield one record each."""
    from warden.jobs.scan import scan_paths

    for outcome in scan_paths(scanner, files, workers):
        yield to_record(outcome, expectation(outcome.path, root, expect, labels))


def rate(records: Sequence[Record], label: str, threshold: float) -> float:
    """Share of the records whose `label` scored at or above `threshold`."""
    if not records:
        return 0.0
    return sum(r.labels.get(label, 0.0) >= threshold for r in records) / len(records)


def threshold_table(
    records: Sequence[Record], labels: Sequence[str]
) -> dict[str, dict[str, list[float]]]:
    """{group: {label: [rate at each of THRESHOLDS]}}; groups: ordinary, to_refuse."""
    groups = {
        "ordinary": [r for r in records if r.ordinary],
        "to_refuse": [r for r in records if r.expected in ("review", "reject")],
    }
    return {
        group: {label: [rate(members, label, t) for t in THRESHOLDS] for label in labels}
        for group, members in groups.items()
        if members
    }


def interesting_labels(records: Sequence[Record], configured: Iterable[str]) -> list[str]:
    """Labels with a rule, and any other label some file scored at least 0.25 on."""
    seen = {k for r in records for k, v in r.labels.items() if v >= 0.25}
    return sorted(set(configured) | seen)


# -- the plot: SVG by hand, PNG with Pillow (matplotlib is not a dependency) ------

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")
_W, _H, _M = 720, 420, 60


def _points(rates: Sequence[float]) -> list[tuple[float, float]]:
    lo, hi = THRESHOLDS[0], THRESHOLDS[-1]
    return [
        (_M + (t - lo) / (hi - lo) * (_W - 2 * _M), _H - _M - r * (_H - 2 * _M))
        for t, r in zip(THRESHOLDS, rates, strict=True)
    ]


def _series(
    table: Mapping[str, Mapping[str, list[float]]],
) -> list[tuple[str, str, bool, list[float]]]:
    """(legend, colour, dashed, rates) per line: one colour per label."""
    labels = sorted({label for rows in table.values() for label in rows})
    lines = []
    for i, label in enumerate(labels):
        colour = _COLOURS[i % len(_COLOURS)]
        for group, rows in table.items():
            if label in rows and any(rows[label]):
                dashed = group == "to_refuse"
                legend = f"{label} ({'detected' if dashed else 'false refusals'})"
                lines.append((legend, colour, dashed, rows[label]))
    return lines


def plot_svg(table: Mapping[str, Mapping[str, list[float]]], title: str) -> str:
    """Rates against thresholds, one line per label and group, as an SVG document."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{_W}" height="{_H}" fill="white"/>',
        f'<text x="{_W / 2}" y="24" text-anchor="middle" font-size="15">{_escape(title)}</text>',
        f'<line x1="{_M}" y1="{_H - _M}" x2="{_W - _M}" y2="{_H - _M}" stroke="black"/>',
        f'<line x1="{_M}" y1="{_M}" x2="{_M}" y2="{_H - _M}" stroke="black"/>',
        f'<text x="{_W / 2}" y="{_H - 20}" text-anchor="middle">threshold</text>',
        f'<text x="16" y="{_H / 2}" transform="rotate(-90 16 {_H / 2})" '
        'text-anchor="middle">share of files at or above</text>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _H - _M - tick * (_H - 2 * _M)
        parts.append(f'<text x="{_M - 8}" y="{y + 4}" text-anchor="end">{tick:.0%}</text>')
    for t in THRESHOLDS[::2]:
        x = _points([0.0] * len(THRESHOLDS))[THRESHOLDS.index(t)][0]
        parts.append(f'<text x="{x}" y="{_H - _M + 16}" text-anchor="middle">{t:.1f}</text>')
    for i, (legend, colour, dashed, rates) in enumerate(_series(table)):
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in _points(rates))
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        parts.append(
            f'<text x="{_W - _M - 4}" y="{_M + 14 * i}" text-anchor="end" '
            f'fill="{colour}">{_escape(legend)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def plot_png(table: Mapping[str, Mapping[str, list[float]]], title: str) -> Image.Image:
    """The same plot drawn with Pillow."""
    image = Image.new("RGB", (_W, _H), "white")
    draw = ImageDraw.Draw(image)
    draw.text((_W / 2, 16), title, fill="black", anchor="mt")
    draw.line([(_M, _H - _M), (_W - _M, _H - _M)], fill="black")
    draw.line([(_M, _M), (_M, _H - _M)], fill="black")
    draw.text((_W / 2, _H - 20), "threshold", fill="black", anchor="mm")
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        draw.text(
            (_M - 8, _H - _M - tick * (_H - 2 * _M)), f"{tick:.0%}", fill="black", anchor="rm"
        )
    for t, (x, _) in zip(THRESHOLDS, _points([0.0] * len(THRESHOLDS)), strict=True):
        if THRESHOLDS.index(t) % 2 == 0:
            draw.text((x, _H - _M + 10), f"{t:.1f}", fill="black", anchor="mt")
    for i, (legend, colour, dashed, rates) in enumerate(_series(table)):
        points = _points(rates)
        for k, (a, b) in enumerate(itertools.pairwise(points)):
            if not dashed or k % 2 == 0:
                draw.line([a, b], fill=colour, width=2)
        draw.text((_W - _M - 4, _M + 14 * i), legend, fill=colour, anchor="rm")
    return image


def save_plot(table: Mapping[str, Mapping[str, list[float]]], out: Path, title: str) -> None:
    """Write the plot as SVG or PNG, by the file's extension."""
    if out.suffix.lower() == ".svg":
        out.write_text(plot_svg(table, title), encoding="utf-8")
    else:
        plot_png(table, title).save(out, "PNG")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
