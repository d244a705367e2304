"""Media policy: turn classifier scores into a decision.

Pure functions over plain values, so the thresholds an admin sets can be tested
with score fixtures alone (no model, no images).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from warden.domain.verdict import Decision, Reason, worst


class FailMode(StrEnum):
    """What to answer when no decision can be reached (model down, timeout, ...)."""

    CLOSED = "closed"
    OPEN = "open"


@dataclass(frozen=True)
class LabelRule:
    """Thresholds for one label: score >= reject refuses, >= review queues."""

    label: str
    reject: float | None = None
    review: float | None = None

    def judge(self, score: float) -> Reason | None:
        if self.reject is not None and score >= self.reject:
            return Reason(
                "label_reject",
                f"{self.label} scored {score:.2f} (refused at {self.reject:.2f})",
                {"label": self.label, "score": round(score, 4), "threshold": self.reject},
            )
        if self.review is not None and score >= self.review:
            return Reason(
                "label_review",
                f"{self.label} scored {score:.2f} (review at {self.review:.2f})",
                {"label": self.label, "score": round(score, 4), "threshold": self.review},
            )
        return None


@dataclass(frozen=True)
class LabelPolicy:
    """All label rules in force; labels without a rule never decide anything."""

    rules: tuple[LabelRule, ...]

    @classmethod
    def from_thresholds(
        cls, thresholds: Mapping[str, tuple[float | None, float | None]]
    ) -> LabelPolicy:
        """Build from `{label: (reject, review)}`."""
        return cls(tuple(LabelRule(k, rj, rv) for k, (rj, rv) in sorted(thresholds.items())))

    def judge(self, labels: Mapping[str, float]) -> tuple[Decision, tuple[Reason, ...]]:
        """The decision for these scores and every rule that fired (worst first)."""
        reasons: list[Reason] = []
        for rule in self.rules:
            score = labels.get(rule.label)
            if score is None:
                continue
            reason = rule.judge(float(score))
            if reason is not None:
                reasons.append(reason)
        reasons.sort(key=lambda r: (r.code != "label_reject", -float(r.detail["score"])))
        return decision_for(reasons), tuple(reasons)


_CODE_DECISION = {"label_reject": Decision.REJECT, "label_review": Decision.REVIEW}


def decision_for(reasons: Iterable[Reason]) -> Decision:
    """The decision that a set of label reasons implies."""
    return worst([_CODE_DECISION.get(r.code, Decision.REJECT) for r in reasons])
