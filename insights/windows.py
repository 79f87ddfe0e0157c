"""Scored posts cut into fixed event-time windows, per subject (hashtag, cluster, keyword).

A window closes when the watermark (the latest event time seen, minus the allowed
lateness) passes its end. Posts are taken one by one in arrival order, so how a stream is
cut into micro-batches never changes which windows a post lands in or when they close:
the same posts in the same order give the same windows at any replay speed. A post older
than an already closed window is late: it is counted and left out.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from streaming.records import ScoredPost

MAX_SAMPLES = 5
SAMPLE_TEXT_CHARS = 280


@dataclass(frozen=True)
class SamplePost:
    id: str
    author: str
    text: str
    compound: float
    created_at: float


@dataclass
class SubjectWindow:
    """What one subject did in one window."""

    count: int = 0
    compound_sum: float = 0.0
    compound_squares: float = 0.0
    negative: int = 0
    # The most strongly felt posts (|compound|, ties by id): the ones worth showing.
    samples: list[tuple[float, str, SamplePost]] = field(default_factory=list)

    def add(self, compound: float, negative: bool, sample: SamplePost | None = None) -> None:
        self.count += 1
        self.compound_sum += compound
        self.compound_squares += compound * compound
        self.negative += negative
        if sample is not None:
            entry = (abs(compound), sample.id, sample)
            if len(self.samples) < MAX_SAMPLES:
                heapq.heappush(self.samples, entry)
            elif entry[:2] > self.samples[0][:2]:
                heapq.heapreplace(self.samples, entry)

    @property
    def mean_compound(self) -> float:
        return self.compound_sum / self.count if self.count else 0.0

    def sample_posts(self) -> list[SamplePost]:
        return [s for _, _, s in sorted(self.samples, key=lambda e: (-e[0], e[1]))]


@dataclass
class WindowSummary:
    """One closed window: the stream's total and every subject seen in it."""

    start: float
    seconds: float
    total: int = 0
    subjects: dict[str, SubjectWindow] = field(default_factory=dict)

    @property
    def end(self) -> float:
        return self.start + self.seconds


def post_subjects(scored: ScoredPost, keywords: frozenset[str] = frozenset()) -> list[str]:
    """The subjects a post counts for: `#tag`, `cluster:<id>` and `keyword:<word>`."""
    post = scored.post
    subjects = {"#" + tag.lower() for tag in post.hashtags}
    subjects.add(f"cluster:{scored.cluster.id}")
    if keywords:
        words = {w.strip(".,!?;:\"'()").lower() for w in post.text.split()}
        subjects.update("keyword:" + w for w in keywords & words)
    return sorted(subjects)


class EventTimeWindows:
    """Assigns posts to windows and hands out the windows the watermark closed.

    Args:
        seconds: window length.
        lateness: how far behind the latest event time a post may still arrive.
        keywords: words counted as subjects of their own.
    """

    def __init__(self, seconds: float, lateness: float, keywords: Iterable[str] = ()) -> None:
        if seconds <= 0 or lateness < 0:
            raise ValueError("windows need a positive length and a lateness of zero or more")
        self.seconds = seconds
        self.lateness = lateness
        self.keywords = frozenset(k.lower() for k in keywords)
        self.open: dict[int, WindowSummary] = {}
        self.watermark = -math.inf  # every window ending at or before it is closed
        self.late = 0

    def add(self, posts: Sequence[ScoredPost]) -> list[WindowSummary]:
        """Take posts in order; the windows they closed, oldest first."""
        closed: list[WindowSummary] = []
        for scored in posts:
            t = scored.post.created_at.timestamp()
            index = math.floor(t / self.seconds)
            start = index * self.seconds
            if start + self.seconds <= self.watermark:
                self.late += 1
                continue
            window = self.open.get(index)
            if window is None:
                window = self.open[index] = WindowSummary(start, self.seconds)
            window.total += 1
            compound = scored.sentiment.compound
            sample = SamplePost(
                scored.post.id,
                scored.post.author,
                scored.post.text[:SAMPLE_TEXT_CHARS],
                compound,
                t,
            )
            negative = scored.sentiment.label == "negative"
            for subject in post_subjects(scored, self.keywords):
                target = window.subjects.get(subject)
                if target is None:
                    target = window.subjects[subject] = SubjectWindow()
                target.add(compound, negative, sample)
            if t - self.lateness > self.watermark:
                self.watermark = t - self.lateness
                closed += self._close_until(self.watermark)
        return closed

    def flush(self) -> list[WindowSummary]:
        """Close every open window (the end of a replay); later posts count as late."""
        self.watermark = math.inf
        return self._close_until(math.inf)

    def _close_until(self, watermark: float) -> list[WindowSummary]:
        done = sorted(i for i, w in self.open.items() if w.end <= watermark)
        return [self.open.pop(i) for i in done]
