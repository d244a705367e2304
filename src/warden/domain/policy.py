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

    def second_look(self, score: float, again: float) -> Reason | None:
        """A review when a second view does not support a reject (None: it does)."""
        if self.reject is None or again >= self.reject:
            return None
        return Reason(
            "label_review",
            f"{self.label} scored {score:.2f} (refused at {self.reject:.2f}), but only "
            f"{again:.2f} on a second look: sent to review",
            {
                "label": self.label,
                "score": round(score, 4),
                "threshold": self.reject,
                "second_look": round(again, 4),
            },
        )

    def clears(self, score: float, again: float) -> Reason | None:
        """The record of a review no second view supports (None: one does, it stands).

        Only for a first-view review: a first-view reject never gets here.
        """
        if self.review is None or again >= self.review:
            return None
        return Reason(
            "label_cleared",
            f"{self.label} scored {score:.2f} (review at {self.review:.2f}), but only "
            f"{again:.2f} on a second look: accepted",
            {
                "label": self.label,
                "score": round(score, 4),
                "threshold": self.review,
                "second_look": round(again, 4),
            },
        )


@dataclass(frozen=True)
class LabelPolicy:
    """All label rules in force; labels without a rule never decide anything.

    With `second_look` on, a reject that rests on one label alone is confirmed
    by other views of the same picture (a tighter crop around the box, a second
    scale) before it stands: a hit no second view supports at the reject
    threshold becomes a review. Real detections are stable across views;
    chance patterns (a colour wheel read as buttocks) often are not. Two or
    more labels at their reject thresholds corroborate each other and reject
    at once.

    With `second_look_reviews` on as well, a review that rests on one label
    alone (nothing rejects, no other label fires) is looked at again the same
    way, and is accepted when no second view shows anything the policy acts
    on (which views count: `media/second_look.review_again`):
    the weak chance hits of ordinary pictures (a dandelion's seeds on an
    orange blur at 0.31-0.44) score 0 in both other views, while weak real
    detections keep their score there (bench/false_refusals.py measures
    both). A first-view reject is never accepted, and the acceptance is
    recorded (`label_cleared`), never silent.
    """

    rules: tuple[LabelRule, ...]
    second_look: bool = True
    second_look_reviews: bool = True

    @classmethod
    def from_thresholds(
        cls,
        thresholds: Mapping[str, tuple[float | None, float | None]],
        *,
        second_look: bool = True,
        second_look_reviews: bool = True,
    ) -> LabelPolicy:
        """Build from `{label: (reject, review)}`."""
        rules = tuple(LabelRule(k, rj, rv) for k, (rj, rv) in sorted(thresholds.items()))
        return cls(rules, second_look, second_look_reviews)

    def needs_second_look(self, labels: Mapping[str, float]) -> tuple[str, ...]:
        """The label whose reject would stand alone (empty: none, or corroborated)."""
        if not self.second_look:
            return ()
        rejecting = tuple(
            rule.label
            for rule in self.rules
            if rule.reject is not None and float(labels.get(rule.label, 0.0)) >= rule.reject
        )
        return rejecting if len(rejecting) == 1 else ()

    def acts_on(self, labels: Mapping[str, float]) -> bool:
        """Whether any rule would review or refuse these scores."""
        return any(rule.judge(float(labels.get(rule.label, 0.0))) for rule in self.rules)

    def needs_review_look(self, labels: Mapping[str, float]) -> tuple[str, ...]:
        """The label whose review would stand alone: no label rejects and no other
        label reaches its review threshold (empty: none, or corroborated)."""
        if not (self.second_look and self.second_look_reviews):
            return ()
        firing = [
            (rule.label, reason.code)
            for rule in self.rules
            if (reason := rule.judge(float(labels.get(rule.label, 0.0)))) is not None
        ]
        if len(firing) == 1 and firing[0][1] == "label_review":
            return (firing[0][0],)
        return ()

    def judge(
        self, labels: Mapping[str, float], second_look: Mapping[str, float] | None = None
    ) -> tuple[Decision, tuple[Reason, ...]]:
        """The decision for these scores and every rule that fired (worst first).

        `second_look` maps a label to its best score in the second views; a
        label it names whose second score is under the reject threshold is
        sent to review instead of refused, and a lone review
        (`needs_review_look`) under the review threshold is cleared.
        """
        lone = self.needs_review_look(labels)
        reasons: list[Reason] = []
        for rule in self.rules:
            score = labels.get(rule.label)
            if score is None:
                continue
            reason = rule.judge(float(score))
            if reason is None:
                continue
            again = (second_look or {}).get(rule.label)
            if reason.code == "label_reject" and again is not None:
                reason = rule.second_look(float(score), float(again)) or reason
            elif rule.label in lone and again is not None:
                reason = rule.clears(float(score), float(again)) or reason
            reasons.append(reason)
        reasons.sort(key=lambda r: (r.code != "label_reject", -float(r.detail["score"])))
        return decision_for(reasons), tuple(reasons)


_CODE_DECISION = {
    "label_reject": Decision.REJECT,
    "label_review": Decision.REVIEW,
    "label_cleared": Decision.ACCEPT,
}


def decision_for(reasons: Iterable[Reason]) -> Decision:
    """The decision that a set of label reasons implies."""
    return worst([_CODE_DECISION.get(r.code, Decision.REJECT) for r in reasons])
