"""What each audience segment is like, and what to do for it.

A segment's profile: size and growth, top interests and hashtags, active hours, sentiment,
engagement, representative authors and posts, and the features where it differs most from
everyone else, in plain words. Its recommendations: the topics, hashtags and posting hours
whose posts by the segment's authors earn the most engagement, each with its lift over the
segment's average post, the number of posts behind it and a 95 % confidence interval of
its mean (options are ranked by the interval's lower end); nothing is recommended from
fewer than `min_posts` posts. Engagement is the
observed one (likes + shares + replies) where posts carry it, else the predicted one; each
recommendation says which (`basis`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from insights.profiles import (
    HOUR_SQ,
    HOUR_SUM,
    HOURS,
    SENTIMENT,
    AuthorProfile,
    RecentPost,
)
from insights.segments import Feature, FeatureSpace

Z95 = 1.96
DISTINGUISHING = 5  # features named per segment
REPRESENTATIVES = 5


class Totals:
    """Posts, engagement sum and sum of squares of one option (a topic, hashtag or hour)."""

    __slots__ = ("n", "squares", "total")

    def __init__(self) -> None:
        self.n = 0.0
        self.total = 0.0
        self.squares = 0.0

    def add(self, n: float, total: float, squares: float) -> None:
        self.n += n
        self.total += total
        self.squares += squares

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    def interval(self) -> tuple[float, float]:
        """95 % normal-approximation interval of the mean."""
        if self.n < 2:
            return (self.mean, self.mean)
        variance = max(0.0, (self.squares - self.n * self.mean**2) / (self.n - 1))
        half = Z95 * math.sqrt(variance / self.n)
        return (max(0.0, self.mean - half), self.mean + half)


def _rank(
    options: dict[Any, Totals], overall: float, min_posts: int, basis: str, top: int
) -> list[dict[str, Any]]:
    ranked = [(key, totals) for key, totals in options.items() if totals.n >= max(1, min_posts)]
    # Ranked by the lower end of the interval: a high mean from a handful of posts does not
    # outrank a slightly lower one that many posts confirm.
    ranked.sort(key=lambda item: (-item[1].interval()[0], -item[1].mean, str(item[0])))
    out = []
    for key, totals in ranked[:top]:
        low, high = totals.interval()
        out.append(
            {
                "value": key,
                "posts": int(totals.n),
                "mean_engagement": round(totals.mean, 2),
                "ci95": [round(low, 2), round(high, 2)],
                "lift": round(totals.mean / overall, 3) if overall > 0 else None,
                "basis": basis,
            }
        )
    return out


def recommendations(
    members: Sequence[AuthorProfile],
    topic_labels: dict[int, str],
    min_posts: int,
    top: int = 5,
) -> dict[str, Any]:
    """Topics, hashtags and posting hours that bring these authors the most engagement."""
    topics: dict[int, Totals] = {}
    hashtags: dict[str, Totals] = {}
    hours = [Totals() for _ in range(24)]
    overall = Totals()
    observed = 0.0
    for profile in members:
        stats = profile.stats
        for cluster, (n, total, squares) in profile.topics.items():
            topics.setdefault(cluster, Totals()).add(n, total, squares)
            overall.add(n, total, squares)
        for tag, (n, total, squares) in profile.hashtags.items():
            hashtags.setdefault(tag, Totals()).add(n, total, squares)
        for h in range(24):
            if stats[HOURS + h]:
                hours[h].add(stats[HOURS + h], stats[HOUR_SUM + h], stats[HOUR_SQ + h])
        observed += profile.observed_share() * profile.n_posts
    share = observed / overall.n if overall.n else 0.0
    basis = "observed" if share >= 0.99 else "predicted" if share <= 0.01 else "mixed"
    mean = overall.mean
    topic_rows = _rank(topics, mean, min_posts, basis, top)
    for row in topic_rows:
        row["label"] = topic_labels.get(row["value"], f"topic {row['value']}")
    hour_rows = _rank(dict(enumerate(hours)), mean, min_posts, basis, top)
    for row in hour_rows:
        row["label"] = f"{row['value']:02d}:00–{row['value']:02d}:59 UTC"
    tag_rows = _rank(hashtags, mean, min_posts, basis, top)
    for row in tag_rows:
        row["label"] = "#" + row["value"]
    return {
        "posts": int(overall.n),
        "mean_engagement": round(mean, 2),
        "basis": basis,
        "observed_share": round(share, 3),
        "min_posts": min_posts,
        "topics": topic_rows,
        "hashtags": tag_rows,
        "hours": hour_rows,
    }


def _format(value: float, column: Feature) -> str:
    if column.unit == "share":
        return f"{value * 100:.0f} %"
    if column.unit == "log":
        return f"{math.expm1(value):.1f}"
    return f"{value:+.2f}"


def distinguishing(
    center_raw: np.ndarray, space: FeatureSpace, top: int = DISTINGUISHING
) -> list[dict[str, Any]]:
    """The features where a segment's mean differs most from everyone's (in standard
    deviations), in words: "more posts about #nba · lakers (62 % vs 14 % overall)"."""
    z = space.standardise(center_raw)
    active = space.multiplier_ > 0
    order = [i for i in np.argsort(-np.abs(z)).tolist() if active[i]][:top]
    out = []
    for i in order:
        column = space.columns[i]
        direction = "more" if z[i] > 0 else "fewer" if column.unit == "share" else "less"
        if column.unit != "share":
            direction = "higher" if z[i] > 0 else "lower"
        ours, everyone = _format(center_raw[i], column), _format(space.mean_[i], column)
        out.append(
            {
                "feature": column.key,
                "block": column.block,
                "z": round(float(z[i]), 2),
                "words": f"{direction} {column.words} ({ours} vs {everyone} overall)",
            }
        )
    return out


def segment_profile(
    segment_id: int,
    members: Sequence[AuthorProfile],
    member_rows: np.ndarray,
    center_raw: np.ndarray,
    space: FeatureSpace,
    topic_labels: dict[int, str],
    previous_size: int | None,
) -> dict[str, Any]:
    """The profile of one segment (what the page, the API and the report show)."""
    size = len(members)
    n_posts = sum(p.n_posts for p in members)
    hours = np.zeros(24)
    tags: dict[str, float] = {}
    topics: dict[int, float] = {}
    sentiment = engagement = 0.0
    for profile in members:
        hours += np.frombuffer(profile.stats, dtype=np.float64)[HOURS : HOURS + 24]
        for tag, totals in profile.hashtags.items():
            tags[tag] = tags.get(tag, 0.0) + totals[0]
        for cluster, totals in profile.topics.items():
            topics[cluster] = topics.get(cluster, 0.0) + totals[0]
        sentiment += profile.stats[SENTIMENT]
        engagement += profile.mean_engagement() * profile.n_posts
    # The members closest to the segment's centre stand for it.
    x = space.transform(member_rows) if len(member_rows) else member_rows
    center = space.transform(center_raw[None, :])[0]
    order = np.argsort(((x - center) ** 2).sum(axis=1))[:REPRESENTATIVES] if size else []
    representatives = [members[i] for i in np.asarray(order).tolist()]
    total_topic = sum(topics.values()) or 1.0
    top_topics = sorted(topics.items(), key=lambda item: -item[1])[:5]
    active = np.argsort(-hours)[:3].tolist() if hours.sum() else []
    growth = None if previous_size is None else size - previous_size
    return {
        "id": segment_id,
        "size": size,
        "posts": n_posts,
        "previous_size": previous_size,
        "growth": growth,
        "growth_pct": (
            round(100.0 * growth / previous_size, 1)
            if growth is not None and previous_size
            else None
        ),
        "top_interests": [
            {
                "topic": cluster,
                "label": topic_labels.get(cluster, f"topic {cluster}"),
                "share": round(n / total_topic, 3),
            }
            for cluster, n in top_topics
        ],
        "top_hashtags": [t for t, _ in sorted(tags.items(), key=lambda i: (-i[1], i[0]))[:8]],
        "active_hours": active,
        "hour_profile": [round(v / max(1.0, hours.sum()), 4) for v in hours.tolist()],
        "sentiment": round(sentiment / n_posts, 3) if n_posts else 0.0,
        "engagement": round(engagement / n_posts, 2) if n_posts else 0.0,
        "representative_authors": [p.handle for p in representatives],
        "representative_posts": [
            {"author": p.handle, "text": p.last_text} for p in representatives if p.last_text
        ][:3],
        "distinguishing": distinguishing(center_raw, space),
    }


def segment_name(profile: dict[str, Any]) -> str:
    """A short name: the segment's top interests and its most distinguishing activity."""
    interests = [i["label"].split(" · ")[0] for i in profile["top_interests"][:2]]
    name = " + ".join(interests) if interests else "mixed interests"
    activity = [d for d in profile["distinguishing"] if d["block"] != "interest"]
    if activity:
        name += f" ({activity[0]['words'].split(' (')[0]})"
    return name


def content_to_show(
    recent: Sequence[RecentPost], interests: Sequence[int], hashtags: Sequence[str], top: int = 5
) -> list[dict[str, Any]]:
    """Recent top-engaging posts on the segment's interests (its topics or hashtags)."""
    topics, tags = set(interests), set(hashtags)
    matching = [
        p for p in recent if p.cluster in topics or (tags and tags.intersection(p.hashtags))
    ]
    matching.sort(key=lambda p: (-p.engagement, -p.created_at))
    seen: set[str] = set()
    out = []
    for post in matching:
        if post.id in seen:
            continue
        seen.add(post.id)
        out.append(
            {
                "id": post.id,
                "author": post.author,
                "text": post.text,
                "engagement": round(post.engagement, 2),
                "observed": post.observed,
            }
        )
        if len(out) >= top:
            break
    return out
