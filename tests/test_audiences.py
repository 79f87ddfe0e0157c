"""Author profiles, audience segments, their profiles and recommendations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from insights.audience_evaluation import evaluate_audiences, planted_stream, score_stream
from insights.audiences import fit_segmentation, profile_of_posts
from insights.profiles import AuthorProfiles, profiles_from_posts
from insights.segments import FeatureWeights, SegmentationError, SegmentParams
from streaming.records import (
    ClusterAssignment,
    EngagementPrediction,
    Post,
    ScoredPost,
    Sentiment,
)
from streaming.synthetic import PLANTED_SEGMENTS, TRAINING_START, SyntheticPostGenerator

T0 = datetime(2024, 5, 6, 9, tzinfo=UTC)


def scored(
    author: str,
    when: datetime = T0,
    cluster: int = 0,
    tags: tuple[str, ...] = (),
    likes: int | None = 3,
    text: str = "hello there",
) -> ScoredPost:
    post = Post(
        f"{author}-{when.timestamp()}-{cluster}",
        text,
        author,
        when,
        hashtags=tags,
        engagement=None if likes is None else {"likes": likes},
    )
    return ScoredPost(
        post,
        Sentiment(0.5, 0.5, 0.5, 0.0, "positive"),
        ClusterAssignment(cluster, f"#topic{cluster}"),
        EngagementPrediction(7.0, "medium"),
        "test",
        1.0,
    )


@pytest.fixture(scope="module")
def planted(bundle):
    """A small stream with planted segments, scored once for the module."""
    raw, truth = planted_stream(n_posts=12_000, n_authors=200, seed=1)
    return score_stream(raw, bundle.pipeline().score_batch), truth


# -- profiles ------------------------------------------------------------------------------
def test_profiles_count_what_authors_post_and_when():
    book = AuthorProfiles()
    book.update(
        [
            scored("ann", T0, cluster=1, tags=("nba",), likes=10),
            scored("ann", T0 + timedelta(days=2, hours=10), cluster=2, likes=None),
            scored("bob", T0, cluster=1, text="@ann agreed"),
        ]
    )
    ann = book.get("ann")
    assert ann.n_posts == 2
    assert ann.topic_shares() == {1: 0.5, 2: 0.5}
    assert ann.top_hashtags() == ["nba"]
    assert ann.posts_per_day() == pytest.approx(2 / (58 / 24))
    # Observed where known (10 likes), predicted otherwise (7.0).
    assert ann.mean_engagement() == pytest.approx(8.5)
    assert ann.observed_share() == 0.5
    assert ann.hour_profile()[9] == 0.5 and ann.hour_profile()[19] == 0.5
    assert book.get("bob").to_dict()["posts"] == 1
    assert book.get("nobody") is None


def test_profiles_stay_within_the_cap_dropping_the_least_recent():
    book = AuthorProfiles(max_authors=20)
    for i in range(20):
        book.update([scored(f"a{i}", T0 + timedelta(minutes=i))])
    book.update([scored("a0", T0 + timedelta(hours=1))])  # a0 is recent again
    book.update([scored("new", T0 + timedelta(hours=2))])
    # Past the cap, the authors seen least recently went (a1 to a3), down to 90 %.
    assert len(book) == 18 and book.evicted == 3
    assert book.get("a1") is None and book.get("a3") is None and book.get("a4") is not None
    assert book.get("a0") is not None and book.get("new") is not None


def test_authors_idle_longer_than_the_limit_age_out():
    book = AuthorProfiles(max_idle=86_400)
    book.update([scored("old", T0), scored("new", T0 + timedelta(days=3))])
    assert book.age_out() == 1
    assert book.get("old") is None and book.get("new") is not None


def test_hashtags_kept_per_author_are_bounded():
    book = AuthorProfiles()
    book.update([scored("ann", tags=(f"t{i}",)) for i in range(100)])
    assert len(book.get("ann").hashtags) <= 16


def test_rebuild_replaces_the_profiles():
    book = AuthorProfiles()
    book.update([scored("gone")])
    assert book.rebuild([[scored("ann"), scored("ann")], [scored("bob")]]) == 3
    assert book.get("gone") is None and book.get("ann").n_posts == 2


# -- segments ------------------------------------------------------------------------------
def test_feature_weights_parse_and_refuse_bad_blocks():
    assert FeatureWeights.parse("interest=2, engagement=0") == FeatureWeights(2.0, 1.0, 0.0)
    for bad in ("colour=1", "interest=x", "interest=-1", "interest=0,activity=0,engagement=0"):
        with pytest.raises(ValueError):
            FeatureWeights.parse(bad)


def test_too_few_authors_is_a_clear_error():
    book = AuthorProfiles()
    book.update([scored("ann"), scored("bob")])
    with pytest.raises(SegmentationError, match="only 2 authors have at least 1 posts"):
        fit_segmentation(book, SegmentParams(min_posts=1))


def test_planted_segments_are_recovered(planted):
    posts, truth = planted
    book = profiles_from_posts(posts)
    segmentation = fit_segmentation(book, SegmentParams(min_posts=20))
    handles = sorted(segmentation.labels)
    assert len(handles) >= 150
    found = [segmentation.labels[h] for h in handles]
    assert adjusted_rand_score([truth[h] for h in handles], found) >= 0.8
    assert segmentation.metrics["k"] == len(PLANTED_SEGMENTS)
    assert [c["k"] for c in segmentation.metrics["k_curve"]] == list(range(2, 9))
    assert len(segmentation.map["points"]) == len(handles)


def test_segment_ids_stay_the_same_across_refits(planted):
    posts, _ = planted
    half = len(posts) // 2
    first = fit_segmentation(profiles_from_posts(posts[:half]), SegmentParams(min_posts=10))
    # Another seed and more posts: k-means numbers its clusters differently.
    second = fit_segmentation(
        profiles_from_posts(posts), SegmentParams(min_posts=10, k=4, seed=5), previous=first
    )
    common = sorted(set(first.labels) & set(second.labels))
    same = np.mean([first.labels[h] == second.labels[h] for h in common])
    assert same >= 0.9
    assert sorted(second.segments) == sorted(first.segments)
    grown = [s for s in second.segments.values() if s["previous_size"] is not None]
    assert grown and all(s["growth"] == s["size"] - s["previous_size"] for s in grown)
    # One segment more: the old ones keep their ids, the new one gets a fresh id.
    third = fit_segmentation(
        profiles_from_posts(posts), SegmentParams(min_posts=10, k=5, seed=9), previous=second
    )
    assert sorted(third.segments) == [*sorted(second.segments), max(second.segments) + 1]


def test_switching_a_block_off_changes_the_features_used(planted):
    posts, _ = planted
    book = profiles_from_posts(posts)
    only = fit_segmentation(
        book, SegmentParams(min_posts=20, k=4, weights=FeatureWeights(1.0, 0.0, 0.0))
    )
    blocks = {d["block"] for s in only.segments.values() for d in s["distinguishing"]}
    assert blocks == {"interest"}


def test_profiles_and_recommendations_say_what_a_segment_is(planted):
    posts, truth = planted
    book = profiles_from_posts(posts)
    segmentation = fit_segmentation(book, SegmentParams(min_posts=20), min_rec_posts=30)
    for segment in segmentation.segments.values():
        assert segment["distinguishing"] and "overall" in segment["distinguishing"][0]["words"]
        assert len(segment["active_hours"]) == 3
        assert segment["representative_authors"]
        assert all(
            segmentation.labels[a] == segment["id"] for a in segment["representative_authors"]
        )
        recs = segment["recommendations"]
        assert recs["basis"] == "observed"  # synthetic posts carry their engagement
        for kind in ("topics", "hashtags", "hours"):
            for row in recs[kind]:
                assert row["posts"] >= 30
                assert row["ci95"][0] <= row["mean_engagement"] <= row["ci95"][1]
        lows = [row["ci95"][0] for row in recs["topics"]]
        assert lows == sorted(lows, reverse=True)
    # The sports fans' segment is about basketball or gaming hashtags.
    sports = [h for h, s in truth.items() if s == "sports fans" and h in segmentation.labels]
    segment = segmentation.segments[segmentation.labels[sports[0]]]
    assert {"nba", "gaming", "lakers", "esports", "celtics"} & set(segment["top_hashtags"])
    content = segmentation.content(segment["id"], book)
    assert content and content[0]["engagement"] >= content[-1]["engagement"]


def test_recommendations_need_the_minimum_posts(planted):
    posts, _ = planted
    segmentation = fit_segmentation(
        profiles_from_posts(posts), SegmentParams(min_posts=20), min_rec_posts=10**6
    )
    for segment in segmentation.segments.values():
        recs = segment["recommendations"]
        assert recs["topics"] == recs["hashtags"] == recs["hours"] == []


def test_posts_are_assigned_to_the_segment_of_their_interests(planted, bundle):
    posts, truth = planted
    book = profiles_from_posts(posts)
    segmentation = fit_segmentation(book, SegmentParams(min_posts=20))
    tech = next(h for h, s in truth.items() if s == "tech crowd" and h in segmentation.labels)
    mine = [p for p in posts if p.post.author == tech]
    answer = segmentation.assign(profile_of_posts(mine))
    assert answer["segment"] == segmentation.labels[tech]
    assert answer["why"] and answer["recommendations"]["topics"]
    # A known author's own profile lands where the fit put it.
    assert segmentation.assign(book.get(tech))["segment"] == segmentation.labels[tech]


def test_the_default_synthetic_stream_is_unchanged_by_planted_segments():
    plain = SyntheticPostGenerator(seed=3, n_authors=20, start=TRAINING_START).take(50)
    assert all("_segment" not in p for p in plain)
    planted_posts = SyntheticPostGenerator(
        seed=3, n_authors=20, start=TRAINING_START, segments=PLANTED_SEGMENTS
    ).take(50)
    assert {p["_segment"] for p in planted_posts} <= {s.name for s in PLANTED_SEGMENTS}


def test_evaluation_reports_recovery_and_stability(bundle):
    report = evaluate_audiences(
        bundle.pipeline().score_batch, n_posts=8_000, n_authors=120, rounds=2
    )
    figures = report["figures"]
    assert figures["ari"] >= 0.8 and figures["stability_ari"] >= 0.9
    assert 0 < figures["nmi"] <= 1 and report["met"]["ari"]
    assert report["authors_evaluated"] > 60


def test_a_refit_reads_a_snapshot_the_stream_does_not_change():
    book = AuthorProfiles()
    book.update([scored("ann", tags=("nba",)), scored("ann", tags=("nba",))])
    snapshot = book.eligible(1)[0]
    book.update([scored("ann", tags=("new",), cluster=7)])
    assert snapshot.n_posts == 2 and set(snapshot.hashtags) == {"nba"}
    assert set(snapshot.topics) == {0}
    assert book.get("ann").n_posts == 3


def test_audiences_with_the_same_interests_are_told_apart_by_how_they_post(bundle):
    report = evaluate_audiences(
        bundle.pipeline().score_batch, n_posts=8_000, n_authors=120, rounds=1, planted="overlapping"
    )
    assert report["figures"]["ari"] >= 0.8
    names = {s["planted"]["segment"] for s in report["segments"]}
    assert {"evening fans", "daytime fans"} <= names
