"""How far a consumer group is behind on a topic, measured from outside the group.

The workers report their own lag on `/metrics`, but a stopped worker reports nothing, and
that is when the lag matters. A web node asks the broker instead: for each partition, its
end offset minus the group's committed offset (the start of the partition when the group
never committed there). The probe never joins the group, so it moves no partitions.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)


class GroupLagProbe:
    """Measures `group`'s lag on `topic` with the chosen client library (`confluent` or
    `kafka-python`); `measure` answers None while it cannot be measured."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topic: str,
        client: str = "confluent",
        timeout: float = 5.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.topic = topic
        self.client = client
        self.timeout = timeout
        self._consumer: Any = None

    def measure(self) -> int | None:
        try:
            if self.client == "confluent":
                return self._measure_confluent()
            return self._measure_kafka_python()
        except Exception as exc:  # a broker away or a topic not there yet: unknown, not 0
            log.debug("consumer lag of %s not measurable: %s", self.group, exc)
            self.close()
            return None

    def _measure_confluent(self) -> int | None:
        from confluent_kafka import Consumer, TopicPartition

        if self._consumer is None:
            self._consumer = Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": self.group,
                    "enable.auto.commit": False,
                    "socket.timeout.ms": int(self.timeout * 1000),
                    "log_level": 3,
                }
            )
        consumer = self._consumer
        metadata = consumer.list_topics(self.topic, timeout=self.timeout).topics.get(self.topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return None
        partitions = [TopicPartition(self.topic, p) for p in sorted(metadata.partitions)]
        committed = consumer.committed(partitions, timeout=self.timeout)
        total = 0
        for partition in committed:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition.partition), timeout=self.timeout, cached=False
            )
            total += max(0, high - (partition.offset if partition.offset >= 0 else low))
        return total

    def _measure_kafka_python(self) -> int | None:
        from kafka import KafkaConsumer, TopicPartition

        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=self.group,
                enable_auto_commit=False,
                request_timeout_ms=int(self.timeout * 1000) + 1000,
            )
        consumer = self._consumer
        numbers = consumer.partitions_for_topic(self.topic)
        if not numbers:
            return None
        partitions = [TopicPartition(self.topic, p) for p in sorted(numbers)]
        ends = consumer.end_offsets(partitions)
        starts = consumer.beginning_offsets(partitions)
        total = 0
        for partition in partitions:
            offset = consumer.committed(partition)
            total += max(0, ends[partition] - (offset if offset is not None else starts[partition]))
        return total

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):  # closing what already failed
                consumer.close()
