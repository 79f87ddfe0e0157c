"""The running parts of one SocialPulse instance, hung off the Flask app."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, current_app

from app.aggregates import (
    FEED_SIZE,
    RECENT_IDS_KEPT,
    RECENT_LETTERS_KEPT,
    LiveAggregates,
    fit_windows,
)
from app.audiences import AudienceService
from app.coalescing import CoalescingScorer
from app.config import Config
from app.live import DashboardSink, LiveHub
from app.readiness import Problem, Readiness
from app.server import OffLoopScorer, OffLoopSource, off_loop
from app.tracked import LiveTrackedTopics
from archive.alert_store import AlertWriter
from archive.metrics import ArchiveMetrics
from archive.sink import ArchiveKeeper, ArchiveSink
from archive.store import ArchiveStore, History
from insights.segment_store import SegmentStore
from models.pipeline import ScoringPipeline
from models.signing import ManifestKey
from models.store import ModelStore
from streaming.kafka_common import broker_unreachable
from streaming.metrics import StreamMetrics
from streaming.replay import ReplaySource, file_items, in_event_order
from streaming.runner import StreamRunner
from streaming.sinks import LogDeadLetterSink, Sink
from streaming.sources import ColumnMapping, FileSource, Source, SyntheticSource, file_suffix

if TYPE_CHECKING:
    from streaming.confluent_io import ConfluentScoredTopicReader
    from streaming.kafka_clients import KafkaClient
    from streaming.kafka_io import ScoredTopicReader

log = logging.getLogger(__name__)
EXTENSION = "socialpulse"
ARCHIVE_OVERLAP = 30.0  # s of the scored topic read again after the archive's newest post
ALERT_WARM_POSTS = 200_000  # the most archived posts replayed into the alert detectors
TRACKED_CHECK_SECONDS = 5.0  # how soon a node follows tracked topics another node changed
T = TypeVar("T")
LAG_EVERY = 5.0  # s between measurements of the workers' consumer lag


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
    readiness: Readiness = field(default_factory=Readiness)
    # The key model manifests are verified with, and the versions skipped at start as
    # unsigned or tampered with: (version, reason).
    model_key: ManifestKey | None = None
    store: ModelStore | None = None  # where newer versions appear (followed with Kafka)
    refused_models: list[tuple[str, str]] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    # The one way results reach the dashboard, whether scored here or by Kafka workers.
    dashboard_sink: DashboardSink = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)
    _started: bool = False
    _finished: bool = False  # a finite source ran dry: quiet, not stalled
    _bootstrap: str = ""
    _heartbeat: float = field(default_factory=time.monotonic)  # the stream loop's last turn
    # The archive (None when off): its keeper everywhere, its sink in embedded mode only
    # (with Kafka, `socialpulse archive` writes it).
    archive_keeper: ArchiveKeeper | None = field(init=False, default=None)
    archive_sink: ArchiveSink | None = field(init=False, default=None)
    tracked: LiveTrackedTopics | None = field(init=False, default=None)  # needs the archive
    _restored: bool = False  # the dashboard started from the archive's history
    _archived_until: float | None = None  # when the newest archived post was scored
    _history_read: bool = False  # restore_history ran (once per process)
    _lag_probe: Any = None  # measures the workers' consumer lag (Kafka mode)
    # Author profiles and audience segments (app/audiences.py).
    audiences: AudienceService = field(init=False)
    # What the form and the API score with: concurrent requests' posts as one batch.
    request_scorer: CoalescingScorer = field(init=False)

    def __post_init__(self) -> None:
        self.dashboard_sink = DashboardSink(self.aggregates, self.hub.alerts)
        self.request_scorer = CoalescingScorer(
            lambda: self.pipeline, self.config.api_max_batch, self.config.api_max_chars
        )
        self.hub.problems = lambda: [p.to_dict() for p in self.problems()]
        # The clusterer scoring now: the live one here, or the newest version the learning
        # worker published (see `_follow_models`).
        self.hub.topic_events = lambda: getattr(self.pipeline.clusterer, "lineage_", ())
        self.audiences = AudienceService(
            self.config,
            SegmentStore(self.config.model_dir, self.model_key),
            lambda: self.pipeline,
        )
        self.dashboard_sink.profiles = self.audiences.observe
        url = self.config.archive_database_url
        if url:
            embedded = not self.config.kafka_bootstrap
            self.archive_keeper = ArchiveKeeper(
                ArchiveStore(url),
                self.config.archive_retention_days,
                prune=embedded,
                metrics=ArchiveMetrics(self.metrics.registry, "web"),
                offload=off_loop,
            )
            self.tracked = LiveTrackedTopics(self.archive_keeper, self.aggregates, self.hub.alerts)
            if embedded:
                self.archive_sink = ArchiveSink(
                    self.archive_keeper, max_buffered=self.config.archive_buffer
                )
            if self.hub.alerts is not None:  # every node stores the alerts it detects
                self.hub.alerts.archive = AlertWriter(self.archive_keeper)

    def problems(self) -> list[Problem]:
        """What fails now: reported failures, and a stream loop that stopped turning."""
        problems = self.readiness.problems()
        keeper = self.archive_keeper
        if keeper is not None and keeper.error is not None:
            problems.append(Problem("archive", keeper.error, keeper.error_since or time.time()))
        stalled = time.monotonic() - self._heartbeat
        if self.streaming and not self._finished and stalled > self.config.stall_after:
            since = time.time() - stalled
            problems.append(Problem("stream", f"no batch finished for {stalled:.0f} s", since))
        return problems

    @property
    def streaming(self) -> bool:
        return self._started and not self._stop.is_set()

    def status(self) -> dict[str, Any]:
        """What `/healthz` reports: the same counts in embedded and Kafka mode."""
        problems = self.problems()
        return {
            "status": "degraded" if problems else "ok",
            "problems": [p.to_dict() for p in problems],
            # Serving is fine on an older good version: said here, not a reason for 503.
            "warnings": [
                f"model version {version} refused ({reason}); serving {self.pipeline.model_version}"
                for version, reason in self.refused_models
            ],
            "model_version": self.pipeline.model_version,
            "source": self.hub.source_name or None,
            "streaming": self.streaming,
            "scored": self.aggregates.total,
            "dead_lettered": self.aggregates.dead_lettered,
            "duplicates_dropped": self.aggregates.duplicates,
            "uptime_s": round(time.time() - self.started_at, 1),
            "archive": self.archive_status(),
        }

    def archive_status(self) -> dict[str, Any] | None:
        """The archive's state, disk used and rows; None when there is no archive."""
        if self.archive_sink is not None:
            return self.archive_sink.health()
        if self.archive_keeper is not None:
            return self.archive_keeper.health()
        return None

    def restore_history(self) -> bool:
        """Rebuild the dashboard from the archive (windows, clusters, trends, feed, totals
        and the ids already counted), once, before the first post arrives, so nothing is
        counted twice; False when there is none or it cannot be read (then the dashboard
        starts empty and the archive shows degraded). `serve` calls it before the server
        listens, so no viewer ever sees a dashboard still empty."""
        if self._history_read:
            return self._restored
        self._history_read = True
        keeper = self.archive_keeper
        if keeper is None or not keeper.ensure_ready():
            return False
        self._refresh_tracked()  # so the restored windows count them too
        try:
            history = keeper.call(
                keeper.store.history,
                self.aggregates.window_seconds,  # the span shown (see `show_span`)
                self.aggregates.windows_kept,
                FEED_SIZE,
                RECENT_IDS_KEPT,
                RECENT_LETTERS_KEPT,
            )
        except Exception as exc:
            keeper.fail(f"cannot read history from the archive: {type(exc).__name__}: {exc}")
            return False
        self.aggregates.restore(
            history.posts,
            history.feed,
            history.recent_ids,
            history.total_posts,
            history.total_dead_letters,
            history.recent_letter_ids,
        )
        log.info(
            "dashboard restored from the archive: %d posts in the windows, %d in all",
            len(history.posts),
            history.total_posts,
        )
        self._restored = bool(history.total_posts or history.total_dead_letters)
        self._archived_until = history.newest_scored_at
        self._warm_alerts(history)
        keeper.maintain()  # the disk and row figures from the start, and old rows pruned
        return self._restored

    def _warm_alerts(self, history: History) -> None:
        """Replay the archive's last hours through the alert detectors, so their baselines
        (and the recent alerts) are back at once instead of after an hour of warm-up."""
        alerts, keeper = self.hub.alerts, self.archive_keeper
        if alerts is None or keeper is None or not history.posts:
            return
        newest = max(p.post.created_at.timestamp() for p in history.posts)
        since = newest - alerts.warm_seconds
        try:
            posts = keeper.call(keeper.store.posts_since, since, ALERT_WARM_POSTS)
        except Exception as exc:
            log.warning("alert baselines start empty: cannot read the archive: %s", exc)
            return
        alerts.warm(posts)
        log.info("alert baselines warmed with %d archived posts", len(posts))

    def _refresh_tracked(self) -> None:
        if self.tracked is None:
            return
        try:
            self.tracked.refresh()
        except Exception as exc:
            log.warning("cannot read the tracked topics from the archive: %s", exc)

    def _follow_tracked(self) -> None:
        """Pick up topics any node saved or removed, within a few seconds."""
        while not self._stop.wait(TRACKED_CHECK_SECONDS):
            self._refresh_tracked()

    def _run_archive_keeper(self) -> None:
        """With Kafka: keep the archive's figures fresh (the archive command writes it)."""
        keeper = self.archive_keeper
        assert keeper is not None
        while not self._stop.is_set():
            if keeper.ensure_ready():
                keeper.maintain(recover=True)
            self._stop.wait(5.0)

    def show_span(self, source: Source) -> None:
        """Fit the dashboard's windows to a replayed file's event-time span (10 s windows
        for minutes, hours for days; trending over all of it), before history is restored
        and posts arrive. Other sources keep the configured windows."""
        ordered = getattr(source, "ordered", None)
        if ordered is None or self._history_read or self.aggregates.total:
            return
        config = self.config
        window, kept = fit_windows(ordered.span, config.window_seconds, config.windows_kept)
        if (window, kept) != (config.window_seconds, config.windows_kept):
            self.aggregates.resize(window, kept, trending_windows=kept)
            log.info("the dashboard shows %d windows of %d s: the file's span", kept, window)

    def start_stream(self, source: Source) -> None:
        """Run `source` through the pipeline into the dashboard, in the background."""
        config = self.config
        self.show_span(source)
        sinks: list[Sink] = [self.dashboard_sink, LogDeadLetterSink()]
        if self.archive_sink is not None:
            sinks.append(self.archive_sink)
        self.runner = StreamRunner(
            OffLoopSource(source),
            OffLoopScorer(self.pipeline),
            sinks,
            batch_max_posts=config.batch_max_posts,
            batch_max_wait=config.batch_max_wait,
            max_text_length=config.max_text_length,
            max_clock_skew=config.max_clock_skew,
            metrics=self.metrics,
        )
        self._started = True
        self.hub.source_name = source.name
        self._start_delivery()
        self.hub.socketio.start_background_task(self._run_stream)

    def _run_stream(self) -> None:
        runner = self.runner
        assert runner is not None
        self.restore_history()  # (if `serve` has not yet) before the first post
        if self.archive_sink is not None:
            self.hub.socketio.start_background_task(self.archive_sink.run)
        while not self._stop.is_set():
            try:
                handled = runner.run_once()
            except Exception as exc:  # keep serving: the batch comes again, the stream goes on
                log.exception("stream batch failed; continuing")
                self.readiness.fail("scoring", f"batches fail: {type(exc).__name__}: {exc}")
                self._heartbeat = time.monotonic()
                self._stop.wait(1.0)
                continue
            self._heartbeat = time.monotonic()
            self.readiness.ok("scoring")
            if not handled and runner.source.exhausted:
                runner.settle()
                if self.hub.alerts is not None:
                    self.hub.alerts.flush()  # a replay's last windows close too
                self._finished = True
                log.info("source %s is exhausted", runner.source.name)
                return
        runner.settle()

    def start_kafka_feed(self, bootstrap: str) -> None:
        """Show results the workers publish instead of scoring in-process.

        Each web node reads every partition of the scored and dead-letter topics without a
        consumer group, so every node sees every result, starting as far back as the
        dashboard's windows reach. A broker that is down at start
        delays the feed, not the node: it serves, reports the outage, and connects later.
        """
        self._bootstrap = bootstrap
        self._started = True
        self.hub.source_name = "kafka"
        self._start_delivery()
        self.hub.socketio.start_background_task(self._run_feed)
        if self.store is not None:
            self.hub.socketio.start_background_task(self._follow_models)

    def _follow_models(self) -> None:
        """With Kafka, the learning worker publishes new versions: use them too, so the form
        and the API score with the clusters the stream has, and the dashboard shows their
        births, merges and retirements."""
        assert self.store is not None
        while not self._stop.wait(self.config.model_check_interval):
            try:
                newer = off_loop(self.store.newer, self.pipeline.model_version)
            except Exception:
                log.exception("checking for a newer model version failed")
                continue
            if newer is not None:
                self.pipeline = newer

    def _start_delivery(self) -> None:
        """The dashboard's pushes, and the alerts' webhooks."""
        self.hub.start()
        if self.tracked is not None:
            self.hub.socketio.start_background_task(self._follow_tracked)
        archive = self.archive_keeper.store if self.archive_keeper is not None else None
        self.hub.socketio.start_background_task(
            self.audiences.run, self._stop, archive, offload=off_loop
        )
        alerts = self.hub.alerts
        if alerts is not None and alerts.webhooks is not None:
            alerts.webhooks.start()
        if alerts is not None and alerts.archive is not None:
            self.hub.socketio.start_background_task(alerts.archive.run)

    def _run_feed(self) -> None:
        self.restore_history()  # (if `serve` has not yet) before the feed
        if self.archive_keeper is not None:
            self.hub.socketio.start_background_task(self._run_archive_keeper)
        next_probe = next_lag = 0.0
        down: str | None = None
        while not self._stop.is_set():
            self._heartbeat = time.monotonic()
            if self._heartbeat >= next_probe:
                down = broker_unreachable(self._bootstrap)
                self.metrics.broker_up.set(0 if down else 1)
                if down:
                    self.readiness.fail("kafka", down)
                else:
                    self.readiness.ok("kafka")
                next_probe = self._heartbeat + 2.0
            if self._heartbeat >= next_lag:
                next_lag = self._heartbeat + LAG_EVERY
                self._measure_lag(down is None)
            if self.feed is None:
                try:
                    self.feed = self._open_feed()
                except Exception as exc:
                    log.warning("cannot open the scored topics yet: %s", exc)
                    self.readiness.fail("feed", f"cannot open the scored topics: {exc}")
                    self._stop.wait(2.0)
                    continue
            try:
                scored, letters = self._feed_call(self.feed.poll, timeout=0.2)
            except Exception as exc:  # keep serving; the client reconnects by itself
                log.exception("reading scored posts failed; retrying")
                self.readiness.fail("feed", f"cannot read scored posts: {exc}")
                self._stop.wait(1.0)
                continue
            self.readiness.ok("feed")
            self.dashboard_sink.write(scored)
            self.dashboard_sink.reject(letters)
            self.metrics.scored.inc(len(scored))
            self.metrics.dead_lettered.inc(len(letters))

    def _measure_lag(self, reachable: bool) -> None:
        """The workers' consumer lag into the pipeline's health (unknown while the broker
        is away). Measured here because a stopped worker cannot report its own."""
        alerts = self.hub.alerts
        if alerts is None:
            return
        lag = None
        if reachable:
            if self._lag_probe is None:
                from streaming.group_lag import GroupLagProbe

                config = self.config
                self._lag_probe = GroupLagProbe(
                    config.kafka_bootstrap or self._bootstrap,
                    config.consumer_group,
                    config.topics.posts,
                    config.kafka_client,
                )
            lag = self._feed_call(self._lag_probe.measure)
        alerts.observe_lag(lag)

    def _open_feed(self) -> ScoredTopicReader | ConfluentScoredTopicReader:
        client, topics = self._kafka_client, self.config.topics
        # retried by the caller
        self._feed_call(client.ensure_topics, self._bootstrap, topics, timeout=5.0)
        # From as far back as the dashboard shows: every node, whenever it started, shows
        # the same windows, trends and feed, and the same totals (the rest is counted).
        since = time.time() - self.config.window_seconds * self.config.windows_kept
        if self._restored and self._archived_until is not None:
            # What the archive holds is shown already: read only what is newer (with a
            # margin for partitions the archive consumer has not caught up on; the ids of
            # the last archived posts are remembered, so the overlap is not counted twice).
            since = max(since, self._archived_until - ARCHIVE_OVERLAP)
        feed = self._feed_call(
            client.reader, self._bootstrap, topics.scored, topics.dlq, since=since
        )
        if not self._restored:  # the archive's totals already count what came before
            self.aggregates.count_earlier(feed.earlier[topics.scored], feed.earlier[topics.dlq])
        return feed

    @cached_property
    def _kafka_client(self) -> KafkaClient:
        from streaming.kafka_clients import kafka_client

        return kafka_client(self.config.kafka_client)

    def _feed_call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A call into the Kafka client; one that waits inside C runs on a native thread
        under gevent, so the web node keeps serving meanwhile."""
        if self._kafka_client.blocks_in_c:
            return off_loop(function, *args, **kwargs)
        return function(*args, **kwargs)

    def stop(self) -> None:
        self._stop.set()
        self.hub.stop()
        alerts = self.hub.alerts
        if alerts is not None and alerts.webhooks is not None:
            alerts.webhooks.stop()
        if alerts is not None and alerts.archive is not None:
            alerts.archive.close()  # stores what waits (for up to 10 s)
        if self.runner is not None:
            self.runner.source.close()
        if self.archive_sink is not None:
            self.archive_sink.close()  # stores what is buffered (for up to 10 s)
        if self.feed is not None:
            self._feed_call(self.feed.close)
        if self._lag_probe is not None:
            self._feed_call(self._lag_probe.close)


def model_store(config: Config) -> ModelStore:
    """The model versions this instance scores with, verified with its signing key."""
    return ModelStore(
        config.model_dir, config.model_version, seed=config.seed, key=config.manifest_key()
    )


def build_source(
    config: Config, mapping: ColumnMapping | None = None, encoding: str = "utf-8"
) -> Source:
    if config.source == "file":
        path = Path(config.file or "")
        if not path.is_file():  # a named pipe is a live stream: taken in arrival order
            return FileSource(config.file, mapping, speed=config.file_speed, encoding=encoding)
        file_suffix(path)
        # A file is replayed in event-time order (sorted whole up to the bound), paced by it.
        ordered = in_event_order(file_items(path, mapping, encoding), config.replay_order_bound)
        return ReplaySource(ordered, config.file_speed or None, name="file")
    return SyntheticSource(rate=config.rate, seed=config.seed)


def services() -> Services:
    return current_app.extensions[EXTENSION]


def install(app: Flask, services_: Services) -> None:
    app.extensions[EXTENSION] = services_
