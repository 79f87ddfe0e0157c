"""Event-time windowed aggregates behind the dashboard, bounded in memory."""

from __future__ import annotations

import heapq
import math
import re
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from insights.tracked import NO_TOPICS, TopicMatcher
from streaming.metrics import percentile
from streaming.records import URL_OR_MENTION_RE, ScoredPost

_WORD_RE = re.compile(r"(?u)\b[^\W\d_]{3,}\b")
_NOISE_RE = re.compile(f"{URL_OR_MENTION_RE.pattern}|#\\w+", re.IGNORECASE)
_MAX_WORDS_PER_WINDOW = 3000
FEED_SIZE = 50
# What a feed item shows: a third less to send to every viewer, several times a second, than
# the whole scored record (the API and the scored topic carry that).
FEED_FIELDS = (
    "id",
    "text",
    "author",
    "created_at",
    "hashtags",
    "lang",
    "sentiment",
    "cluster",
    "engagement",
    "model_version",
    "latency_ms",
)
RECENT_IDS_KEPT = 100_000
RECENT_LETTERS_KEPT = 10_000


class RecentIds:
    """The last `capacity` post ids seen, in bounded memory (about 10 MB at 100,000).

    Kafka delivers at least once: after a worker restart a batch can arrive twice, and a
    redelivered post must not count twice. Redeliveries come close behind the original, so
    remembering the most recent ids is enough.
    """

    def __init__(self, capacity: int = RECENT_IDS_KEPT) -> None:
        self.capacity = capacity
        self._ids: set[str] = set()
        self._order: deque[str] = deque()

    def add(self, post_id: str) -> bool:
        """Remember `post_id`; False if it was already among the recent ids."""
        if post_id in self._ids:
            return False
        self._ids.add(post_id)
        self._order.append(post_id)
        if len(self._order) > self.capacity:
            self._ids.discard(self._order.popleft())
        return True


@dataclass
class Window:
    """Counts for one event-time window."""

    count: int = 0
    compound_sum: float = 0.0
    labels: Counter = field(default_factory=Counter)
    clusters: Counter = field(default_factory=Counter)
    hashtags: Counter = field(default_factory=Counter)
    words: Counter = field(default_factory=Counter)
    # Per tracked topic: posts, and the sum of their compound scores.
    tracked: Counter = field(default_factory=Counter)
    tracked_compound: Counter = field(default_factory=Counter)

    def add(
        self, scored: ScoredPost, stop_words: frozenset[str], topics: Sequence[str] = ()
    ) -> None:
        self.count += 1
        self.compound_sum += scored.sentiment.compound
        self.labels[scored.sentiment.label] += 1
        self.clusters[scored.cluster.id] += 1
        self.hashtags.update(scored.post.hashtags)
        text = _NOISE_RE.sub(" ", scored.post.text)
        self.words.update(
            w for w in (m.lower() for m in _WORD_RE.findall(text)) if w not in stop_words
        )
        if len(self.words) > _MAX_WORDS_PER_WINDOW:
            # Keep the window bounded: rare words cannot reach a word cloud anyway.
            self.words = Counter(dict(self.words.most_common(_MAX_WORDS_PER_WINDOW // 2)))
        for name in topics:
            self.tracked[name] += 1
            self.tracked_compound[name] += scored.sentiment.compound


class LiveAggregates:
    """What the dashboard shows, updated by the stream and read by the emitter.

    Windows are keyed by event time (`created_at`), so a replayed stream draws its own
    history; only the newest `windows_kept` windows are kept, so memory stays flat.
    """

    def __init__(
        self,
        window_seconds: int = 10,
        windows_kept: int = 60,
        stop_words: frozenset[str] = frozenset(),
        trending_windows: int = 6,
        recent_ids: int = RECENT_IDS_KEPT,
    ) -> None:
        self.window_seconds = window_seconds
        self.windows_kept = windows_kept
        self.trending_windows = trending_windows
        self.stop_words = stop_words
        self._lock = threading.Lock()
        self._windows: OrderedDict[int, Window] = OrderedDict()
        self._new_posts: deque[ScoredPost] = deque(maxlen=FEED_SIZE)
        # The newest posts, whether sent or not: what a viewer who connects now sees first.
        self._latest: deque[ScoredPost] = deque(maxlen=FEED_SIZE)
        # When each post since the last update entered SocialPulse: every post counts toward
        # the latency figures, not only the ones shown in the feed.
        self._pending_received: list[float] = []
        self._rate_marks: deque[tuple[float, int]] = deque()
        self._latencies: deque[float] = deque(maxlen=2000)
        self._cluster_labels: dict[int, str] = {}
        self._recent_ids = RecentIds(recent_ids)
        self._recent_letters = RecentIds(RECENT_LETTERS_KEPT)
        self.total = 0
        self.duplicates = 0
        self.dead_lettered = 0
        self.late = 0
        self.version = 0  # bumps on every change
        self.model_version = ""
        self.topics: TopicMatcher = NO_TOPICS

    def track(self, topics: TopicMatcher, earlier: Sequence[ScoredPost] = ()) -> None:
        """Count posts per tracked topic from now on. Topics new here are counted in the
        kept windows from `earlier` (the archive's posts of those windows: counted here
        already, since the archive is written after the dashboard, or with Kafka read by
        this node within moments); topics no longer tracked are forgotten."""
        with self._lock:
            added = set(topics.names) - set(self.topics.names)
            self.topics = topics
            for window in self._windows.values():
                for name in set(window.tracked) - set(topics.names):
                    del window.tracked[name]
                    window.tracked_compound.pop(name, None)
            for scored in earlier if added else ():
                key = int(scored.post.created_at.timestamp()) // self.window_seconds
                window = self._windows.get(key)
                if window is not None:
                    for name in topics.match(scored):
                        if name in added:
                            window.tracked[name] += 1
                            window.tracked_compound[name] += scored.sentiment.compound
            self.version += 1

    def kept_since(self) -> float | None:
        """When the oldest kept window starts (None before any post)."""
        with self._lock:
            if not self._windows:
                return None
            return float(next(iter(self._windows)) * self.window_seconds)

    # -- writers (stream thread) ----------------------------------------------------------
    def add(self, batch: Sequence[ScoredPost]) -> list[ScoredPost]:
        """Count each post once: a post id seen recently is a redelivery, not a new post.
        Returns the posts that were new."""
        if not batch:
            return []
        with self._lock:
            fresh = [s for s in batch if self._recent_ids.add(s.post.id)]
            self.duplicates += len(batch) - len(fresh)
            batch = fresh
            if not batch:
                return []
            self._count_locked(batch)
            self._new_posts.extend(batch[-FEED_SIZE:])
            self._latest.extend(batch[-FEED_SIZE:])
            if len(self._pending_received) < 100_000:
                self._pending_received.extend(s.received_at for s in batch if s.received_at)
            self.total += len(batch)
            self._rate_marks.append((time.monotonic(), len(batch)))
            self.model_version = batch[-1].model_version
            self.version += 1
            return batch

    def restore(
        self,
        posts: Sequence[ScoredPost],
        feed: Sequence[ScoredPost] = (),
        recent_ids: Sequence[str] = (),
        total: int = 0,
        dead_lettered: int = 0,
        recent_letters: Sequence[str] = (),
    ) -> None:
        """Start from history (the archive): `posts` fill the windows, `feed` (oldest
        first) is what a new viewer sees first, `recent_ids` (and `recent_letters`, dead
        letters' keys) are remembered so that what is delivered again is not counted
        again, and `total`/`dead_lettered` are the counts so far (the restored posts
        included). Nothing restored counts toward the rate or the
        latency figures."""
        with self._lock:
            fresh = [s for s in posts if self._recent_ids.add(s.post.id)]
            for post_id in recent_ids:
                self._recent_ids.add(post_id)
            for key in recent_letters:
                self._recent_letters.add(key)
            self._count_locked(fresh)
            self._latest.extend(feed[-FEED_SIZE:])
            self.total += total
            self.dead_lettered += dead_lettered
            if feed:
                self.model_version = feed[-1].model_version
            self.version += 1

    def _count_locked(self, batch: Sequence[ScoredPost]) -> None:
        """Add posts to their event-time windows (the lock is held)."""
        topics = self.topics if self.topics else None  # tested once, not per post
        for scored in batch:
            key = int(scored.post.created_at.timestamp()) // self.window_seconds
            window = self._windows.get(key)
            if window is None:
                if (
                    self._windows
                    and len(self._windows) >= self.windows_kept
                    and key < next(iter(self._windows))
                ):
                    self.late += 1  # older than anything kept: counted, not drawn
                    continue
                # Compare with the newest key before inserting: afterwards it is `key`.
                out_of_order = bool(self._windows) and key < next(reversed(self._windows))
                window = self._windows[key] = Window()
                if out_of_order:
                    self._windows = OrderedDict(sorted(self._windows.items()))
                while len(self._windows) > self.windows_kept:
                    self._windows.popitem(last=False)
            window.add(scored, self.stop_words, topics.match(scored) if topics else ())
            self._cluster_labels[scored.cluster.id] = scored.cluster.label

    def resize(self, window_seconds: int, windows_kept: int, trending_windows: int) -> None:
        """Show windows of another length, `windows_kept` of them, trending over the newest
        `trending_windows`: done before posts arrive (the windows kept so far are emptied)."""
        with self._lock:
            self.window_seconds = window_seconds
            self.windows_kept = windows_kept
            self.trending_windows = trending_windows
            self._windows.clear()
            self.version += 1

    def count_earlier(self, scored: int, dead_lettered: int) -> None:
        """Count posts and dead letters from before this node's history starts (in totals
        only), so every node reports the same totals whenever it started."""
        with self._lock:
            self.total += scored
            self.dead_lettered += dead_lettered
            self.version += 1

    def add_dead_letters(self, count: int, keys: Sequence[str] | None = None) -> None:
        """Count dead letters; with `keys` (one per letter, the same for the same input
        from the same place), a letter seen recently is a redelivery and not counted."""
        with self._lock:
            if keys is not None:
                count = sum(1 for key in keys if self._recent_letters.add(key))
            if count:
                self.dead_lettered += count
                self.version += 1

    # -- readers (emitter thread) ---------------------------------------------------------
    def take_update(self, now: float | None = None) -> dict[str, Any]:
        """The dashboard payload: posts new since the last call, plus the current state."""
        now = time.time() if now is None else now
        with self._lock:
            posts = list(self._new_posts)
            self._new_posts.clear()
            received, self._pending_received = self._pending_received, []
            step = max(1, len(received) // 500)  # a sample is enough for percentiles
            self._latencies.extend(max(0.0, now - r) * 1000.0 for r in received[::step])
            payload = self._state_locked()
        # When the posts of this update entered SocialPulse: the oldest, the newest, how many.
        payload["oldest_received_at"] = min(received) if received else None
        payload["newest_received_at"] = max(received) if received else None
        payload["new_posts"] = len(received)
        payload["posts"] = _feed(posts, now)
        return payload

    def latest_posts(self, now: float | None = None) -> list[dict[str, Any]]:
        """The newest posts already sent in an update, as feed items, newest first: a new
        viewer's feed. The posts still to be sent come in the next update (once)."""
        now = time.time() if now is None else now
        with self._lock:
            pending = {id(s) for s in self._new_posts}
            posts = [s for s in self._latest if id(s) not in pending]
        return _feed(posts, now)

    def state(self) -> dict[str, Any]:
        with self._lock:
            return self._state_locked()

    def tracked_state(self) -> dict[str, Any]:
        """The tracked topics' part of `state`, without the rest."""
        with self._lock:
            return _tracked_state(self.topics.names, list(self._windows.items()))

    def word_frequencies(self, limit: int = 150) -> dict[str, int]:
        """Words and hashtags of the kept windows, for the word cloud."""
        with self._lock:
            total: Counter = Counter()
            for window in self._windows.values():
                total.update(window.words)
                total.update({"#" + tag: n for tag, n in window.hashtags.items()})
        return dict(total.most_common(limit))

    def _state_locked(self) -> dict[str, Any]:
        cutoff = time.monotonic() - 5.0
        while self._rate_marks and self._rate_marks[0][0] < cutoff:
            self._rate_marks.popleft()
        recent = sum(n for _, n in self._rate_marks)
        span = 5.0 if self._rate_marks else 1.0
        windows = list(self._windows.items())
        count = sum(w.count for _, w in windows)
        compound = sum(w.compound_sum for _, w in windows)
        latencies = list(self._latencies)
        clusters: Counter = Counter()
        for _, window in windows:
            clusters.update(window.clusters)
        trending_now: Counter = Counter()
        trending_before: Counter = Counter()
        half = self.trending_windows
        for _, window in windows[-half:]:
            trending_now.update(window.hashtags)
        for _, window in windows[-2 * half : -half]:
            trending_before.update(window.hashtags)
        return {
            "tracked": _tracked_state(self.topics.names, windows),
            "stats": {
                "total": self.total,
                "posts_per_second": round(recent / span, 1),
                "mean_sentiment": round(compound / count, 3) if count else None,
                "latency_p50_ms": percentile(latencies, 0.50),
                "latency_p99_ms": percentile(latencies, 0.99),
                "dead_lettered": self.dead_lettered,
                "model_version": self.model_version,
            },
            "sentiment_series": [
                {
                    "start": datetime.fromtimestamp(key * self.window_seconds, UTC).isoformat(),
                    "count": w.count,
                    "mean": round(w.compound_sum / w.count, 3) if w.count else 0.0,
                    "positive": w.labels["positive"],
                    "neutral": w.labels["neutral"],
                    "negative": w.labels["negative"],
                }
                for key, w in windows
            ],
            "clusters": [
                {"id": cid, "label": self._cluster_labels.get(cid, str(cid)), "count": n}
                for cid, n in sorted(clusters.items())
            ],
            "trending": [
                {"tag": tag, "count": n, "delta": n - trending_before.get(tag, 0)}
                # Ties by name: every node lists the same ten, whatever order posts came in.
                for tag, n in heapq.nsmallest(
                    10, trending_now.items(), key=lambda item: (-item[1], item[0])
                )
            ],
        }


def _tracked_state(names: Sequence[str], windows: list[tuple[int, Window]]) -> dict[str, Any]:
    """Per tracked topic over the kept windows (aligned with `sentiment_series`): posts and
    mean compound per window, and over the whole span its posts, mean compound and share of
    voice (its posts among all tracked topics' posts)."""
    if not names:
        return {"topics": []}
    totals = {name: sum(w.tracked[name] for _, w in windows) for name in names}
    everything = sum(totals.values())
    topics = []
    for name in names:
        compound = sum(w.tracked_compound[name] for _, w in windows)
        topics.append(
            {
                "name": name,
                "counts": [w.tracked[name] for _, w in windows],
                "means": [
                    round(w.tracked_compound[name] / w.tracked[name], 3)
                    if w.tracked[name]
                    else None
                    for _, w in windows
                ],
                "total": totals[name],
                "mean_sentiment": round(compound / totals[name], 3) if totals[name] else None,
                "share": round(totals[name] / everything, 4) if everything else 0.0,
            }
        )
    return {"topics": topics}


def _feed(posts: Sequence[ScoredPost], now: float) -> list[dict[str, Any]]:
    """Feed items of `posts` (oldest first), newest first."""
    feed = []
    for scored in reversed(posts):
        full = scored.to_dict()
        record = {name: full[name] for name in FEED_FIELDS}
        record["e2e_ms"] = round(max(0.0, now - scored.received_at) * 1000.0, 1)
        feed.append(record)
    return feed


# Window lengths a long replay may use (s): the shortest that draws its whole span in at
# most MAX_SHOWN_WINDOWS bars.
WINDOW_LADDER = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MAX_SHOWN_WINDOWS = 120


def fit_windows(span: float | None, window_seconds: int, windows_kept: int) -> tuple[int, int]:
    """(window length, windows kept) that show `span` seconds of event time whole: the
    live settings for a short span, minutes or hours for one of days."""
    if not span or span <= window_seconds * windows_kept:
        return window_seconds, windows_kept
    window = WINDOW_LADDER[-1]
    for candidate in WINDOW_LADDER:
        if candidate >= window_seconds and span / candidate <= MAX_SHOWN_WINDOWS:
            window = candidate
            break
    return window, max(windows_kept, math.ceil(span / window) + 1)
