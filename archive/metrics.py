"""Prometheus metrics of the archive, in the registry of the process that owns it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ArchiveMetrics:
    """What `/metrics` says of the archive: disk used, rows, backlog and failures."""

    def __init__(self, registry: CollectorRegistry, role: str) -> None:
        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, ["role"], registry=registry).labels(role)

        def counter(name: str, text: str) -> Counter:
            return Counter(name, text, ["role"], registry=registry).labels(role)

        self.disk_bytes = gauge("socialpulse_archive_disk_bytes", "Bytes the archive uses on disk")
        self.disk_bytes.set(float("nan"))  # unknown until measured
        self.posts = gauge("socialpulse_archive_posts", "Posts in the archive")
        self.posts.set(float("nan"))
        self.dead_letters = gauge("socialpulse_archive_dead_letters", "Dead letters in the archive")
        self.dead_letters.set(float("nan"))
        self.buffered = gauge(
            "socialpulse_archive_buffered", "Posts and dead letters waiting to be archived"
        )
        self.up = gauge(
            "socialpulse_archive_up", "1 while the archive database accepts reads and writes"
        )
        self.written = counter(
            "socialpulse_archive_written", "Posts and dead letters written (redeliveries too)"
        )
        self.write_failures = counter(
            "socialpulse_archive_write_failures", "Archive transactions that failed (retried)"
        )
        self.pruned = counter(
            "socialpulse_archive_pruned", "Posts and dead letters deleted by retention"
        )
