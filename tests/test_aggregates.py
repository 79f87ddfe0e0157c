"""What the dashboard draws: event-time windows, series, clusters, trending, feed, words."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from app.aggregates import FEED_SIZE, LiveAggregates
from streaming.records import (
    ClusterAssignment,
    EngagementPrediction,
    ScoredPost,
    Sentiment,
    parse_post,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
_ids = itertools.count()


def scored(
    text: str = "a post",
    at: datetime = T0,
    compound: float = 0.0,
    cluster: int = 0,
    label: str | None = None,
    received_at: float = 0.0,
) -> ScoredPost:
    """A hand-made scored post; hashtags come from the text like for real posts."""
    post = parse_post({"id": f"p{next(_ids)}", "text": text, "created_at": at.isoformat()})
    sentiment_label = label or (
        "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"
    )
    return ScoredPost(
        post=post,
        sentiment=Sentiment(compound, 0.0, 1.0, 0.0, sentiment_label),
        cluster=ClusterAssignment(cluster, f"topic {cluster}"),
        engagement=EngagementPrediction(1.0, "low"),
        model_version="v-test",
        latency_ms=1.0,
        received_at=received_at,
    )


def letters(number: int) -> str:
    """A word made of letters only (the word cloud skips digits), distinct per number."""
    return "word" + "".join(chr(ord("a") + int(digit)) for digit in str(number))


def series_starts(aggregates: LiveAggregates) -> list[str]:
    return [w["start"] for w in aggregates.state()["sentiment_series"]]


def test_windows_are_keyed_by_event_time_not_arrival():
    aggregates = LiveAggregates(window_seconds=10)
    aggregates.add([scored(at=T0 + timedelta(seconds=25)), scored(at=T0 + timedelta(seconds=3))])
    aggregates.add([scored(at=T0 + timedelta(seconds=9)), scored(at=T0 + timedelta(seconds=12))])
    series = aggregates.state()["sentiment_series"]
    assert [w["start"] for w in series] == [
        T0.isoformat(),
        (T0 + timedelta(seconds=10)).isoformat(),
        (T0 + timedelta(seconds=20)).isoformat(),
    ]
    assert [w["count"] for w in series] == [2, 1, 1]


def test_windows_are_bounded_and_memory_stays_flat():
    aggregates = LiveAggregates(window_seconds=10, windows_kept=5)
    for minute in range(200):
        word = letters(minute)
        batch = [
            scored(f"{word} #{word}", at=T0 + timedelta(seconds=10 * minute + s)) for s in range(3)
        ]
        aggregates.add(batch)
    series = aggregates.state()["sentiment_series"]
    assert len(series) == 5
    assert series[-1]["start"] == (T0 + timedelta(seconds=1990)).isoformat()
    assert series[0]["start"] == (T0 + timedelta(seconds=1950)).isoformat()
    words = aggregates.word_frequencies()
    assert letters(199) in words and letters(195) in words and letters(194) not in words
    assert "#" + letters(199) in words and "#" + letters(150) not in words
    assert aggregates.total == 600


def test_out_of_order_window_is_drawn_in_time_order():
    aggregates = LiveAggregates(window_seconds=10, windows_kept=5)
    aggregates.add([scored(at=T0 + timedelta(seconds=40))])
    aggregates.add([scored(at=T0 + timedelta(seconds=5))])
    aggregates.add([scored(at=T0 + timedelta(seconds=25))])
    assert series_starts(aggregates) == [
        (T0 + timedelta(seconds=s)).isoformat() for s in (0, 20, 40)
    ]


def test_bounding_drops_the_oldest_window_by_event_time():
    aggregates = LiveAggregates(window_seconds=10, windows_kept=3)
    for second in (40, 0, 20, 30):
        aggregates.add([scored(at=T0 + timedelta(seconds=second))])
    assert series_starts(aggregates) == [
        (T0 + timedelta(seconds=s)).isoformat() for s in (20, 30, 40)
    ]
    aggregates.add([scored(at=T0 + timedelta(seconds=10))])
    assert aggregates.late == 1


def test_late_events_older_than_every_kept_window_are_counted_not_drawn():
    aggregates = LiveAggregates(window_seconds=10, windows_kept=3)
    aggregates.add([scored(at=T0 + timedelta(seconds=s)) for s in (100, 110, 120)])
    before = series_starts(aggregates)
    aggregates.add([scored(at=T0), scored(at=T0 + timedelta(seconds=50))])
    assert aggregates.late == 2
    assert series_starts(aggregates) == before
    assert sum(w["count"] for w in aggregates.state()["sentiment_series"]) == 3


def test_late_event_inside_the_kept_range_is_drawn():
    aggregates = LiveAggregates(window_seconds=10, windows_kept=3)
    aggregates.add([scored(at=T0 + timedelta(seconds=s)) for s in (100, 110, 120)])
    aggregates.add([scored(at=T0 + timedelta(seconds=105))])
    assert aggregates.late == 0
    assert [w["count"] for w in aggregates.state()["sentiment_series"]] == [2, 1, 1]


def test_sentiment_series_means_and_counts():
    aggregates = LiveAggregates(window_seconds=60)
    aggregates.add([
        scored(at=T0, compound=0.8),
        scored(at=T0 + timedelta(seconds=10), compound=0.4),
        scored(at=T0 + timedelta(seconds=20), compound=-0.6),
        scored(at=T0 + timedelta(seconds=30), compound=0.0),
        scored(at=T0 + timedelta(seconds=70), compound=-0.5),
    ])  # fmt: skip
    first, second = aggregates.state()["sentiment_series"]
    assert first == {
        "start": T0.isoformat(),
        "count": 4,
        "mean": 0.15,
        "positive": 2,
        "neutral": 1,
        "negative": 1,
    }
    assert (second["count"], second["mean"], second["negative"]) == (1, -0.5, 1)
    stats = aggregates.state()["stats"]
    assert stats["mean_sentiment"] == pytest.approx(0.02)
    assert stats["total"] == 5
    assert stats["model_version"] == "v-test"


def test_empty_aggregates_have_no_mean():
    state = LiveAggregates().state()
    assert state["stats"]["mean_sentiment"] is None
    assert state["stats"]["latency_p50_ms"] is None
    assert state["sentiment_series"] == state["clusters"] == state["trending"] == []


def test_clusters_count_posts_with_labels():
    aggregates = LiveAggregates()
    aggregates.add([scored(cluster=2), scored(cluster=0), scored(cluster=2), scored(cluster=2)])
    assert aggregates.state()["clusters"] == [
        {"id": 0, "label": "topic 0", "count": 1},
        {"id": 2, "label": "topic 2", "count": 3},
    ]


def test_trending_counts_recent_hashtags_with_delta():
    aggregates = LiveAggregates(window_seconds=10, trending_windows=2)
    # Windows 0-1 are "before", windows 2-3 are "now".
    aggregates.add([
        scored("#nba #ai", at=T0),
        scored("#nba", at=T0 + timedelta(seconds=10)),
        scored("#nba #ai", at=T0 + timedelta(seconds=10)),
        scored("#ai", at=T0 + timedelta(seconds=20)),
        scored("#ai #climate", at=T0 + timedelta(seconds=30)),
        scored("#ai #nba", at=T0 + timedelta(seconds=35)),
    ])  # fmt: skip
    trending = aggregates.state()["trending"]
    assert trending[0] == {"tag": "ai", "count": 3, "delta": 1}
    assert {t["tag"]: (t["count"], t["delta"]) for t in trending[1:]} == {
        "nba": (1, -2),
        "climate": (1, 1),
    }


def test_trending_is_capped_at_ten():
    aggregates = LiveAggregates()
    aggregates.add([scored(f"#tag{i}") for i in range(15)])
    assert len(aggregates.state()["trending"]) == 10


def test_take_update_returns_only_new_posts_newest_first_then_none():
    aggregates = LiveAggregates()
    first = [scored(f"first {i}", received_at=100.0) for i in range(3)]
    aggregates.add(first)
    update = aggregates.take_update(now=100.25)
    assert [p["id"] for p in update["posts"]] == [s.post.id for s in reversed(first)]
    assert update["posts"][0]["e2e_ms"] == 250.0
    assert set(update) >= {"posts", "stats", "sentiment_series", "clusters", "trending"}
    assert aggregates.take_update()["posts"] == []
    second = [scored("second")]
    aggregates.add(second)
    assert [p["id"] for p in aggregates.take_update()["posts"]] == [second[0].post.id]


def test_take_update_sends_at_most_the_newest_fifty():
    aggregates = LiveAggregates()
    batch = [scored(f"post {i}") for i in range(120)]
    aggregates.add(batch[:70])
    aggregates.add(batch[70:])
    posts = aggregates.take_update()["posts"]
    assert len(posts) == FEED_SIZE == 50
    assert [p["id"] for p in posts] == [s.post.id for s in reversed(batch[-50:])]


def test_take_update_measures_latency_from_received_at():
    aggregates = LiveAggregates()
    aggregates.add([scored(received_at=10.0), scored(received_at=10.1)])
    stats = aggregates.take_update(now=10.5)["stats"]
    assert stats["latency_p50_ms"] == pytest.approx(400.0, abs=0.2)
    assert stats["latency_p99_ms"] == pytest.approx(500.0, abs=0.2)


def test_word_frequencies_skip_stop_words_urls_and_mentions_and_include_hashtags():
    aggregates = LiveAggregates(stop_words=frozenset({"the", "and"}))
    aggregates.add([
        scored("The Lakers and the refs @courtside https://sp.example/xyz #NBA"),
        scored("Lakers win again #nba #Playoffs"),
    ])  # fmt: skip
    words = aggregates.word_frequencies()
    assert words["lakers"] == 2
    assert words["#nba"] == 2
    assert words["#playoffs"] == 1
    assert {"refs", "win", "again"} <= set(words)
    for noise in ("the", "and", "courtside", "https", "example", "xyz", "nba", "sp"):
        assert noise not in words


def test_word_frequencies_limit():
    aggregates = LiveAggregates()
    aggregates.add([scored(" ".join(f"word{chr(97 + i)}x" for i in range(20)))])
    assert len(aggregates.word_frequencies(limit=5)) == 5


def test_dead_letters_are_counted():
    aggregates = LiveAggregates()
    version = aggregates.version
    aggregates.add_dead_letters(3)
    assert aggregates.state()["stats"]["dead_lettered"] == 3
    assert aggregates.version > version


def test_posts_per_second_reflects_recent_batches():
    aggregates = LiveAggregates()
    aggregates.add([scored() for _ in range(50)])
    assert aggregates.state()["stats"]["posts_per_second"] == 10.0


def test_empty_batch_changes_nothing():
    aggregates = LiveAggregates()
    aggregates.add([])
    assert aggregates.version == 0
    assert aggregates.total == 0


def test_a_redelivered_post_counts_once():
    aggregates = LiveAggregates()
    batch = [scored("love it #launch", compound=0.6), scored("meh #launch")]
    aggregates.add(batch)
    version = aggregates.version
    aggregates.add(batch)  # Kafka delivers at least once: the same posts again
    aggregates.add([batch[0]])
    state = aggregates.state()
    assert state["stats"]["total"] == 2
    assert aggregates.duplicates == 3
    assert sum(point["count"] for point in state["sentiment_series"]) == 2
    assert state["trending"][0] == {"tag": "launch", "count": 2, "delta": 2}
    assert aggregates.version == version  # nothing new to draw
    assert len(aggregates.take_update()["posts"]) == 2


def test_a_duplicate_inside_one_batch_counts_once():
    aggregates = LiveAggregates()
    post = scored("twice in one batch")
    aggregates.add([post, post, scored("other")])
    assert aggregates.total == 2


def test_remembered_ids_are_bounded():
    aggregates = LiveAggregates(recent_ids=100)
    first = scored("the oldest")
    aggregates.add([first])
    aggregates.add([scored(f"post {i}") for i in range(100)])
    assert len(aggregates._recent_ids._ids) == 100
    aggregates.add([first])  # forgotten by now: bounded memory wins over exactness
    assert aggregates.total == 102


def test_a_new_viewer_gets_the_latest_posts_once(pipeline, sample_posts):
    """On connecting, a viewer gets the newest posts already sent; the ones not sent yet
    arrive in the next update, so no post shows twice in its feed."""
    aggregates = LiveAggregates()
    scored = pipeline.score_batch(sample_posts[:30])
    aggregates.add(scored[:20])
    aggregates.take_update()  # sent to the viewers already there
    aggregates.add(scored[20:])
    first = [p["id"] for p in aggregates.latest_posts()]
    then = [p["id"] for p in aggregates.take_update()["posts"]]
    assert first == [s.post.id for s in reversed(scored[:20])]
    assert then == [s.post.id for s in reversed(scored[20:])]
    assert [p["id"] for p in aggregates.latest_posts()][:10] == then
