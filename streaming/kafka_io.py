"""Kafka through kafka-python behind the source and sink interfaces.

Delivery is at-least-once: a worker commits offsets only after its sinks flushed, and on any
failure it rewinds to the last commit, so a crash or a broker restart loses nothing and
redelivered posts keep their id (the producer's, or topic-partition-offset).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.partitioner.default import DefaultPartitioner, murmur2
from kafka.structs import OffsetAndMetadata, TopicPartition

from streaming.kafka_common import KafkaSourceBase, dead_letter_from, read_scored
from streaming.metrics import StreamMetrics
from streaming.records import ScoredPost
from streaming.sinks import DeadLetter
from streaming.sources import SourceRecord
from streaming.topics import Topics

log = logging.getLogger(__name__)

# Reconnect quickly after a broker restart (the client's default backs off up to 30 s).
CLIENT_SETTINGS: dict[str, Any] = {
    "reconnect_backoff_ms": 100,
    "reconnect_backoff_max_ms": 2000,
    "request_timeout_ms": 30000,
}


def ensure_topics(bootstrap: str, topics: Topics, timeout: float = 60.0) -> None:
    """Create the three topics when missing (raw and scored with `partitions` partitions).

    Waits up to `timeout` seconds for the broker to answer.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap, client_id="socialpulse-admin", **CLIENT_SETTINGS
            )
            break
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("waiting for Kafka at %s: %s", bootstrap, exc)
            time.sleep(1.0)
    try:
        existing = set(admin.list_topics())
        wanted = {
            topics.posts: topics.partitions,
            topics.scored: topics.partitions,
            topics.dlq: max(1, topics.partitions // 2),
            topics.socketio: 1,
        }
        missing = {
            name: {"num_partitions": n, "replication_factor": 1}
            for name, n in wanted.items()
            if name not in existing
        }
        if missing:
            try:
                admin.create_topics(missing, wait_for_metadata=True)
                log.info("created topics %s", ", ".join(sorted(missing)))
            except TopicAlreadyExistsError:
                pass  # another process created them first
    finally:
        admin.close()


class _RevokedPartitionsListener(ConsumerRebalanceListener):
    """On a rebalance, the source forgets uncommitted offsets of partitions it lost."""

    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    def on_partitions_revoked(self, revoked):
        self.source.forget((tp.topic, tp.partition) for tp in revoked)
        if revoked:
            log.info("partitions revoked: %s", sorted(f"{t.topic}-{t.partition}" for t in revoked))

    def on_partitions_assigned(self, assigned):
        if assigned:
            log.info(
                "partitions assigned: %s", sorted(f"{t.topic}-{t.partition}" for t in assigned)
            )


def _rejoin_if_rebalance_lost(consumer: KafkaConsumer) -> None:
    """Work around a kafka-python 3.0.12 bug that strands a consumer outside its group.

    When a poll times out while the group leader is mid-rebalance, the client keeps the
    join attempt running. If the attempt finishes before the next poll and nothing else
    asked for a rejoin (the rebalance came from the leader's own metadata check, e.g. after
    partitions were added), no poll ever completes it: heartbeats stay off, no partitions
    are assigned, and the broker drops the member. Asking for a rejoin makes the next poll
    join afresh. A no-op when the client's internals differ from that version's.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    attempt = getattr(coordinator, "_join_task", None)
    if attempt is not None and getattr(attempt, "is_done", False) and not coordinator.need_rejoin():
        log.warning("the Kafka client lost a finished rebalance; rejoining the group")
        coordinator.request_rejoin()


class KafkaSource(KafkaSourceBase):
    """Raw posts from a topic, in a consumer group, with manual commits (kafka-python)."""

    commit_errors = (KafkaError,)

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
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=batch_max_posts,
            max_poll_interval_ms=300_000,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            metadata_max_age_ms=15_000,
            **CLIENT_SETTINGS,
        )
        self.consumer.subscribe(self.topics, listener=_RevokedPartitionsListener(self))
        # Fetch metadata after subscribing and before the first poll joins the group, so the
        # group leader assigns from the topic's real partitions. Otherwise the leader
        # rebalances the whole group again as soon as metadata arrives, and that kind of
        # rebalance is the one kafka-python can lose (see _rejoin_if_rebalance_lost).
        deadline = time.monotonic() + 60.0
        for name in self.topics:
            while name not in self.consumer.topics() or not self.consumer.partitions_for_topic(
                name
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"topic {name} has no partitions: is it created?")
                time.sleep(0.2)

    def read_batch(self, batch_max_posts: int, batch_max_wait: float) -> list[SourceRecord]:
        polled = self.consumer.poll(
            timeout_ms=int(batch_max_wait * 1000), max_records=batch_max_posts
        )
        _rejoin_if_rebalance_lost(self.consumer)
        now = time.time()
        record = self._record
        batch = []
        for (topic, partition), messages in polled.items():
            if not messages:
                continue
            # A partition's messages come in offset order.
            self._track((topic, partition), messages[0].offset, messages[-1].offset)
            if self.with_headers:
                batch += [
                    record(topic, partition, m.offset, m.value, m.key, m.timestamp, now, m.headers)
                    for m in messages
                ]
            else:
                batch += [
                    record(topic, partition, m.offset, m.value, m.key, m.timestamp, now)
                    for m in messages
                ]
        return batch

    def _commit_offsets(self, offsets: dict[tuple[str, int], int]) -> None:
        self.consumer.commit(
            {TopicPartition(*tp): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
        )

    def _seek(self, partition: tuple[str, int], offset: int) -> None:
        self.consumer.seek(TopicPartition(*partition), offset)

    def assignment(self) -> list[tuple[str, int]]:
        return [(tp.topic, tp.partition) for tp in self.consumer.assignment()]

    def lag(self) -> int | None:
        """Messages behind the end of the assigned partitions (None when unknown)."""
        assigned = list(self.consumer.assignment())
        if not assigned:
            return None
        try:
            ends = self.consumer.end_offsets(assigned)
            return sum(max(0, ends[tp] - self.consumer.position(tp)) for tp in assigned)
        except KafkaError:
            return None

    def close(self) -> None:
        self.consumer.close(autocommit=False)


class KeyHashPartitioner(DefaultPartitioner):
    """The client's default partitioner (murmur2 of the key, as the Java client), with each
    key's hash remembered: authors repeat, and murmur2 in pure Python costs ~2 µs a post."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._hashes: dict[bytes, int] = {}

    def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
        if serialized_key is None:
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        hashed = self._hashes.get(serialized_key)
        if hashed is None:
            if len(self._hashes) >= self.max_keys:
                self._hashes.clear()
            hashed = self._hashes[serialized_key] = murmur2(serialized_key) & 0x7FFFFFFF
        partitions = sorted(cluster.partitions_for_topic(topic))
        return partitions[hashed % len(partitions)]


def make_producer(bootstrap: str, client_id: str, linger_ms: int = 5) -> KafkaProducer:
    """An idempotent producer that waits for all in-sync replicas."""
    settings = {
        "bootstrap_servers": bootstrap,
        "client_id": client_id,
        "partitioner": KeyHashPartitioner(),
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": linger_ms,
        "batch_size": 256 * 1024,
        "max_block_ms": 30_000,
        "delivery_timeout_ms": 60_000,
        **CLIENT_SETTINGS,
    }
    return KafkaProducer(**settings)


class ScoredTopicReader:
    """Every scored post and dead letter, from all partitions, from `since` (epoch seconds;
    None: the newest onwards), for web nodes. `earlier` counts the messages before that
    start, per topic, so totals agree between nodes that started at different times."""

    def __init__(
        self, bootstrap: str, scored_topic: str, dlq_topic: str, since: float | None = None
    ) -> None:
        self.scored_topic = scored_topic
        self.dlq_topic = dlq_topic
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id="socialpulse-web",
            **CLIENT_SETTINGS,
        )
        partitions = [
            TopicPartition(topic, p)
            for topic in (scored_topic, dlq_topic)
            for p in sorted(self.consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            raise RuntimeError(f"topics {scored_topic} and {dlq_topic} do not exist yet")
        self.consumer.assign(partitions)
        lows = self.consumer.beginning_offsets(partitions)
        highs = self.consumer.end_offsets(partitions)
        found = (
            self.consumer.offsets_for_times({tp: int(since * 1000) for tp in partitions})
            if since is not None
            else {}
        )
        self.earlier = {scored_topic: 0, dlq_topic: 0}
        for tp in partitions:
            at = found.get(tp)
            start = highs[tp] if at is None else at.offset  # the end if nothing is that new
            self.consumer.seek(tp, start)
            self.earlier[tp.topic] += max(0, start - lows[tp])

    def poll(self, timeout: float) -> tuple[list[ScoredPost], list[DeadLetter]]:
        """Scored posts and dead letters that arrived, waiting up to `timeout` seconds."""
        polled = self.consumer.poll(timeout_ms=int(timeout * 1000), max_records=2000)
        scored: list[ScoredPost] = []
        letters: list[DeadLetter] = []
        for tp, messages in polled.items():
            for m in messages:
                if tp.topic == self.dlq_topic:
                    letters.append(dead_letter_from(m.value, m.key, m.headers, m.timestamp))
                else:
                    read_scored(m.value, (tp.topic, tp.partition, m.offset), scored)
        return scored, letters

    def close(self) -> None:
        self.consumer.close(autocommit=False)
