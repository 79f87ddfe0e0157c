"""The contract every scoring stage keeps, checked the same way for each (batch-first)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from models.clustering import StreamingTopicClusterer, topic_document
from models.features import FEATURE_NAMES
from models.featurize import featurize
from models.pipeline import ScoringPipeline
from streaming.records import Post, ScoredPost


def sentiment_stage(pipeline: ScoringPipeline, posts: Sequence[Post]) -> list[Any]:
    return pipeline.sentiment.score_batch([p.text for p in posts])


def cluster_stage(pipeline: ScoringPipeline, posts: Sequence[Post]) -> list[Any]:
    return pipeline.clusterer.predict([topic_document(p) for p in posts]).tolist()


def feature_matrix(pipeline: ScoringPipeline, posts: Sequence[Post]) -> np.ndarray:
    return featurize(posts, pipeline.clusterer, sentiment_model=pipeline.sentiment).matrix


def feature_stage(pipeline: ScoringPipeline, posts: Sequence[Post]) -> list[Any]:
    matrix = feature_matrix(pipeline, posts)
    assert matrix.shape == (len(posts), len(FEATURE_NAMES))
    return [tuple(row) for row in matrix.tolist()]


def engagement_stage(pipeline: ScoringPipeline, posts: Sequence[Post]) -> list[Any]:
    return pipeline.engagement.predict(feature_matrix(pipeline, posts))


def pipeline_stage(pipeline: ScoringPipeline, posts: Sequence[Post]) -> list[Any]:
    scored = pipeline.score_batch(posts)
    # Timing fields differ from call to call; everything a post was scored as must not.
    return [(s.post, s.sentiment, s.cluster, s.engagement, s.model_version) for s in scored]


STAGES: dict[str, Callable[[ScoringPipeline, Sequence[Post]], list[Any]]] = {
    "sentiment.score_batch": sentiment_stage,
    "clusterer.predict": cluster_stage,
    "features": feature_stage,
    "engagement.predict": engagement_stage,
    "pipeline.score_batch": pipeline_stage,
}


@pytest.mark.parametrize("stage_name", list(STAGES))
def test_stage_contract(stage_name, pipeline, sample_posts):
    stage = STAGES[stage_name]
    posts = sample_posts[:40]

    batch = stage(pipeline, posts)
    assert len(batch) == len(posts), "n inputs must give n outputs"
    assert stage(pipeline, []) == [], "an empty batch gives an empty output"
    alone = [stage(pipeline, [post])[0] for post in posts]
    assert batch == alone, "scoring a batch must equal scoring each post alone, in order"
    assert stage(pipeline, posts[::-1]) == batch[::-1], "outputs follow the order of inputs"
    assert stage(pipeline, posts) == batch, "the same input must give the same output"
    assert len({repr(x) for x in batch}) > 1, "a stage giving one answer for all is broken"


def test_scored_posts_carry_version_and_latency(pipeline, bundle, sample_posts):
    received = [time.time() - 1.0 - i for i in range(5)]
    scored = pipeline.score_batch(sample_posts[:5], received_at=received)
    assert all(isinstance(s, ScoredPost) for s in scored)
    assert [s.post for s in scored] == sample_posts[:5]
    assert {s.model_version for s in scored} == {bundle.version}
    assert bundle.version
    for post, received_at in zip(scored, received, strict=True):
        assert post.latency_ms >= 0
        assert post.received_at == received_at
        assert post.scored_at >= received_at
        assert post.to_dict()["model_version"] == bundle.version


def test_scoring_without_learning_never_changes_the_clusterer(pipeline, sample_posts):
    state = pipeline.clusterer.state_
    centers = state.kmeans.cluster_centers_.copy()
    window = len(pipeline.clusterer.window_)
    # More posts than one learning step pools, so learning would have shown.
    for _ in range(3 * pipeline.clusterer.learn_batch_size // len(sample_posts) + 1):
        pipeline.score_batch(sample_posts, learn=False)
    assert pipeline.clusterer.state_ is state
    assert np.array_equal(state.kmeans.cluster_centers_, centers)
    assert len(pipeline.clusterer.window_) == window
    assert pipeline.clusterer.pending_ == []


def test_scoring_with_learning_moves_the_centres_at_once(pipeline, sample_posts):
    """Topics that follow the stream (the default) learn from every batch: a new topic
    cannot wait for a pooled step."""
    assert pipeline.clusterer.auto
    centers = pipeline.clusterer.state_.kmeans.cluster_centers_.copy()
    pipeline.score_batch(sample_posts, learn=True)
    moved = pipeline.clusterer.state_.kmeans.cluster_centers_
    assert moved.shape != centers.shape or not np.array_equal(moved, centers)


def test_scored_posts_name_their_cluster_as_the_clusterer_does_after_it_learns(
    pipeline, sample_posts
):
    """The cluster records are built once per clusterer state and follow its changes."""
    first = pipeline.score_batch(sample_posts)
    again = pipeline.score_batch(sample_posts)
    assert all(a.cluster is b.cluster for a, b in zip(first, again, strict=True))
    births = [
        replace(post, id=f"{post.id}-new", text=f"zorblax quantum glorp {i} #zorblax")
        for i, post in enumerate(sample_posts)
    ]
    for _ in range(3):
        pipeline.score_batch(births + sample_posts, learn=True)
    state = pipeline.clusterer.state_
    names = dict(zip(state.cluster_ids, state.labels, strict=True))
    scored = pipeline.score_batch(births + sample_posts)
    assert all(s.cluster.label == names[s.cluster.id] for s in scored)
    assert {s.cluster.id for s in scored[: len(births)]} - {s.cluster.id for s in first}


def test_scoring_with_learning_eventually_moves_the_centres_of_a_fixed_k(pipeline, sample_posts):
    docs = [topic_document(p) for p in sample_posts]
    fixed = StreamingTopicClusterer(n_clusters=6, window_size=len(docs)).fit(docs)
    pipeline = ScoringPipeline(fixed, pipeline.engagement, pipeline.model_version)
    centers = pipeline.clusterer.state_.kmeans.cluster_centers_.copy()
    pipeline.score_batch(sample_posts, learn=True)
    # One micro-batch is pooled, not applied: a step has a fixed cost of milliseconds.
    assert np.array_equal(pipeline.clusterer.state_.kmeans.cluster_centers_, centers)
    for _ in range(pipeline.clusterer.learn_batch_size // len(sample_posts) + 1):
        pipeline.score_batch(sample_posts, learn=True)
    assert not np.array_equal(pipeline.clusterer.state_.kmeans.cluster_centers_, centers)
