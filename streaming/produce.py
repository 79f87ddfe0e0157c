"""Sending posts to Kafka from the synthetic generator or a file, paced like the original."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from streaming.kafka_common import encode_value
from streaming.sources import PacedSource


@dataclass
class ProduceSummary:
    sent: int
    seconds: float
    failed: int = 0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def produce(source: PacedSource, producer: Any, topic: str, progress=None) -> ProduceSummary:
    """Send everything `source` gives, keyed by author, at the source's pace, then close
    `producer` (either client's, see `streaming.kafka_clients`)."""
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
                    topic, value=encode_value(value), key=str(author).encode() if author else None
                )
                future.add_errback(failures.append)
            source.commit()  # handed to the producer; a failed send is counted below
            sent += len(batch)
            if progress is not None and batch:
                progress.update(len(batch))
        producer.flush()
    finally:
        producer.close(timeout=30)
    return ProduceSummary(sent - len(failures), time.perf_counter() - started, len(failures))
