"""Prometheus metrics, one registry per app (never the process-global one).

Several apps in one process (tests, several workers' apps) must not collide,
so each `Metrics` owns its `CollectorRegistry`; `/metrics` renders it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from warden.domain.verdict import Verdict


class Metrics:
    """The media gate's counters, latency histogram and queue depth."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "warden_decisions",
            "Media gate decisions by result and first reason code.",
            ["decision", "reason"],
            registry=self.registry,
        )
        self.scan_seconds = Histogram(
            "warden_scan_seconds",
            "Time from receiving media to having a decision, in seconds.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "warden_scan_queue_depth",
            "Scans waiting for a model call.",
            registry=self.registry,
        )
        self.remote_blocked = Counter(
            "warden_remote_fetches_blocked",
            "Remote media fetches the pict-rs proxy refused (federated.remote_media = block).",
            registry=self.registry,
        )
        self.evidence_errors = Counter(
            "warden_evidence_errors",
            "Evidence items that could not be written.",
            registry=self.registry,
        )

    def observe(self, verdict: Verdict, seconds: float) -> None:
        reason = verdict.reasons[0].code if verdict.reasons else "none"
        self.decisions.labels(decision=verdict.decision.value, reason=reason).inc()
        self.scan_seconds.observe(seconds)

    def set_depth(self, depth: int) -> None:
        self.queue_depth.set(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)
