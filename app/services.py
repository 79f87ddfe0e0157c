"""The running parts of one SocialPulse instance, hung off the Flask app."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from app.aggregates import LiveAggregates
from app.config import Config
from app.live import DashboardSink, LiveHub
from models.pipeline import ScoringPipeline
from models.store import ModelStore
from streaming.metrics import StreamMetrics
from streaming.runner import StreamRunner
from streaming.sinks import LogDeadLetterSink
from streaming.sources import ColumnMapping, FileSource, Source, SyntheticSource

if TYPE_CHECKING:
    from streaming.confluent_io import ConfluentScoredTopicReader
    from streaming.kafka_io import ScoredTopicReader

log = logging.getLogger(__name__)
EXTENSION = "socialpulse"


@dataclass
class Services:
    """Pipeline, dashboard aggregates and the live stream of one instance."""

    config: Config
    pipeline: ScoringPipeline
    aggregates: LiveAggregates
    hub: LiveHub
    runner: StreamRunner | None = None
    feed: ScoredTopicReader | ConfluentScoredTopicReader | None = None
    metrics: StreamMetrics = field(default_factory=lambda: StreamMetrics("web"))
    started_at: float = field(default_factory=time.time)
    # The one way results reach the dashboard, whether scored here or by Kafka workers.
    dashboard_sink: DashboardSink = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)
    _started: bool = False

    def __post_init__(self) -> None:
        self.dashboard_sink = DashboardSink(self.aggregates)

    @property
    def streaming(self) -> bool:
        return self._started and not self._stop.is_set()

    def status(self) -> dict[str, Any]:
        """What `/healthz` reports: the same counts in embedded and Kafka mode."""
        return {
            "model_version": self.pipeline.model_version,
            "source": self.hub.source_name or None,
            "streaming": self.streaming,
            "scored": self.aggregates.total,
            "dead_lettered": self.aggregates.dead_lettered,
            "duplicates_dropped": self.aggregates.duplicates,
            "uptime_s": round(time.time() - self.started_at, 1),
        }

    def start_stream(self, source: Source) -> None:
        """Run `source` through the pipeline into the dashboard, in the background."""
        config = self.config
        self.runner = StreamRunner(
            source,
            self.pipeline,
            [self.dashboard_sink, LogDeadLetterSink()],
            batch_max_posts=config.batch_max_posts,
            batch_max_wait=config.batch_max_wait,
            max_text_length=config.max_text_length,
            max_clock_skew=config.max_clock_skew,
            metrics=self.metrics,
        )
        self._started = True
        self.hub.source_name = source.name
        self.hub.start()
        self.hub.socketio.start_background_task(self._run_stream)

    def _run_stream(self) -> None:
        assert self.runner is not None
        while not self._stop.is_set():
            try:
                self.runner.run(self._stop)
                if self.runner.source.exhausted:
                    log.info("source %s is exhausted", self.runner.source.name)
                    return
            except Exception:  # keep serving: a failed batch is logged, the stream goes on
                log.exception("stream batch failed; continuing")
                self._stop.wait(1.0)

    def start_kafka_feed(self, bootstrap: str) -> None:
        """Show results the workers publish instead of scoring in-process.

        Each web node reads every partition of the scored and dead-letter topics without a
        consumer group, so every node sees every result.
        """
        from streaming.kafka_clients import kafka_client

        topics = self.config.topics
        reader = kafka_client(self.config.kafka_client).reader
        self.feed = reader(bootstrap, topics.scored, topics.dlq)
        self._started = True
        self.hub.source_name = "kafka"
        self.hub.start()
        self.hub.socketio.start_background_task(self._run_feed)

    def _run_feed(self) -> None:
        while not self._stop.is_set():
            try:
                scored, letters = self.feed.poll(timeout=0.2)
            except Exception:  # keep serving; the client reconnects by itself
                log.exception("reading scored posts failed; retrying")
                self._stop.wait(1.0)
                continue
            self.dashboard_sink.write(scored)
            self.dashboard_sink.reject(letters)
            self.metrics.scored.inc(len(scored))
            self.metrics.dead_lettered.inc(len(letters))

    def stop(self) -> None:
        self._stop.set()
        self.hub.stop()
        if self.runner is not None:
            self.runner.source.close()
        if self.feed is not None:
            self.feed.close()


def build_pipeline(config: Config) -> ScoringPipeline:
    return ModelStore(config.model_dir, config.model_version, seed=config.seed).load()


def build_source(
    config: Config, mapping: ColumnMapping | None = None, encoding: str = "utf-8"
) -> Source:
    if config.source == "file":
        return FileSource(config.file, mapping, speed=config.file_speed, encoding=encoding)
    return SyntheticSource(rate=config.rate, seed=config.seed)


def services() -> Services:
    return current_app.extensions[EXTENSION]


def install(app: Flask, services_: Services) -> None:
    app.extensions[EXTENSION] = services_
