"""Raw posts of a Kafka topic between two times, found with `offsets_for_times`, as
replay items (confluent-kafka)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import datetime

import orjson
from confluent_kafka import Consumer, TopicPartition

from streaming.confluent_io import CLIENT_SETTINGS
from streaming.replay import ReplayItem

log = logging.getLogger(__name__)


def event_time_of(value: bytes | None) -> float | None:
    """A raw post's `created_at` in seconds, or None when it has none that can be read (the
    post then goes to the dead letters, or gets the time it is scored)."""
    try:
        created = orjson.loads(value or b"").get("created_at")
        parsed = datetime.fromisoformat(created)
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None
    return parsed.timestamp() if parsed.tzinfo else None


class KafkaRangeReader:
    """Every message of `topic` whose timestamp is in [start, end), from all partitions.

    The partitions' first offsets at or after `start` and `end` are looked up once with
    `offsets_for_times`; reading stops when every partition reached its end offset, so
    what arrives later is not part of the replay. `total` is known before reading.
    """

    def __init__(
        self, bootstrap: str, topic: str, start: float, end: float, timeout: float = 30.0
    ) -> None:
        if not end > start:
            raise ValueError("the time range must end after it starts")
        self.topic = topic
        self.timeout = timeout
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"socialpulse-replay-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "client.id": "socialpulse-replay",
                **CLIENT_SETTINGS,
            }
        )
        try:
            metadata = self.consumer.list_topics(topic, timeout=timeout).topics
            if topic not in metadata or metadata[topic].error is not None:
                raise ValueError(f"topic {topic!r} does not exist")
            numbers = sorted(metadata[topic].partitions)
            starts = self._offsets(numbers, start)
            ends = self._offsets(numbers, end)
        except Exception:
            self.consumer.close()
            raise
        self.ranges = {
            p: (starts[p], ends[p]) for p in numbers if ends[p] > starts[p]
        }  # partition → [first, end)
        self.total = sum(e - s for s, e in self.ranges.values())

    def _offsets(self, numbers: list[int], at: float) -> dict[int, int]:
        """Per partition: the first offset at or after `at`; the end when there is none."""
        wanted = [TopicPartition(self.topic, p, int(at * 1000)) for p in numbers]
        found = self.consumer.offsets_for_times(wanted, timeout=self.timeout)
        offsets = {}
        for tp in found:
            if tp.offset < 0:
                _, high = self.consumer.get_watermark_offsets(tp, timeout=self.timeout)
                offsets[tp.partition] = high
            else:
                offsets[tp.partition] = tp.offset
        return offsets

    def items(self) -> Iterator[ReplayItem]:
        """The messages as replay items, partition by partition interleaved as they come."""
        try:
            if not self.ranges:
                return
            self.consumer.assign(
                [TopicPartition(self.topic, p, s) for p, (s, _) in self.ranges.items()]
            )
            remaining = dict(self.ranges)
            idle = 0
            while remaining:
                messages = self.consumer.consume(num_messages=1000, timeout=1.0)
                if not messages:
                    idle += 1
                    if idle * 1.0 >= self.timeout:
                        log.warning(
                            "replay from %s: no messages for %.0f s; stopping",
                            self.topic,
                            self.timeout,
                        )
                        return
                    continue
                idle = 0
                for message in messages:
                    if message.error() is not None:
                        log.warning("replay from %s: %s", self.topic, message.error())
                        continue
                    partition, offset = message.partition(), message.offset()
                    if partition not in remaining or offset >= remaining[partition][1]:
                        continue
                    value = message.value()
                    yield ReplayItem(
                        event_time_of(value),
                        value,
                        {"topic": self.topic, "partition": partition, "offset": offset},
                        f"{self.topic}-{partition}-{offset}",
                    )
                    if offset + 1 >= remaining[partition][1]:
                        del remaining[partition]
        finally:
            self.consumer.close()
