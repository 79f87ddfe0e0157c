"""The Kafka archive consumer: `posts.scored` and `posts.dlq` into the archive.

It reads both topics in its own consumer group and commits offsets only after the database
transaction that stored them committed. A crash before the commit makes Kafka deliver the
batch again, and the archive's upserts by id store it once: a SIGKILL, a broker restart or
a database restart loses nothing and duplicates nothing. While the database is away the
consumer stops reading (Kafka holds the backlog), retries with backoff, and reports itself
degraded.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass

import orjson

from archive.metrics import ArchiveMetrics
from archive.sink import ArchiveKeeper, short_error
from archive.store import ArchiveStore, redact
from streaming.kafka_clients import DEFAULT_KAFKA_CLIENT, kafka_client
from streaming.kafka_common import dead_letter_from
from streaming.metrics import StreamMetrics
from streaming.records import InvalidPost, ScoredPost
from streaming.sinks import DeadLetter
from streaming.sources import SourceRecord
from streaming.topics import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchiveConsumerSettings:
    """Where the archive consumer reads, and how. Durations are in seconds.

    Attributes:
        bootstrap: Kafka brokers.
        topics: the scored and dead-letter topics are read.
        group: the archive's own consumer group (never the workers').
        consumer_id: name in logs and the Kafka client id (default: host-pid).
        batch_max_posts: most messages in one transaction.
        batch_max_wait: how long a batch may wait to fill.
        retention_days: prune what was archived longer ago (0: keep everything).
        max_backoff: longest wait between retries while the database is away.
        metrics_port: serve Prometheus metrics on this port (0: off).
        metrics_host: address the metrics server listens on.
        client: the Kafka client library, `confluent` or `kafka-python`.
    """

    bootstrap: str
    topics: Topics
    group: str
    consumer_id: str = ""
    batch_max_posts: int = 2000
    batch_max_wait: float = 0.5
    retention_days: float = 0.0
    max_backoff: float = 30.0
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    client: str = DEFAULT_KAFKA_CLIENT


def decode(
    records: list[SourceRecord], dlq_topic: str
) -> tuple[list[ScoredPost], list[DeadLetter]]:
    """Scored posts and dead letters of a batch. A scored message that cannot be read is
    archived as a dead letter (with the reason), never dropped."""
    scored: list[ScoredPost] = []
    letters: list[DeadLetter] = []
    for record in records:
        position = record.position
        if position.get("topic") == dlq_topic:
            value = record.value if isinstance(record.value, bytes | None) else None
            letter = dead_letter_from(
                value, record.key, record.headers, int(record.received_at * 1000)
            )
            if not letter.position:  # not written by a worker: keep where it was read
                letter = DeadLetter(
                    letter.value,
                    letter.reason,
                    letter.source,
                    dict(position),
                    letter.received_at,
                    letter.key,
                )
            letters.append(letter)
            continue
        try:
            if not isinstance(record.value, bytes | str):
                raise InvalidPost("no value")
            scored.append(ScoredPost.from_dict(orjson.loads(record.value)))
        except (InvalidPost, ValueError, TypeError) as exc:
            letters.append(
                DeadLetter(
                    record.value,
                    f"unreadable scored post: {exc}"[:500],
                    "kafka",
                    dict(position),
                    record.received_at,
                    record.key,
                )
            )
    return scored, letters


class ArchiveConsumer:
    """One member of the archive's consumer group.

    Args:
        settings: where to read, and how.
        store: the archive to write.
    """

    def __init__(self, settings: ArchiveConsumerSettings, store: ArchiveStore) -> None:
        if not settings.bootstrap:
            raise ValueError(
                "the archive consumer needs Kafka brokers (SOCIALPULSE_KAFKA_BOOTSTRAP)"
            )
        self.settings = settings
        self.store = store
        self.consumer_id = settings.consumer_id or f"{socket.gethostname()}-{os.getpid()}"
        self.metrics = StreamMetrics("archive")
        self.keeper = ArchiveKeeper(
            store,
            settings.retention_days,
            prune=True,
            metrics=ArchiveMetrics(self.metrics.registry, "archive"),
        )
        self.stop_event = threading.Event()
        self.archived = 0
        self.dead_letters = 0

    def request_stop(self, *_args) -> None:
        log.info("stop requested: finishing the current batch")
        self.stop_event.set()

    def _backoff(self, failures: int) -> None:
        self.stop_event.wait(min(self.settings.max_backoff, 0.5 * 2 ** min(failures - 1, 10)))

    def run(self) -> None:
        settings = self.settings
        topics = settings.topics
        client = kafka_client(settings.client)
        client.ensure_topics(settings.bootstrap, topics)
        if settings.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(
                settings.metrics_port, addr=settings.metrics_host, registry=self.metrics.registry
            )
        failures = 0
        while not self.keeper.ensure_ready():  # no reading before the database takes writes
            failures += 1
            if self.stop_event.is_set():
                return
            self._backoff(failures)
        source = client.source(
            settings.bootstrap,
            [topics.scored, topics.dlq],
            settings.group,
            client_id=f"socialpulse-archive-{self.consumer_id}",
            batch_max_posts=settings.batch_max_posts,
            metrics=self.metrics,
            headers=True,
        )
        log.info(
            "archive consumer %s reading %s and %s in group %s into %s",
            self.consumer_id,
            topics.scored,
            topics.dlq,
            settings.group,
            redact(self.store.url),
        )
        failures = 0
        try:
            while not self.stop_event.is_set():
                self.keeper.maintain(recover=failures == 0)
                try:
                    records = source.read_batch(settings.batch_max_posts, settings.batch_max_wait)
                except client.error as exc:
                    log.warning("reading failed (%s); reading again from the last commit", exc)
                    source.rewind()
                    self.stop_event.wait(1.0)
                    continue
                if not records:
                    continue
                scored, letters = decode(records, topics.dlq)
                try:
                    self.store.write(scored, letters)
                except Exception as exc:
                    # Not committed: read the batch again once the database is back.
                    failures += 1
                    if self.keeper.metrics is not None:
                        self.keeper.metrics.write_failures.inc()
                    self.keeper.fail(f"cannot write to the archive (retrying): {short_error(exc)}")
                    source.rewind()
                    self._backoff(failures)
                    continue
                if failures:
                    failures = 0
                    self.keeper.ok()
                # Only now: the transaction committed. A failed commit rewinds, and the
                # redelivered batch is stored again as the same rows.
                source.commit(source.checkpoint())
                self.archived += len(scored)
                self.dead_letters += len(letters)
                self.metrics.consumed.inc(len(records))
                if self.keeper.metrics is not None:
                    self.keeper.metrics.written.inc(len(records))
        finally:
            source.close()
            self.store.close()
            log.info(
                "archive consumer %s stopped after %d posts and %d dead letters",
                self.consumer_id,
                self.archived,
                self.dead_letters,
            )


def install_signal_handlers(consumer: ArchiveConsumer) -> None:
    signal.signal(signal.SIGTERM, consumer.request_stop)
    signal.signal(signal.SIGINT, consumer.request_stop)
