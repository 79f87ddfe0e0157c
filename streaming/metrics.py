"""Prometheus metrics of a worker or web node, and the percentile every latency figure uses."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class StreamMetrics:
    """Counters of one process, in their own registry (no global state between instances)."""

    def __init__(self, role: str) -> None:
        self.registry = CollectorRegistry()
        self.consumed = Counter(
            "socialpulse_consumed",
            "Raw records read from the source",
            ["role"],
            registry=self.registry,
        ).labels(role)
        self.scored = Counter(
            "socialpulse_scored", "Posts scored", ["role"], registry=self.registry
        ).labels(role)
        self.dead_lettered = Counter(
            "socialpulse_dead_lettered",
            "Records rejected to the dead-letter topic",
            ["role"],
            registry=self.registry,
        ).labels(role)
        self.lag = Gauge(
            "socialpulse_consumer_lag",
            "Messages behind the end of the topic",
            ["role"],
            registry=self.registry,
        ).labels(role)
        self.lag.set(float("nan"))  # unknown until measured; never a reassuring 0
        self.broker_up = Gauge(
            "socialpulse_broker_reachable",
            "1 while a Kafka broker accepts connections, 0 while none does",
            ["role"],
            registry=self.registry,
        ).labels(role)
        self.batch_latency = Histogram(
            "socialpulse_batch_latency_seconds",
            "Time to score and write one micro-batch",
            ["role"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        ).labels(role)
        self.commit_failures = Counter(
            "socialpulse_commit_failures",
            "Offset commits that failed (posts redelivered)",
            ["role"],
            registry=self.registry,
        ).labels(role)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def percentile(values: Sequence[float], q: float, digits: int = 1) -> float | None:
    """The `q` quantile (0 to 1) of `values` by nearest rank, rounded; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return round(float(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]), digits)
