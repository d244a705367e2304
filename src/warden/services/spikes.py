"""Spike detection for alerts: refusals in a recent window against a baseline rate.

Kept apart from services/alerts.py (which reads one per decision) because it is
the one piece with arithmetic worth testing alone: a flood of a million
refusals must cost the same memory as a quiet hour.
"""

from __future__ import annotations

from collections import deque


class SpikeDetector:
    """Refusals per `window_s` against the rate of the `baseline_s` before it.

    Counts live in one-second buckets with running sums (O(1) a refusal, at most
    window + baseline buckets), so a flood of a million refusals costs the same
    memory as a quiet hour. A spike is a window with at least `min_refusals`
    refusals and at least `factor` times what the baseline rate predicts (a new
    instance, with no baseline, spikes at `min_refusals`)."""

    def __init__(
        self, window_s: float, baseline_s: float, factor: float, min_refusals: int
    ) -> None:
        self.window_s = window_s
        self.baseline_s = baseline_s
        self.factor = factor
        self.min_refusals = min_refusals
        self.recent: deque[list[int]] = deque()  # [second, count] inside the window
        self.older: deque[list[int]] = deque()  # [second, count] in the baseline period
        self.recent_sum = 0
        self.older_sum = 0

    def record(self, now: float) -> tuple[int, float] | None:
        """Count one refusal at `now`; (count in window, expected) when it is a spike."""
        second = int(now)
        if self.recent and self.recent[-1][0] == second:
            self.recent[-1][1] += 1
        else:
            self.recent.append([second, 1])
        self.recent_sum += 1
        edge = now - self.window_s
        while self.recent and self.recent[0][0] <= edge:
            bucket = self.recent.popleft()
            self.recent_sum -= bucket[1]
            self.older.append(bucket)
            self.older_sum += bucket[1]
        horizon = edge - self.baseline_s
        while self.older and self.older[0][0] < horizon:
            self.older_sum -= self.older.popleft()[1]
        expected = self.older_sum * self.window_s / self.baseline_s
        if self.recent_sum >= self.min_refusals and self.recent_sum >= self.factor * expected:
            return self.recent_sum, expected
        return None
