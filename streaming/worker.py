"""The Kafka scoring worker: consume `posts`, score, produce `posts.scored`, then commit.

Workers in one consumer group share the partitions. Every worker scores with the same model
version from the shared artifact folder, so cluster ids mean the same everywhere; at most
one worker (`learn=True`) updates the clusterer online and publishes new versions, which
the others pick up within `model_check_interval` seconds. The worker knows models only
through the `ScorerStore` protocol (`models.store.ModelStore` implements it).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from streaming.kafka_clients import DEFAULT_KAFKA_CLIENT, kafka_client
from streaming.kafka_common import KafkaDeadLetterSink, KafkaScoredSink, broker_unreachable
from streaming.metrics import StreamMetrics
from streaming.records import DEFAULT_MAX_TEXT_LENGTH
from streaming.runner import Scorer, StreamRunner
from streaming.topics import Topics

log = logging.getLogger(__name__)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, carrying the worker id, for log pipelines."""

    def __init__(self, worker_id: str) -> None:
        super().__init__()
        self.worker_id = worker_id

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "worker": self.worker_id,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class ScorerStore(Protocol):
    """Where the worker gets its scorer, a newer one, and publishes what it learned."""

    def load(self) -> Scorer:
        """The scorer to start with."""
        ...

    def newer(self, current_version: str) -> Scorer | None:
        """A scorer of a version published after `current_version`, if any."""
        ...

    def publish(self, scorer: Scorer) -> Scorer:
        """Save the scorer's models as a new version; the scorer under that version."""
        ...


@dataclass(frozen=True)
class WorkerSettings:
    """Everything one scoring worker needs to know. All durations are in seconds.

    Attributes:
        bootstrap: Kafka brokers.
        topics: names of the raw, scored and dead-letter topics.
        group: consumer group the workers share.
        worker_id: name in logs, metrics and the Kafka client id (default: host-pid).
        batch_max_posts: most posts in one micro-batch.
        batch_max_wait: how long a micro-batch may wait to fill.
        max_text_length: longest text accepted.
        max_clock_skew: seconds a post's time may be ahead of the clock (later: dead letter).
        learn: update the clusterer online and publish new versions every `publish_every`.
        publish_every: between published versions, with `learn`.
        model_check_interval: between checks for a newer version, without `learn`.
        metrics_port: serve Prometheus metrics on this port (0: off).
        metrics_host: address the metrics server listens on.
        client: the Kafka client library, `confluent` or `kafka-python`.
    """

    bootstrap: str
    topics: Topics
    group: str
    worker_id: str = ""
    batch_max_posts: int = 500
    batch_max_wait: float = 0.1
    max_text_length: int = DEFAULT_MAX_TEXT_LENGTH
    max_clock_skew: float | None = 300.0
    learn: bool = False
    publish_every: float = 300.0
    model_check_interval: float = 30.0
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    client: str = DEFAULT_KAFKA_CLIENT


class ScoringWorker:
    """One member of the scoring consumer group.

    Args:
        settings: where to read and write, and how.
        store: the model versions to score with (and to publish to, with `learn`).
    """

    def __init__(self, settings: WorkerSettings, store: ScorerStore) -> None:
        if not settings.bootstrap:
            raise ValueError("the worker needs Kafka brokers (SOCIALPULSE_KAFKA_BOOTSTRAP)")
        self.settings = settings
        self.store = store
        self.worker_id = settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.metrics = StreamMetrics("worker")
        self.stop_event = threading.Event()

    def request_stop(self, *_args) -> None:
        log.info("stop requested: finishing the current batch")
        self.stop_event.set()

    def run(self) -> None:
        settings = self.settings
        topics = settings.topics
        client = kafka_client(settings.client)
        client.ensure_topics(settings.bootstrap, topics)
        scorer = self.store.load()
        if settings.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(
                settings.metrics_port, addr=settings.metrics_host, registry=self.metrics.registry
            )
        client_id = f"socialpulse-{self.worker_id}"
        source = client.source(
            settings.bootstrap,
            topics.posts,
            settings.group,
            client_id=client_id,
            batch_max_posts=settings.batch_max_posts,
            metrics=self.metrics,
        )
        producer = client.producer(settings.bootstrap, client_id)
        runner = StreamRunner(
            source,
            scorer,
            [KafkaScoredSink(producer, topics.scored), KafkaDeadLetterSink(producer, topics.dlq)],
            batch_max_posts=settings.batch_max_posts,
            batch_max_wait=settings.batch_max_wait,
            max_text_length=settings.max_text_length,
            max_clock_skew=settings.max_clock_skew,
            learn=settings.learn,
            metrics=self.metrics,
        )
        log.info(
            "worker %s consuming %s in group %s with model %s (client %s)",
            self.worker_id,
            topics.posts,
            settings.group,
            scorer.model_version,
            client.name,
        )
        next_check = time.monotonic() + settings.model_check_interval
        next_publish = time.monotonic() + settings.publish_every
        next_lag = 0.0
        failures = 0
        try:
            while not self.stop_event.is_set():
                if time.monotonic() >= next_lag:  # also while batches fail
                    down = broker_unreachable(settings.bootstrap)
                    self.metrics.broker_up.set(0 if down else 1)
                    lag = None if down else source.lag()
                    self.metrics.lag.set(float("nan") if lag is None else lag)
                    next_lag = time.monotonic() + 5.0
                try:
                    runner.run_once()
                    failures = 0
                except Exception as exc:  # stay up: the batch was rewound and will be retried
                    failures += 1
                    if isinstance(exc, client.error):
                        log.warning("batch not delivered (%s); retrying from the last commit", exc)
                    else:
                        log.exception("batch failed; retrying from the last commit")
                    self.stop_event.wait(min(5.0, 0.5 * failures))
                    continue
                now = time.monotonic()
                if settings.learn and now >= next_publish:
                    runner.use_scorer(self.store.publish(runner.scorer))
                    next_publish = now + settings.publish_every
                elif not settings.learn and now >= next_check:
                    newer = self.store.newer(runner.scorer.model_version)
                    if newer is not None:
                        runner.use_scorer(newer)
                    next_check = now + settings.model_check_interval
        finally:
            try:
                runner.settle()  # commit the batch written last, so a restart does not redo it
            except Exception as exc:
                log.error(
                    "could not commit on shutdown (%s); the last batch will be redelivered", exc
                )
            for sink in runner.sinks:
                try:
                    sink.close()
                except client.error as exc:
                    log.error(
                        "could not flush on shutdown (%s); uncommitted posts will be redelivered",
                        exc,
                    )
            source.close()  # leaves the group, so partitions move at once
            producer.close(timeout=10)
            log.info(
                "worker %s stopped after %d posts (%d dead letters)",
                self.worker_id,
                runner.stats.scored,
                runner.stats.dead_lettered,
            )


def install_signal_handlers(worker: ScoringWorker) -> None:
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
