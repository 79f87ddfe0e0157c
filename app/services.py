"""The running parts of one SocialPulse instance, hung off the Flask app."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, current_app

from app.aggregates import LiveAggregates
from app.config import Config
from app.live import DashboardSink, LiveHub
from models.pipeline import ScoringPipeline
from models.training import ensure_bundle
from streaming.metrics import StreamMetrics
from streaming.runner import StreamRunner
from streaming.sinks import LogDeadLetterSink
from streaming.sources import ColumnMapping, FileSource, Source, SyntheticSource

if TYPE_CHECKING:
    from streaming.kafka_io import ScoredFeed

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
    feed: ScoredFeed | None = None
    metrics: StreamMetrics = field(default_factory=lambda: StreamMetrics("web"))
    started_at: float = field(default_factory=time.time)
    _stop: threading.Event = field(default_factory=threading.Event)
    _started: bool = False

    @property
    def streaming(self) -> bool:
        return self._started and not self._stop.is_set()

    def start_stream(self, source: Source) -> None:
        """Run `source` through the pipeline into the dashboard, in the background."""
        config = self.config
        self.runner = StreamRunner(
            source,
            self.pipeline,
            [DashboardSink(self.aggregates), LogDeadLetterSink()],
            max_batch=config.batch_max_posts,
            max_wait=config.batch_max_wait_ms / 1000.0,
            max_text_length=config.max_text_length,
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
        from streaming.kafka_io import ScoredFeed

        self.feed = ScoredFeed(bootstrap, self.config.topic_scored, self.config.topic_dlq)
        self._started = True
        self.hub.source_name = "kafka"
        self.hub.start()
        self.hub.socketio.start_background_task(self._run_feed)

    def _run_feed(self) -> None:
        while not self._stop.is_set():
            try:
                scored, dead = self.feed.poll(timeout=0.2)
            except Exception:  # keep serving; the client reconnects by itself
                log.exception("reading scored posts failed; retrying")
                self._stop.wait(1.0)
                continue
            self.aggregates.add(scored)
            if dead:
                self.aggregates.add_dead_letters(dead)
            self.metrics.scored.inc(len(scored))
            self.metrics.dead_lettered.inc(dead)

    def stop(self) -> None:
        self._stop.set()
        self.hub.stop()
        if self.runner is not None:
            self.runner.source.close()
        if self.feed is not None:
            self.feed.close()


def build_pipeline(config: Config) -> ScoringPipeline:
    return ensure_bundle(Path(config.model_dir), config.model_version, seed=config.seed).pipeline()


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
