"""Kafka through confluent-kafka (librdkafka) behind the same source and sink contracts.

The same delivery rules as `streaming.kafka_io` (kafka-python): offsets are committed only
after the sinks flushed, any failure rewinds to the last commit, values stay bytes until the
runner decodes them, and keys go to the partition the Java client and kafka-python choose
(murmur2), so both clients place an author's posts alike.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from confluent_kafka import (
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from streaming.kafka_common import KafkaSourceBase, dead_letter_from, read_scored
from streaming.metrics import StreamMetrics
from streaming.records import ScoredPost
from streaming.sinks import DeadLetter
from streaming.sources import SourceRecord
from streaming.topics import Topics

log = logging.getLogger(__name__)

# Reconnect quickly after a broker restart; the defaults back off for up to 10 s.
CLIENT_SETTINGS: dict[str, Any] = {
    "reconnect.backoff.ms": 100,
    "reconnect.backoff.max.ms": 2000,
    "socket.timeout.ms": 30000,
}


# librdkafka reports its group state this often; a group down for longer than the stall
# limit (well past a session timeout and a broker restart) gets a fresh consumer.
STATS_INTERVAL_MS = 5_000
GROUP_STALL_SECONDS = 60.0


def ensure_topics(bootstrap: str, topics: Topics, timeout: float = 60.0) -> None:
    """Create the three topics when missing; waits up to `timeout` seconds for the broker."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **CLIENT_SETTINGS})
    deadline = time.monotonic() + timeout
    while True:
        try:
            existing = set(admin.list_topics(timeout=5).topics)
            break
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("waiting for Kafka at %s: %s", bootstrap, exc)
            time.sleep(1.0)
    wanted = {
        topics.posts: topics.partitions,
        topics.scored: topics.partitions,
        topics.dlq: max(1, topics.partitions // 2),
        topics.socketio: 1,
    }
    missing = [NewTopic(n, num_partitions=p) for n, p in wanted.items() if n not in existing]
    if not missing:
        return
    for name, future in admin.create_topics(missing, operation_timeout=30).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise  # another process creating it first is fine; nothing else is
        else:
            log.info("created topic %s", name)
    # Wait until the new topics have leaders, as kafka-python's wait_for_metadata does.
    while time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=5).topics
        if all(t.topic in metadata and metadata[t.topic].partitions for t in missing):
            return
        time.sleep(0.1)


class ConfluentKafkaSource(KafkaSourceBase):
    """Raw posts from a topic, in a consumer group, with manual commits (librdkafka)."""

    commit_errors = (KafkaException,)

    def __init__(
        self,
        bootstrap: str,
        topic: str | Sequence[str],
        group: str,
        client_id: str = "socialpulse",
        batch_max_posts: int = 500,
        metrics: StreamMetrics | None = None,
        headers: bool = False,
    ) -> None:
        super().__init__(metrics)
        self.topics = [topic] if isinstance(topic, str) else list(topic)
        self.topic = self.topics[0]
        self.with_headers = headers
        self.settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": client_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "max.poll.interval.ms": 300_000,
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            "topic.metadata.refresh.interval.ms": 15_000,
            # Group state every few seconds, for the stall watchdog below.
            "statistics.interval.ms": STATS_INTERVAL_MS,
            "stats_cb": self._on_stats,
            **CLIENT_SETTINGS,
        }
        self._group_seen_up = time.monotonic()
        self.consumer = self._subscribe()

    def _subscribe(self) -> Consumer:
        consumer = Consumer(self.settings)
        consumer.subscribe(self.topics, on_revoke=self._on_revoke, on_assign=self._on_assign)
        return consumer

    def _on_stats(self, stats_json: str) -> None:
        group = json.loads(stats_json).get("cgrp") or {}
        # A member with no partitions is still "steady"; only a group left or never
        # rejoined counts as down.
        if group.get("state") == "up" and group.get("join_state") == "steady":
            self._group_seen_up = time.monotonic()

    def _rejoin_when_stalled(self) -> None:
        """Replace a consumer whose group membership has been down for too long.

        After its session times out across a broker restart, librdkafka can keep timing out
        its coordinator requests without ever joining again, so the partitions stay unread
        while the process looks healthy. A fresh consumer finds the coordinator and rejoins;
        it starts from the committed offsets, so nothing is lost (what was read but not
        committed is read again)."""
        if time.monotonic() - self._group_seen_up < GROUP_STALL_SECONDS:
            return
        log.warning(
            "not in consumer group %s for %.0f s; rejoining with a new consumer",
            self.settings["group.id"],
            time.monotonic() - self._group_seen_up,
        )
        stale, self.consumer = self.consumer, self._subscribe()
        self._uncommitted.clear()
        self._batch_start.clear()
        self._group_seen_up = time.monotonic()
        # Closing leaves the group through the wedged coordinator and can block.
        threading.Thread(target=stale.close, name="kafka-stale-close", daemon=True).start()

    def _on_assign(self, consumer, partitions) -> None:
        if partitions:
            log.info("partitions assigned: %s", _names(partitions))

    def _on_revoke(self, consumer, partitions) -> None:
        if consumer is not self.consumer:
            return  # a replaced consumer closing: what it held is read again anyway
        self.forget((p.topic, p.partition) for p in partitions)
        if partitions:
            log.info("partitions revoked: %s", _names(partitions))

    def read_batch(self, batch_max_posts: int, batch_max_wait: float) -> list[SourceRecord]:
        if batch_max_posts <= 0:
            return []
        self._rejoin_when_stalled()
        # Wait up to `batch_max_wait` for the first message only, then take what is already
        # fetched: as kafka-python's poll does, so a quiet stream is not held back to fill
        # a batch (`consume` alone would wait for a full batch or the whole wait).
        first = self.consumer.poll(batch_max_wait)
        if first is None:
            return []
        messages = [first]
        if batch_max_posts > 1:
            messages += self.consumer.consume(num_messages=batch_max_posts - 1, timeout=0)
        now = time.time()
        batch = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                log.warning("consumer error: %s", error)
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            self._track((topic, partition), offset, offset)
            stamp = message.timestamp()[1]
            headers = message.headers() if self.with_headers else None
            batch.append(
                self._record(
                    topic, partition, offset, message.value(), message.key(), stamp, now, headers
                )
            )
        return batch

    def _commit_offsets(self, offsets: dict[tuple[str, int], int]) -> None:
        partitions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        self.consumer.commit(offsets=partitions, asynchronous=False)

    def _seek(self, partition: tuple[str, int], offset: int) -> None:
        self.consumer.seek(TopicPartition(*partition, offset))

    def assignment(self) -> list[tuple[str, int]]:
        return [(p.topic, p.partition) for p in self.consumer.assignment()]

    def lag(self) -> int | None:
        """Messages behind the end of the assigned partitions (None when unknown)."""
        assigned = self.consumer.assignment()
        if not assigned:
            return None
        try:
            positions = self.consumer.position(assigned)
            total = 0
            for tp in positions:
                _, high = self.consumer.get_watermark_offsets(tp, timeout=5, cached=False)
                total += max(0, high - tp.offset) if tp.offset >= 0 else 0
            return total
        except KafkaException:
            return None

    def close(self) -> None:
        self.consumer.close()  # leaves the group, so partitions move at once


def _names(partitions) -> list[str]:
    return sorted(f"{p.topic}-{p.partition}" for p in partitions)


class _DeliveryFuture:
    """The outcome of one produced message, shaped like kafka-python's future."""

    __slots__ = ("_callbacks", "error", "is_done")

    def __init__(self) -> None:
        self.is_done = False
        self.error: KafkaError | None = None
        self._callbacks: list = []

    def add_errback(self, callback) -> None:
        self._callbacks.append(callback)
        if self.is_done and self.error is not None:
            callback(KafkaException(self.error))

    def __call__(self, error, message) -> None:  # librdkafka's delivery report
        self.is_done = True
        self.error = error
        if error is not None:
            for callback in self._callbacks:
                callback(KafkaException(error))

    def get(self, timeout: float = 0) -> None:
        """Raise the send's error, or that it is still undelivered."""
        if not self.is_done:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "message not delivered"))
        if self.error is not None:
            raise KafkaException(self.error)


class ConfluentProducer:
    """librdkafka's producer behind the small interface the Kafka sinks use:
    `send` (returns a future), `flush` and `close`, as kafka-python's producer has them."""

    def __init__(self, bootstrap: str, client_id: str, linger_ms: int = 5) -> None:
        settings = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "batch.size": 256 * 1024,
            "delivery.timeout.ms": 60_000,
            "queue.buffering.max.messages": 1_000_000,
            "partitioner": "murmur2_random",  # the Java client's and kafka-python's placement
            **CLIENT_SETTINGS,
        }
        self.producer = Producer(settings)

    def send(self, topic: str, value=None, key=None, headers=None) -> _DeliveryFuture:
        future = _DeliveryFuture()
        while True:
            try:
                self.producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=future
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self.producer.poll(0.05)
        self.producer.poll(0)  # serve delivery reports that are ready
        return future

    def flush(self, timeout: float = 60.0) -> None:
        remaining = self.producer.flush(timeout)
        if remaining:
            raise KafkaException(
                KafkaError(KafkaError._TIMED_OUT, f"{remaining} messages not delivered")
            )

    def close(self, timeout: float = 30.0) -> None:
        self.producer.flush(timeout)


class ConfluentScoredTopicReader:
    """Every scored post and dead letter, from all partitions, from `since` (epoch seconds;
    None: the newest onwards), for web nodes. `earlier` counts the messages before that
    start, per topic, so totals agree between nodes that started at different times."""

    def __init__(
        self, bootstrap: str, scored_topic: str, dlq_topic: str, since: float | None = None
    ) -> None:
        self.scored_topic = scored_topic
        self.dlq_topic = dlq_topic
        # librdkafka needs a group id even when partitions are assigned by hand; nothing is
        # ever committed under it.
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"socialpulse-web-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "client.id": "socialpulse-web",
                **CLIENT_SETTINGS,
            }
        )
        metadata = self.consumer.list_topics(timeout=30).topics
        partitions = [
            TopicPartition(topic, p, OFFSET_END if since is None else int(since * 1000))
            for topic in (scored_topic, dlq_topic)
            if topic in metadata
            for p in sorted(metadata[topic].partitions)
        ]
        if not partitions:
            raise RuntimeError(f"topics {scored_topic} and {dlq_topic} do not exist yet")
        if since is not None:  # the first offset at or after `since`; the end if none
            partitions = self.consumer.offsets_for_times(partitions, timeout=30)
        self.earlier = {scored_topic: 0, dlq_topic: 0}
        for tp in partitions:
            low, high = self.consumer.get_watermark_offsets(tp, timeout=30)
            start = high if tp.offset < 0 else tp.offset
            tp.offset = start
            self.earlier[tp.topic] += max(0, start - low)
        self.consumer.assign(partitions)

    def poll(self, timeout: float) -> tuple[list[ScoredPost], list[DeadLetter]]:
        """Scored posts and dead letters that arrived, waiting up to `timeout` seconds."""
        scored: list[ScoredPost] = []
        letters: list[DeadLetter] = []
        # Wait for the first message only, then take what else is there: `consume` alone
        # would hold what arrived until `timeout` ran out or 2,000 messages came.
        messages = self.consumer.consume(num_messages=1, timeout=timeout)
        if messages:
            messages += self.consumer.consume(num_messages=1999, timeout=0)
        for message in messages:
            if message.error() is not None:
                log.warning("reading scored posts: %s", message.error())
                continue
            if message.topic() == self.dlq_topic:
                letters.append(
                    dead_letter_from(
                        message.value(), message.key(), message.headers(), message.timestamp()[1]
                    )
                )
            else:
                where = (message.topic(), message.partition(), message.offset())
                read_scored(message.value(), where, scored)
        return scored, letters

    def close(self) -> None:
        self.consumer.close()
