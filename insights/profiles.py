"""Author profiles: what each author posts about, when and how, and what it earns.

`AuthorProfiles` folds batches of scored posts into one `AuthorProfile` per author and
keeps a short list of recent well-engaging posts ("content to show them"). It is fed by the
live stream and can be rebuilt from the archive (`rebuild`). Memory is bounded: at most
`max_authors` profiles (the least recently seen go first), profiles idle for `max_idle`
seconds of event time are dropped, and each profile keeps at most `MAX_HASHTAGS` hashtags
and `MAX_TOPICS` topics.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from streaming.records import ScoredPost

MAX_HASHTAGS = 8  # per profile: past twice as many, only the most used are kept
MAX_TOPICS = 24  # per profile: topic clusters are few, this only guards against churn
RECENT_POSTS = 2_000  # recent posts kept for "content to show them"
BEST_PER_BATCH = 16  # of each batch, the best-engaging posts kept among them
TEXT_KEPT = 280  # characters of an author's last post kept as an example
DAY = 86_400.0

# Layout of `AuthorProfile.stats` (one array of doubles: compact and quick to update).
HOURS = 0  # 24 post counts by hour of day (UTC)
HOUR_SUM = 24  # 24 sums of engagement by hour
HOUR_SQ = 48  # 24 sums of squared engagement by hour
WEEKEND = 72  # posts on Saturdays and Sundays
REPLIES, MENTIONS, LINKS, EMOJI = 73, 74, 75, 76  # posts that have each
SENTIMENT, OBSERVED_N, PREDICTED_SUM = 77, 78, 79
N_STATS = 80
_ZEROS = bytes(8 * N_STATS)

EngagementTotals = tuple[float, float, float]  # posts, engagement sum, engagement² sum


def engagement_of(scored: ScoredPost) -> tuple[float, bool]:
    """The post's engagement (likes + shares + replies) when observed, else the predicted
    one; and whether it was observed."""
    observed = scored.post.engagement
    if observed:
        return float(sum(observed.values())), True
    return float(scored.engagement.predicted), False


class AuthorProfile:
    """Running totals of one author's posts (event time, UTC).

    Attributes:
        handle: the author.
        n_posts: posts seen.
        first_seen / last_seen: event times (epoch seconds) of the first and last post.
        followers: the last follower count seen (None: never given).
        topics: cluster id → (posts, engagement sum, engagement² sum).
        hashtags: hashtag → (posts, engagement sum, engagement² sum) (the top `MAX_HASHTAGS`).
        stats: the counters laid out as the module's constants say.
        last_text: the beginning of the newest post.
    """

    __slots__ = (
        "first_seen",
        "followers",
        "handle",
        "hashtags",
        "last_seen",
        "last_text",
        "n_posts",
        "stats",
        "topics",
    )

    def __init__(self, handle: str) -> None:
        self.handle = handle
        self.n_posts = 0
        self.first_seen = math.inf
        self.last_seen = -math.inf
        self.followers: int | None = None
        # Tuples of floats and arrays, not lists: the collector stops scanning such tuples
        # and never scans arrays (many profiles, few pauses). A new tuple per post costs
        # less than three updates in place.
        self.topics: dict[int, EngagementTotals] = {}
        self.hashtags: dict[str, EngagementTotals] = {}
        self.stats = array("d", _ZEROS)
        self.last_text = ""

    def add(self, scored: ScoredPost, stamp: float | None = None) -> float:
        """Count one post (`stamp`: its time in epoch seconds, when known already); the
        engagement it was counted with. Written for speed: it runs for every live post."""
        post = scored.post
        when = post.created_at
        if stamp is None:
            stamp = when.timestamp()
        observed = post.engagement
        value = float(sum(observed.values())) if observed else float(scored.engagement.predicted)
        square = value * value
        stats = self.stats
        hour = when.hour
        stats[hour] += 1.0  # HOURS + hour
        stats[HOUR_SUM + hour] += value
        stats[HOUR_SQ + hour] += square
        if when.weekday() >= 5:
            stats[WEEKEND] += 1.0
        text = post.text
        if text[:1] == "@":
            stats[REPLIES] += 1.0
        if post.mentions:
            stats[MENTIONS] += 1.0
        if post.urls:
            stats[LINKS] += 1.0
        if post.emoji:
            stats[EMOJI] += 1.0
        stats[SENTIMENT] += scored.sentiment.compound
        if observed:
            stats[OBSERVED_N] += 1.0
        stats[PREDICTED_SUM] += scored.engagement.predicted
        topics = self.topics
        cluster = scored.cluster.id
        totals = topics.get(cluster)
        if totals is not None:
            topics[cluster] = (totals[0] + 1.0, totals[1] + value, totals[2] + square)
        else:
            if len(topics) >= MAX_TOPICS:  # rare: topic clusters are few
                del topics[min(topics, key=lambda c: topics[c][0])]
            topics[cluster] = (1.0, value, square)
        if post.hashtags:
            hashtags = self.hashtags
            for tag in post.hashtags:
                totals = hashtags.get(tag)
                hashtags[tag] = (
                    (1.0, value, square)
                    if totals is None
                    else (totals[0] + 1.0, totals[1] + value, totals[2] + square)
                )
            if len(hashtags) > 2 * MAX_HASHTAGS:
                # Pruned in bulk, not one by one: an author of many hashtags costs a sort
                # now and then, not a scan for every new one.
                ranked = sorted(hashtags.items(), key=lambda item: -item[1][0])
                self.hashtags = dict(ranked[:MAX_HASHTAGS])
        if post.author_followers is not None:
            self.followers = post.author_followers
        self.n_posts += 1
        if stamp < self.first_seen:
            self.first_seen = stamp
        if stamp >= self.last_seen:
            self.last_seen = stamp
            # The text itself, not a copy, unless it is long (memory stays bounded).
            self.last_text = text if len(text) <= TEXT_KEPT else text[:TEXT_KEPT]
        return value

    def copy(self) -> AuthorProfile:
        """An independent copy (a refit reads copies while the stream goes on updating)."""
        other = AuthorProfile(self.handle)
        other.n_posts = self.n_posts
        other.first_seen = self.first_seen
        other.last_seen = self.last_seen
        other.followers = self.followers
        other.topics = dict(self.topics)  # the totals are tuples: shared, never changed
        other.hashtags = dict(self.hashtags)
        other.stats = array("d", self.stats)
        other.last_text = self.last_text
        return other

    # -- derived figures ------------------------------------------------------------------
    def days_active(self) -> float:
        """Days between the first and last post (at least one)."""
        return max(1.0, (self.last_seen - self.first_seen) / DAY)

    def posts_per_day(self) -> float:
        return self.n_posts / self.days_active()

    def share(self, index: int) -> float:
        return self.stats[index] / self.n_posts if self.n_posts else 0.0

    def hour_profile(self) -> list[float]:
        """Share of posts per hour of day."""
        n = max(1, self.n_posts)
        return [self.stats[HOURS + h] / n for h in range(24)]

    def mean_sentiment(self) -> float:
        return self.share(SENTIMENT)

    def mean_engagement(self) -> float:
        # Every post is counted in one hour: the hours' sums add up to the whole.
        n = self.n_posts
        return sum(self.stats[HOUR_SUM : HOUR_SUM + 24]) / n if n else 0.0

    def mean_predicted(self) -> float:
        return self.share(PREDICTED_SUM)

    def observed_share(self) -> float:
        return self.share(OBSERVED_N)

    def topic_shares(self) -> dict[int, float]:
        n = max(1, self.n_posts)
        return {cluster: totals[0] / n for cluster, totals in self.topics.items()}

    def top_hashtags(self, n: int = 5) -> list[str]:
        ranked = sorted(self.hashtags.items(), key=lambda item: (-item[1][0], item[0]))
        return [tag for tag, _ in ranked[:n]]

    def to_dict(self, topic_labels: dict[int, str] | None = None) -> dict[str, Any]:
        """What the API and exports show of one author."""
        labels = topic_labels or {}
        top_topics = sorted(self.topics.items(), key=lambda item: -item[1][0])[:3]
        return {
            "handle": self.handle,
            "posts": self.n_posts,
            "posts_per_day": round(self.posts_per_day(), 3),
            "followers": self.followers,
            "top_topics": [labels.get(c, f"topic {c}") for c, _ in top_topics],
            "top_hashtags": self.top_hashtags(),
            "sentiment": round(self.mean_sentiment(), 3),
            "engagement": round(self.mean_engagement(), 2),
            "observed_share": round(self.observed_share(), 3),
        }


@dataclass(frozen=True, slots=True)
class RecentPost:
    """A recent post kept as a candidate for "content to show them"."""

    id: str
    text: str
    author: str
    cluster: int
    hashtags: tuple[str, ...]
    engagement: float
    observed: bool
    created_at: float


class AuthorProfiles:
    """Every author's profile, bounded in number and age; thread-safe.

    Args:
        max_authors: the most profiles kept; past it, the tenth seen least recently go.
        max_idle: seconds of event time after which an author not seen again is dropped
            (0: never).
        recent_posts: how many recent posts are kept as content candidates.
    """

    def __init__(
        self,
        max_authors: int = 20_000,
        max_idle: float = 30 * DAY,
        recent_posts: int = RECENT_POSTS,
    ) -> None:
        if max_authors < 1:
            raise ValueError("max_authors must be at least 1")
        self.max_authors = max_authors
        self.max_idle = max_idle
        self._profiles: dict[str, AuthorProfile] = {}
        self._recent: deque[RecentPost] = deque(maxlen=recent_posts)
        self._lock = threading.Lock()
        self.newest = -math.inf  # the newest event time seen
        self.topic_labels: dict[int, str] = {}  # cluster id → its label when last seen
        self.posts_seen = 0
        self.evicted = 0  # profiles dropped for the cap or for age

    def __len__(self) -> int:
        return len(self._profiles)

    def update(self, batch: Sequence[ScoredPost]) -> None:
        """Fold a batch of scored posts into the profiles."""
        if not batch:
            return
        with self._lock:
            profiles = self._profiles
            labels = self.topic_labels
            values = []
            append = values.append
            newest = self.newest
            for scored in batch:
                post = scored.post
                profile = profiles.get(post.author)
                if profile is None:
                    profile = profiles[post.author] = AuthorProfile(post.author)
                stamp = post.created_at.timestamp()
                append(profile.add(scored, stamp))
                if stamp > newest:
                    newest = stamp
                cluster = scored.cluster
                if cluster.id not in labels:
                    labels[cluster.id] = cluster.label
            self.newest = newest
            self.posts_seen += len(batch)
            # The recent candidates: only the batch's best few.
            best = sorted(range(len(batch)), key=values.__getitem__)[-BEST_PER_BATCH:]
            for index in best:
                scored = batch[index]
                value = values[index]
                observed = bool(scored.post.engagement)
                post = scored.post
                self._recent.append(
                    RecentPost(
                        post.id,
                        post.text[:TEXT_KEPT],
                        post.author,
                        scored.cluster.id,
                        post.hashtags,
                        value,
                        observed,
                        post.created_at.timestamp(),
                    )
                )
            if len(profiles) > self.max_authors:
                self._evict()

    def _evict(self) -> None:
        """Over the cap: drop the authors seen least recently (event time), a tenth of the
        cap at once, so this sort runs once per many new authors, not for every one."""
        keep = self.max_authors - self.max_authors // 10
        ranked = sorted(self._profiles.values(), key=lambda p: p.last_seen)
        for profile in ranked[: len(ranked) - keep]:
            del self._profiles[profile.handle]
        self.evicted += max(0, len(ranked) - keep)

    def age_out(self, now: float | None = None) -> int:
        """Drop authors idle for longer than `max_idle` (event time; default: the newest
        post seen); how many went."""
        if self.max_idle <= 0:
            return 0
        with self._lock:
            cutoff = (self.newest if now is None else now) - self.max_idle
            stale = [h for h, p in self._profiles.items() if p.last_seen < cutoff]
            for handle in stale:
                del self._profiles[handle]
            self.evicted += len(stale)
        return len(stale)

    def rebuild(self, posts: Iterable[Sequence[ScoredPost]]) -> int:
        """Start again from `posts` (batches, e.g. read from the archive); posts counted."""
        with self._lock:
            self._profiles.clear()
            self._recent.clear()
            self.topic_labels.clear()
            self.newest = -math.inf
            self.posts_seen = 0
        for batch in posts:
            self.update(batch)
        self.age_out()
        return self.posts_seen

    def get(self, handle: str) -> AuthorProfile | None:
        """A copy of the author's profile as it is now (None: not seen)."""
        with self._lock:
            profile = self._profiles.get(handle)
            return profile.copy() if profile is not None else None

    def eligible(self, min_posts: int) -> list[AuthorProfile]:
        """Copies of the profiles of authors with at least `min_posts` posts: a consistent
        snapshot that the stream's updates do not change while a refit reads it."""
        with self._lock:
            return [p.copy() for p in self._profiles.values() if p.n_posts >= min_posts]

    def recent(self) -> list[RecentPost]:
        with self._lock:
            return list(self._recent)


def profiles_from_posts(
    posts: Iterable[ScoredPost], max_authors: int = 1_000_000, max_idle: float = 0.0
) -> AuthorProfiles:
    """Profiles of a finite collection of posts (evaluation, notebooks, exports)."""
    book = AuthorProfiles(max_authors=max_authors, max_idle=max_idle)
    chunk: list[ScoredPost] = []
    for scored in posts:
        chunk.append(scored)
        if len(chunk) >= 1000:
            book.update(chunk)
            chunk = []
    book.update(chunk)
    return book


def archive_batches(
    store: Any, since: float = 0.0, chunk: int = 5_000, limit: int | None = None
) -> Iterable[list[ScoredPost]]:
    """The archived posts created at or after `since`, oldest first, in batches of
    `chunk` (keyset pages, so memory stays at one batch); at most `limit` posts."""
    from archive.store import scored_from_row

    served = 0
    for rows in store.pages(since, size=chunk if limit is None else max(1, min(chunk, limit))):
        if limit is not None:
            rows = rows[: limit - served]
        if not rows:
            return
        served += len(rows)
        yield [scored_from_row(r) for r in rows]
