"""The micro-batching loop: source -> records -> scoring pipeline -> sinks -> commit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
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

    Args:
        source: where raw posts come from.
        scorer: the scoring path.
        sinks: every sink gets every scored post and dead letter.
        batch_max_posts: most posts in one micro-batch.
        batch_max_wait: seconds a micro-batch may wait to fill, so a quiet stream is not
            delayed.
        max_text_length: longest text accepted.
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
        learn: bool = True,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self.source = source
        self.scorer = scorer
        self.sinks = list(sinks)
        self.batch_max_posts = batch_max_posts
        self.batch_max_wait = batch_max_wait
        self.max_text_length = max_text_length
        self.learn = learn
        self.metrics = metrics
        self.stats = RunnerStats()

    def use_scorer(self, scorer: Scorer) -> None:
        """Score the next micro-batches with `scorer` (e.g. a newer model version)."""
        self.scorer = scorer

    def run_once(self) -> int:
        """Handle one micro-batch; returns how many records it held."""
        records = self.source.read_batch(self.batch_max_posts, self.batch_max_wait)
        if not records:
            return 0
        try:
            return self._handle(records)
        except Exception:
            # Nothing of this batch is acknowledged: read it again rather than lose it.
            self.source.rewind()
            raise

    def _handle(self, records: list[SourceRecord]) -> int:
        started = time.perf_counter()
        posts: list[Post] = []
        received: list[float] = []
        letters: list[DeadLetter] = []
        for record in records:
            try:
                post = parse_post(
                    record.value,
                    max_text_length=self.max_text_length,
                    default_id=record.default_id,
                    default_source=self.source.name,
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
        for sink in self.sinks:
            if scored:
                sink.write(scored)
            if letters:
                sink.reject(letters)
        for sink in self.sinks:
            sink.flush()
        # Only now is the batch safe: acknowledging it earlier could lose posts on a crash.
        self.source.commit()
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

    def run(self, stop: threading.Event | None = None) -> RunnerStats:
        """Run until `stop` is set or a finite source is exhausted."""
        stop = stop or threading.Event()
        while not stop.is_set():
            handled = self.run_once()
            if not handled and self.source.exhausted:
                break
        for sink in self.sinks:
            sink.flush()
        return self.stats
