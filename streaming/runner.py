"""The micro-batching loop: source -> records -> scoring pipeline -> sinks -> commit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from streaming.metrics import StreamMetrics
from streaming.records import DEFAULT_MAX_TEXT_LENGTH, InvalidPost, Post, ScoredPost, parse_post
from streaming.sinks import DeadLetter, Sink
from streaming.sources import Source, SourceRecord

log = logging.getLogger(__name__)


class Scorer(Protocol):
    """What the runner needs of a scoring pipeline (`models.pipeline.ScoringPipeline`)."""

    model_version: str

    def score_batch(
        self,
        posts: Sequence[Post],
        learn: bool = False,
        received_at: Sequence[float] | None = None,
    ) -> list[ScoredPost]: ...


@dataclass
class RunnerStats:
    batches: int = 0
    scored: int = 0
    dead_lettered: int = 0
    last_batch_ms: float = 0.0


class StreamRunner:
    """Reads micro-batches (capped by size and by time), scores them, writes, then commits.

    A batch is committed only after every sink flushed it. That wait overlaps the next
    batch: the runner reads and scores batch N+1 while the sinks deliver batch N, then
    flushes and commits N, then writes N+1. Delivery stays at-least-once; the sinks'
    round trips no longer stall scoring.

    Args:
        source: where raw posts come from.
        scorer: the scoring path.
        sinks: every sink gets every scored post and dead letter.
        batch_max_posts: most posts in one micro-batch.
        batch_max_wait: seconds a micro-batch may wait to fill, so a quiet stream is not
            delayed.
        max_text_length: longest text accepted.
        max_clock_skew: seconds a post's time may be ahead of the clock; a later one is a
            dead letter (None: any time).
        learn: let the clusterer learn from the stream.
        metrics: Prometheus counters to update, if any.
    """

    def __init__(
        self,
        source: Source,
        scorer: Scorer,
        sinks: Sequence[Sink],
        batch_max_posts: int = 500,
        batch_max_wait: float = 0.1,
        max_text_length: int = DEFAULT_MAX_TEXT_LENGTH,
        max_clock_skew: float | None = None,
        learn: bool = True,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self.source = source
        self.scorer = scorer
        self.sinks = list(sinks)
        self.batch_max_posts = batch_max_posts
        self.batch_max_wait = batch_max_wait
        self.max_text_length = max_text_length
        self.max_clock_skew = max_clock_skew
        self.learn = learn
        self.metrics = metrics
        self.stats = RunnerStats()
        self._written = False  # a batch was written and is not committed yet
        self._written_upto: object = None  # the source's checkpoint after that batch

    def use_scorer(self, scorer: Scorer) -> None:
        """Score the next micro-batches with `scorer` (e.g. a newer model version)."""
        self.scorer = scorer

    def run_once(self) -> int:
        """Handle one micro-batch; returns how many records it held."""
        records = self.source.read_batch(self.batch_max_posts, self.batch_max_wait)
        if not records:
            self.settle()  # a quiet stream: make the last batch safe now
            return 0
        started = time.perf_counter()
        try:
            scored, letters = self._score(records)
        except Exception:
            # Keep what was written before; read this batch again rather than lose it.
            self.settle()
            self.source.rewind()
            raise
        if not self.settle():
            return len(records)  # the source rewound: this batch comes again
        try:
            for sink in self.sinks:
                if scored:
                    sink.write(scored)
                if letters:
                    sink.reject(letters)
        except Exception:
            self.source.rewind()
            raise
        self._written, self._written_upto = True, self.source.checkpoint()
        self.stats.batches += 1
        self.stats.scored += len(scored)
        self.stats.dead_lettered += len(letters)
        self.stats.last_batch_ms = (time.perf_counter() - started) * 1000.0
        if self.metrics is not None:
            self.metrics.consumed.inc(len(records))
            self.metrics.scored.inc(len(scored))
            self.metrics.dead_lettered.inc(len(letters))
            self.metrics.batch_latency.observe(self.stats.last_batch_ms / 1000.0)
        return len(records)

    def settle(self) -> bool:
        """Flush the sinks and commit the batch written last. On a failed flush, rewind
        and raise; False if the commit failed (the source rewound)."""
        if not self._written:
            return True
        self._written = False
        try:
            for sink in self.sinks:
                sink.flush()
        except Exception:
            # Only now is a batch safe: acknowledging it unflushed could lose it on a crash.
            self.source.rewind()
            raise
        return self.source.commit(self._written_upto)

    def _score(self, records: list[SourceRecord]) -> tuple[list[ScoredPost], list[DeadLetter]]:
        posts: list[Post] = []
        received: list[float] = []
        letters: list[DeadLetter] = []
        latest = None
        if self.max_clock_skew is not None:
            latest = datetime.now(UTC) + timedelta(seconds=self.max_clock_skew)
        for record in records:
            try:
                post = parse_post(
                    record.value,
                    max_text_length=self.max_text_length,
                    default_id=record.default_id,
                    default_source=self.source.name,
                    latest=latest,
                )
            except InvalidPost as exc:
                letters.append(
                    DeadLetter(
                        record.value,
                        exc.message,
                        self.source.name,
                        record.position,
                        record.received_at,
                        record.key,
                    )
                )
                continue
            posts.append(post)
            received.append(record.received_at)
        scored = self.scorer.score_batch(posts, learn=self.learn, received_at=received)
        return scored, letters

    def run(self, stop: threading.Event | None = None) -> RunnerStats:
        """Run until `stop` is set or a finite source is exhausted."""
        stop = stop or threading.Event()
        while not stop.is_set():
            handled = self.run_once()
            if not handled and self.source.exhausted:
                break
        self.settle()
        return self.stats
