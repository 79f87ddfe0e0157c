"""Sending posts to Kafka from the synthetic generator or a file, paced like the original."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from streaming.kafka_io import make_producer
from streaming.sources import PacedSource


@dataclass
class ProduceSummary:
    sent: int
    seconds: float
    failed: int = 0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def encode_raw(value: Any) -> bytes | None:
    """A raw post as message bytes; text that is not a post is sent as is (it will be
    dead-lettered by the workers, which is what replaying a messy file should show)."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def produce(source: PacedSource, bootstrap: str, topic: str, progress=None) -> ProduceSummary:
    """Send everything `source` gives, keyed by author, at the source's pace."""
    producer = make_producer(bootstrap, "socialpulse-producer", linger_ms=20)
    started = time.perf_counter()
    sent = 0
    failures: list[Exception] = []
    try:
        while True:
            batch = source.read_batch(1000, 0.1)
            if not batch and source.exhausted:
                break
            for record in batch:
                value = record.value
                author = value.get("author") if isinstance(value, dict) else None
                future = producer.send(
                    topic, value=encode_raw(value), key=str(author).encode() if author else None
                )
                future.add_errback(failures.append)
            sent += len(batch)
            if progress is not None and batch:
                progress.update(len(batch))
        producer.flush()
    finally:
        producer.close(timeout=30)
    return ProduceSummary(sent - len(failures), time.perf_counter() - started, len(failures))
