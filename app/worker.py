"""The Kafka scoring worker: consume `posts`, score, produce `posts.scored`, then commit.

Workers in one consumer group share the partitions. Every worker scores with the same model
version from the shared artifact folder, so cluster ids mean the same everywhere; at most
one worker (`learn=True`) updates the clusterer online and publishes new versions, which
the others pick up within `model_check_interval` seconds.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

from kafka.errors import KafkaError

from app.config import Config
from models.pipeline import ScoringPipeline
from models.registry import ModelBundle, list_versions, load_bundle, save_bundle
from models.training import ensure_bundle
from streaming.kafka_io import (
    KafkaDeadLetterSink,
    KafkaScoredSink,
    KafkaSource,
    Topics,
    ensure_topics,
    make_producer,
)
from streaming.metrics import StreamMetrics
from streaming.runner import StreamRunner

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


class ScoringWorker:
    """One member of the scoring consumer group.

    Args:
        config: settings (`kafka_bootstrap`, topics, group, model folder, batch caps).
        worker_id: name in logs, metrics and the Kafka client id.
        learn: update the clusterer online and publish new versions every `publish_every` s.
        metrics_port: serve Prometheus metrics on this port (0: off).
        metrics_host: address the metrics server listens on.
    """

    def __init__(
        self,
        config: Config,
        worker_id: str | None = None,
        learn: bool = False,
        publish_every: float = 300.0,
        model_check_interval: float = 30.0,
        metrics_port: int = 0,
        metrics_host: str = "127.0.0.1",
    ) -> None:
        if not config.kafka_bootstrap:
            raise ValueError("the worker needs SOCIALPULSE_KAFKA_BOOTSTRAP (or --kafka)")
        self.config = config
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.learn = learn
        self.publish_every = publish_every
        self.model_check_interval = model_check_interval
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.metrics = StreamMetrics("worker")
        self.stop_event = threading.Event()

    def request_stop(self, *_args) -> None:
        log.info("stop requested: finishing the current batch")
        self.stop_event.set()

    def run(self) -> None:
        config = self.config
        topics = Topics.from_config(config)
        ensure_topics(config.kafka_bootstrap, topics)
        model_dir = Path(config.model_dir)
        bundle = ensure_bundle(model_dir, config.model_version, seed=config.seed)
        if self.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(
                self.metrics_port, addr=self.metrics_host, registry=self.metrics.registry
            )
        source = KafkaSource(
            config.kafka_bootstrap,
            topics.posts,
            config.consumer_group,
            client_id=f"socialpulse-{self.worker_id}",
            max_poll_records=config.batch_max_posts,
            metrics=self.metrics,
        )
        producer = make_producer(config.kafka_bootstrap, f"socialpulse-{self.worker_id}")
        runner = StreamRunner(
            source,
            bundle.pipeline(),
            [KafkaScoredSink(producer, topics.scored), KafkaDeadLetterSink(producer, topics.dlq)],
            max_batch=config.batch_max_posts,
            max_wait=config.batch_max_wait_ms / 1000.0,
            max_text_length=config.max_text_length,
            learn=self.learn,
            metrics=self.metrics,
        )
        log.info(
            "worker %s consuming %s in group %s with model %s",
            self.worker_id,
            topics.posts,
            config.consumer_group,
            bundle.version,
        )
        next_check = time.monotonic() + self.model_check_interval
        next_publish = time.monotonic() + self.publish_every
        next_lag = 0.0
        failures = 0
        try:
            while not self.stop_event.is_set():
                try:
                    runner.run_once()
                    failures = 0
                except Exception as exc:  # stay up: the batch was rewound and will be retried
                    failures += 1
                    if isinstance(exc, KafkaError):
                        log.warning("batch not delivered (%s); retrying from the last commit", exc)
                    else:
                        log.exception("batch failed; retrying from the last commit")
                    self.stop_event.wait(min(5.0, 0.5 * failures))
                    continue
                now = time.monotonic()
                if now >= next_lag:
                    lag = source.lag()
                    if lag is not None:
                        self.metrics.lag.set(lag)
                    next_lag = now + 5.0
                if self.learn and now >= next_publish:
                    runner.pipeline.model_version = self._publish(runner.pipeline, model_dir)
                    next_publish = now + self.publish_every
                elif not self.learn and now >= next_check:
                    runner.pipeline = self._newer_pipeline(runner.pipeline, model_dir)
                    next_check = now + self.model_check_interval
        finally:
            for sink in runner.sinks:
                try:
                    sink.close()
                except KafkaError as exc:
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

    def _publish(self, pipeline: ScoringPipeline, model_dir: Path) -> str:
        """Save the online-updated models as a new version for the other workers."""
        bundle = ModelBundle(pipeline.clusterer, pipeline.engagement)
        save_bundle(
            bundle, model_dir, {"data": {"source": "online", "parent": pipeline.model_version}}
        )
        log.info("published model version %s", bundle.version)
        return bundle.version

    def _newer_pipeline(self, pipeline: ScoringPipeline, model_dir: Path) -> ScoringPipeline:
        versions = list_versions(model_dir)
        if self.config.model_version or not versions or versions[-1] <= pipeline.model_version:
            return pipeline
        try:
            bundle = load_bundle(model_dir, versions[-1])
        except Exception as exc:  # keep scoring with the current version
            log.error("cannot load model version %s: %s", versions[-1], exc)
            return pipeline
        log.info("switching to model version %s", bundle.version)
        return bundle.pipeline()


def install_signal_handlers(worker: ScoringWorker) -> None:
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
