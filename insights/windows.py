"""Scored posts cut into fixed event-time windows, per subject (hashtag, cluster, keyword).

A window *ends* when the latest event time seen passes its end: it is then handed out once
as it stands (`advance`), so detectors can speak at once, while late posts may still come.
It *closes* when the watermark (the latest event time seen, minus the allowed lateness)
passes its end. Posts are taken one by one in arrival order, so how a stream is
cut into micro-batches never changes which windows a post lands in or when they close:
the same posts in the same order give the same windows at any replay speed. A post older
than an already closed window is late: it is counted and left out.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from math import log1p, sqrt

from insights.tracked import NO_TOPICS, TopicMatcher
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


@dataclass(slots=True)
class SubjectWindow:
    """What one subject did in one window."""

    count: int = 0
    compound_sum: float = 0.0
    compound_squares: float = 0.0
    negative: int = 0
    # The most strongly felt posts (|compound|, ties by id): the ones worth showing.
    samples: list[tuple[float, str, SamplePost]] = field(default_factory=list)
    label: str | None = None  # a topic cluster's words, for people to read

    def add(
        self, compound: float, negative: bool, sample: SamplePost | ScoredPost | None = None
    ) -> None:
        """Count one post; `sample` (the post, or what to show of it) may be kept."""
        self.count += 1
        self.compound_sum += compound
        self.compound_squares += compound * compound
        self.negative += negative
        if sample is not None:
            strength = abs(compound)
            samples = self.samples
            if len(samples) < MAX_SAMPLES:
                heapq.heappush(samples, (strength, _sample_id(sample), sample))
            elif strength >= samples[0][0]:  # compared in full only when it may get in
                entry = (strength, _sample_id(sample), sample)
                if entry[:2] > samples[0][:2]:
                    heapq.heapreplace(samples, entry)

    @property
    def mean_compound(self) -> float:
        return self.compound_sum / self.count if self.count else 0.0

    def sample_posts(self) -> list[SamplePost]:
        ordered = sorted(self.samples, key=lambda e: (-e[0], e[1]))
        return [s if isinstance(s, SamplePost) else sample_of(s) for _, _, s in ordered]


def _sample_id(sample: SamplePost | ScoredPost) -> str:
    return sample.id if isinstance(sample, SamplePost) else sample.post.id


def sample_of(scored: ScoredPost) -> SamplePost:
    """What an alert shows of a post."""
    post = scored.post
    return SamplePost(
        post.id,
        post.author,
        post.text[:SAMPLE_TEXT_CHARS],
        scored.sentiment.compound,
        post.created_at.timestamp(),
    )


@dataclass
class WindowSummary:
    """One closed window: the stream's total and every subject seen in it."""

    start: float
    seconds: float
    total: int = 0
    subjects: dict[str, SubjectWindow] = field(default_factory=dict)
    # Posts far above their topic's and author's usual engagement (see ViralDetector).
    viral: list[ViralCandidate] = field(default_factory=list)

    @property
    def end(self) -> float:
        return self.start + self.seconds

    def snapshot(self) -> WindowSummary:
        """A copy that later posts do not change."""
        return WindowSummary(
            self.start,
            self.seconds,
            self.total,
            {
                name: SubjectWindow(
                    seen.count,
                    seen.compound_sum,
                    seen.compound_squares,
                    seen.negative,
                    list(seen.samples),
                    seen.label,
                )
                for name, seen in self.subjects.items()
            },
            list(self.viral),
        )


@dataclass(frozen=True)
class ViralCandidate:
    post: SamplePost
    engagement: float  # the larger of observed and predicted
    topic_usual: float
    author_usual: float | None
    z: float  # against the topic's usual, in log engagement


class ViralDetector:
    """Posts whose engagement (observed, or predicted where that is higher) is far above
    both their topic cluster's norm and their author's.

    Norms are exponentially weighted means and variances of log(1 + engagement), updated
    after each post is judged, so a post is only compared with what came before it. A
    candidate is at least `min_z` standard deviations above its topic (once the topic has
    `min_topic_posts`), `min_author_ratio` × its author's usual (authors with
    `min_author_posts` or more), and `min_engagement` in absolute terms.
    """

    def __init__(
        self,
        min_z: float = 4.0,
        min_engagement: float = 100.0,
        min_topic_posts: int = 50,
        min_author_posts: int = 3,
        min_author_ratio: float = 5.0,
        span: float = 500.0,
        max_authors: int = 100_000,
    ) -> None:
        self.min_z = min_z
        self.min_engagement = min_engagement
        self.min_topic_posts = min_topic_posts
        self.min_author_posts = min_author_posts
        self.min_author_ratio = min_author_ratio
        self.rate = 2.0 / (span + 1.0)
        self._log_author_ratio = math.log(min_author_ratio)
        self.max_authors = max_authors
        self.topics: dict[int, list[float]] = {}  # cluster → [posts, mean, variance]
        self.authors: dict[str, list[float]] = {}  # author → [posts, mean, last judged]
        self.judged = 0

    def judge(self, scored: ScoredPost) -> ViralCandidate | None:
        post = scored.post
        engagement = scored.engagement.predicted
        if post.engagement:
            observed = float(sum(post.engagement.values()))
            if observed > engagement:
                engagement = observed
        if engagement < 0.0:
            engagement = 0.0
        value = log1p(engagement)
        cluster = scored.cluster.id
        topics = self.topics
        topic = topics.get(cluster)
        if topic is None:
            topic = topics[cluster] = [0, value, 1.0]
        authors = self.authors
        author = authors.get(post.author)
        candidate = None
        mean = topic[1]
        if topic[0] >= self.min_topic_posts and engagement >= self.min_engagement:
            z = (value - mean) / sqrt(topic[2] if topic[2] > 1e-6 else 1e-6)
            known = author is not None and author[0] >= self.min_author_posts
            if z >= self.min_z and (not known or value - author[1] >= self._log_author_ratio):
                candidate = ViralCandidate(
                    sample_of(scored),
                    round(engagement, 2),
                    round(math.expm1(mean), 2),
                    round(math.expm1(author[1]), 2) if known else None,
                    round(z, 2),
                )
        # A candidate teaches its topic only what a usual post would (a topic's norm must
        # not become viral), but its author all of it: their next hit is less surprising.
        rate = self.rate
        gap = 0.0 if candidate else value - mean
        topic[0] += 1
        topic[1] = mean + rate * gap
        topic[2] = (1 - rate) * (topic[2] + rate * gap * gap)
        judged = self.judged = self.judged + 1
        if author is None:
            author = authors[post.author] = [1, value, judged]
            if len(authors) > self.max_authors:
                self._forget_authors()
            return candidate
        seen = author[0] + 1
        author[0] = seen
        step = 1.0 / seen
        author[1] += (step if step > rate else rate) * (value - author[1])
        author[2] = judged
        return candidate

    def _forget_authors(self) -> None:
        """Drop the tenth of the authors seen longest ago (in one go, so rarely)."""
        by_age = sorted(self.authors.items(), key=lambda item: item[1][2])
        for name, _ in by_age[: max(1, self.max_authors // 10)]:
            del self.authors[name]


def post_subjects(scored: ScoredPost, keywords: frozenset[str] = frozenset()) -> list[str]:
    """The subjects a post counts for, each once: `cluster:<id>`, then `#tag` and
    `keyword:<word>` in the order found."""
    post = scored.post
    subjects = [f"cluster:{scored.cluster.id}"]
    for tag in post.hashtags:
        subject = "#" + tag.lower()
        if subject not in subjects:
            subjects.append(subject)
    if keywords:
        words = {w.strip(".,!?;:\"'()").lower() for w in post.text.split()}
        subjects += ["keyword:" + w for w in sorted(keywords & words)]
    return subjects


class EventTimeWindows:
    """Assigns posts to windows and hands out the windows the watermark closed.

    Args:
        seconds: window length.
        lateness: how far behind the latest event time a post may still arrive.
        keywords: words counted as subjects of their own.
    """

    def __init__(
        self,
        seconds: float,
        lateness: float,
        keywords: Iterable[str] = (),
        viral: ViralDetector | None = None,
    ) -> None:
        if seconds <= 0 or lateness < 0:
            raise ValueError("windows need a positive length and a lateness of zero or more")
        self.seconds = seconds
        self.lateness = lateness
        self.keywords = frozenset(k.lower() for k in keywords)
        self.topics: TopicMatcher = NO_TOPICS  # tracked topics: subjects `topic:<name>`
        self.viral = viral or ViralDetector()
        self.open: dict[int, WindowSummary] = {}
        self.watermark = -math.inf  # every window ending at or before it is closed
        self.late = 0
        self._oldest_end = math.inf  # the end of the oldest open window
        self._ended_through = -math.inf  # windows ending at or before it were handed out
        self._next_end = math.inf  # the end of the oldest window not yet handed out
        self._cluster_subjects: dict[int, str] = {}  # cluster id → its subject name

    def add(self, posts: Sequence[ScoredPost]) -> list[WindowSummary]:
        """Take posts in order; the windows they closed, oldest first."""
        return [window for ended, window in self.advance(posts) if not ended]

    def advance(self, posts: Sequence[ScoredPost]) -> list[tuple[bool, WindowSummary]]:
        """Take posts in order; what happened, in the order it happened: `(True, copy)`
        when a window ended (a copy as it stood then), `(False, window)` when it closed.
        The order depends on the posts' order only, never on how they are batched."""
        closed: list[tuple[bool, WindowSummary]] = []
        seconds, lateness, keywords = self.seconds, self.lateness, self.keywords
        topics = self.topics if self.topics else None  # tested once, not per post
        judge, open_windows, clusters = self.viral.judge, self.open, self._cluster_subjects
        heappush, heapreplace = heapq.heappush, heapq.heapreplace
        for scored in posts:
            post = scored.post
            t = post.created_at.timestamp()
            index = math.floor(t / seconds)
            start = index * seconds
            if start + seconds <= self.watermark:
                self.late += 1
                continue
            window = open_windows.get(index)
            if window is None:
                window = open_windows[index] = WindowSummary(start, seconds)
                self._oldest_end = min(self._oldest_end, start + seconds)
                if start + seconds > self._ended_through:
                    self._next_end = min(self._next_end, start + seconds)
            window.total += 1
            sentiment = scored.sentiment
            compound = sentiment.compound
            candidate = judge(scored)
            if candidate is not None:
                window.viral.append(candidate)
            negative = sentiment.label == "negative"
            squared = compound * compound
            strength = compound if compound >= 0 else -compound
            subjects = window.subjects
            # `post_subjects` and `SubjectWindow.add`, written out: this runs for every
            # subject of every post, and calls cost more here than the counting does.
            cluster_id = scored.cluster.id
            cluster = clusters.get(cluster_id)
            if cluster is None:
                cluster = clusters[cluster_id] = f"cluster:{cluster_id}"
            names = [cluster]
            for tag in post.hashtags:
                name = "#" + tag.lower()
                if name not in names:
                    names.append(name)
            if keywords:
                names += post_subjects(scored, keywords)[len(names) :]
            if topics is not None:
                names += ["topic:" + name for name in topics.match(scored)]
            for name in names:
                target = subjects.get(name)
                if target is None:
                    target = subjects[name] = SubjectWindow()
                    if name is cluster:
                        target.label = scored.cluster.label
                target.count += 1
                target.compound_sum += compound
                target.compound_squares += squared
                target.negative += negative
                samples = target.samples
                if len(samples) < MAX_SAMPLES:
                    heappush(samples, (strength, post.id, scored))
                elif strength >= samples[0][0]:  # compared in full only when it may get in
                    entry = (strength, post.id, scored)
                    if entry[:2] > samples[0][:2]:
                        heapreplace(samples, entry)
            if t >= self._next_end:
                closed += [(True, w) for w in self._end_until(t)]
            if t - lateness > self.watermark:
                self.watermark = t - lateness
                if self.watermark >= self._oldest_end:
                    closed += [(False, w) for w in self._close_until(self.watermark)]
        return closed

    def flush(self) -> list[WindowSummary]:
        """Close every open window (the end of a replay); later posts count as late."""
        self.watermark = math.inf
        self._ended_through = math.inf
        return self._close_until(math.inf)

    def _end_until(self, t: float) -> list[WindowSummary]:
        ended = sorted(i for i, w in self.open.items() if self._ended_through < w.end <= t)
        self._ended_through = t
        self._next_end = min((w.end for w in self.open.values() if w.end > t), default=math.inf)
        return [self.open[i].snapshot() for i in ended]

    def _close_until(self, watermark: float) -> list[WindowSummary]:
        done = sorted(i for i, w in self.open.items() if w.end <= watermark)
        closed = [self.open.pop(i) for i in done]
        self._oldest_end = min((w.end for w in self.open.values()), default=math.inf)
        return closed
