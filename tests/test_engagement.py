"""Engagement model: exact fast path, explanations, bands, no leakage, and it learns the signal."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import r2_score

from models.datasets import total_engagement
from models.engagement import BANDS, SMALL_BATCH, EngagementModel
from models.features import FEATURE_NAMES
from models.featurize import featurize
from streaming.records import Post, parse_post
from streaming.synthetic import SyntheticPostGenerator, strip_private

# A different seed (other authors) and a later period than the training data.
FRESH_SEED = 2024
FRESH_START = datetime(2024, 9, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def fresh_raw() -> list[dict]:
    return SyntheticPostGenerator(seed=FRESH_SEED, start=FRESH_START, rate=0.05).take(1500)


@pytest.fixture(scope="module")
def fresh_posts(fresh_raw) -> list[Post]:
    return [parse_post(strip_private(raw)) for raw in fresh_raw]


@pytest.fixture(scope="module")
def fresh_features(bundle, fresh_posts) -> np.ndarray:
    return featurize(fresh_posts, bundle.clusterer).matrix


# -- the fast path -------------------------------------------------------------------------------
def test_predict_log_equals_the_forest(bundle, fresh_features):
    model = bundle.engagement
    assert np.array_equal(model.predict_log(fresh_features), model.forest_.predict(fresh_features))
    one = fresh_features[7:8]
    assert np.array_equal(model.predict_log(one), model.forest_.predict(one))
    strided = np.asfortranarray(fresh_features[::3])
    assert np.array_equal(model.predict_log(strided), model.forest_.predict(strided))
    # Small batches walk every tree at once: the same numbers, bit for bit.
    for size in (1, 2, SMALL_BATCH, SMALL_BATCH + 1):
        for start in range(0, 64, size):
            rows = fresh_features[start : start + size]
            assert np.array_equal(model.predict_log(rows), model.forest_.predict(rows))


def test_predict_log_of_a_model_fitted_here_equals_its_forest():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, len(FEATURE_NAMES)))
    y = x[:, 0] * 2 + np.sin(x[:, 1]) + rng.normal(scale=0.1, size=400)
    model = EngagementModel(n_estimators=15, max_depth=None, max_features=None).fit(x, y)
    x_new = rng.normal(size=(250, len(FEATURE_NAMES)))
    np.testing.assert_allclose(
        model.predict_log(x_new), model.forest_.predict(x_new), rtol=0, atol=1e-12
    )
    for row in x_new[:40]:  # unbounded depth, on the small-batch path
        assert np.array_equal(model.predict_log(row[None]), model.forest_.predict(row[None]))
    assert model.predict_log(x_new[:0]).shape == (0,)
    assert model.predict(x_new[:0]) == []


# -- explanations --------------------------------------------------------------------------------
def test_contributions_add_up_to_the_prediction(bundle, fresh_features):
    model = bundle.engagement
    rows = fresh_features[:300]
    bias, contributions = model.contributions(rows)
    assert contributions.shape == (300, len(FEATURE_NAMES))
    np.testing.assert_allclose(bias + contributions.sum(axis=1), model.predict_log(rows), atol=1e-9)
    # The bias is the forest's average over its training data: the same for every post.
    assert np.all(bias == bias[0])
    # Followers drive the synthetic engagement most; the explanation must say so.
    strongest = np.abs(contributions).mean(axis=0).argmax()
    assert FEATURE_NAMES[strongest] == "log_followers"


def test_contributions_follow_each_trees_decision_path(bundle, fresh_features):
    """The all-trees-at-once walk credits exactly what sklearn's decision paths say."""
    model = bundle.engagement
    rows = np.ascontiguousarray(fresh_features[:50], dtype=np.float32)
    expected = np.zeros(rows.shape)
    trees = [estimator.tree_ for estimator in model.forest_.estimators_]
    for tree in trees:
        values, paths = tree.value.reshape(-1), tree.decision_path(rows)
        for row in range(len(rows)):
            nodes = np.sort(paths.indices[paths.indptr[row] : paths.indptr[row + 1]])
            np.add.at(expected[row], tree.feature[nodes[:-1]], np.diff(values[nodes]))
    expected /= len(trees)
    _, contributions = model.contributions(fresh_features[:50])
    if model.baseline == "author":
        contributions[:, FEATURE_NAMES.index("author_recent_lift")] -= fresh_features[
            :50, FEATURE_NAMES.index("author_recent_lift")
        ]
    np.testing.assert_allclose(contributions, expected, rtol=0, atol=1e-12)


def test_one_walk_gives_the_prediction_and_its_contributions(bundle, fresh_features):
    """What the API answers (a prediction and its explanation) comes from one walk down the
    trees, with the same numbers as `predict` and `contributions` apart."""
    model = bundle.engagement
    for size in (1, 2, SMALL_BATCH + 1, 40):
        rows = fresh_features[size : 2 * size]
        predictions, bias, contributions = model.predict_and_contributions(rows)
        assert predictions == model.predict(rows)
        expected_bias, expected_contributions = model.contributions(rows)
        assert np.array_equal(bias, expected_bias)
        assert np.array_equal(contributions, expected_contributions)


def test_a_forest_of_single_leaves_walks_nowhere():
    x = np.random.default_rng(0).normal(size=(50, len(FEATURE_NAMES)))
    model = EngagementModel(n_estimators=3).fit(x, np.full(50, 2.0))
    predictions, bias, contributions = model.predict_and_contributions(x[:4])
    assert [p.predicted for p in predictions] == [round(float(np.expm1(2.0)), 2)] * 4
    np.testing.assert_allclose(bias, 2.0)
    assert not contributions.any()
    assert np.array_equal(model.predict_log(x[:4]), model.forest_.predict(x[:4]))


def test_pipeline_explanation_matches_the_prediction(pipeline, fresh_posts):
    scored = pipeline.score_batch(fresh_posts[:5])
    for post in scored:
        explanation = pipeline.explain(post, top=len(FEATURE_NAMES))
        total = explanation.engagement_baseline + sum(
            c.contribution for c in explanation.engagement_contributions
        )
        # Rounded to 4 decimals per number and to cents for the shown prediction.
        assert total == pytest.approx(np.log1p(post.engagement.predicted), abs=5e-3)


# -- bands ---------------------------------------------------------------------------------------
def test_bands_are_cut_at_the_training_terciles():
    x = np.arange(300, dtype=float).reshape(-1, 1)
    y = np.arange(300, dtype=float) / 10.0
    model = EngagementModel(n_estimators=5, min_samples_leaf=1, max_features=None).fit(x, y)
    assert model.band_edges_ == pytest.approx(tuple(np.quantile(y, [1 / 3, 2 / 3])))
    predictions = model.predict(np.array([[3.0], [150.0], [290.0]]))
    assert [p.band for p in predictions] == ["low", "medium", "high"]


def test_bands_and_values_follow_the_predicted_log(bundle, fresh_features):
    model = bundle.engagement
    log_values = model.predict_log(fresh_features)
    low_edge, high_edge = model.band_edges_
    predictions = model.predict(fresh_features)
    assert {p.band for p in predictions} == set(BANDS)
    for log_value, prediction in zip(log_values, predictions, strict=True):
        expected = "low" if log_value < low_edge else "medium" if log_value < high_edge else "high"
        assert prediction.band == expected
        assert prediction.predicted == round(float(np.expm1(log_value)), 2)


# -- leakage -------------------------------------------------------------------------------------
OUTCOME_WORDS = re.compile(
    r"like|share|repl|retweet|favo|engag|repost|comment|view|reaction|quote", re.IGNORECASE
)


def test_no_feature_is_an_outcome():
    assert not [name for name in FEATURE_NAMES if OUTCOME_WORDS.search(name)]


class UntouchableCounts(Mapping):
    """Engagement counts that fail the test the moment anything reads them."""

    def __getitem__(self, key: str) -> int:
        raise AssertionError("the scoring path read the post's own engagement")

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the scoring path read the post's own engagement")

    def __len__(self) -> int:
        raise AssertionError("the scoring path read the post's own engagement")


def test_observed_engagement_never_changes_a_prediction(pipeline, sample_posts):
    posts = sample_posts[:60]
    variants = [
        [dataclasses.replace(p, engagement=None) for p in posts],
        [dataclasses.replace(p, engagement={"likes": 0, "shares": 0, "replies": 0}) for p in posts],
        [
            dataclasses.replace(p, engagement={"likes": 10**9, "shares": 10**6, "replies": 10**5})
            for p in posts
        ],
        [dataclasses.replace(p, engagement=UntouchableCounts()) for p in posts],
    ]
    results = [
        [(s.sentiment, s.cluster, s.engagement) for s in pipeline.score_batch(batch)]
        for batch in variants
    ]
    assert results[0] == results[1] == results[2] == results[3]
    # Mixed in one batch too: a viral twin scores exactly like its unseen twin.
    twins = pipeline.score_batch([variants[0][0], variants[2][0]])
    assert twins[0].engagement == twins[1].engagement


def test_raw_posts_differing_only_in_counts_score_alike(pipeline, raw_posts):
    quiet = dict(raw_posts[0], engagement={"likes": 0})
    viral = dict(raw_posts[0], engagement={"likes": 500000, "shares": 90000, "replies": 7000})
    a, b = pipeline.score_batch([parse_post(quiet), parse_post(viral)])
    assert (a.sentiment, a.cluster, a.engagement) == (b.sentiment, b.cluster, b.engagement)


# -- it learned the signal -------------------------------------------------------------------------
def test_default_model_recovers_engagement_of_fresh_posts(pipeline, fresh_raw, fresh_posts):
    scored = pipeline.score_batch(fresh_posts)
    predicted = np.log1p([s.engagement.predicted for s in scored])
    actual = np.log1p([total_engagement(p) for p in fresh_posts])
    assert r2_score(actual, predicted) >= 0.5
    expected = [raw["_expected_log_engagement"] for raw in fresh_raw]
    assert spearmanr(predicted, expected).statistic >= 0.7


def test_predictions_grow_with_followers(pipeline):
    base = {"text": "Great game tonight #nba", "created_at": "2024-09-03T19:00:00Z"}
    small, large = (
        pipeline.score_batch([parse_post(dict(base, author_followers=n))])[0]
        for n in (20, 2_000_000)
    )
    assert large.engagement.predicted > 3 * small.engagement.predicted


def test_an_explanation_dict_is_what_asdict_gives(pipeline, fresh_posts):
    from dataclasses import asdict

    for scored in pipeline.score_batch(fresh_posts[:20]):
        explanation = pipeline.explain(scored)
        assert explanation.to_dict() == asdict(explanation)


def test_score_and_explain_equals_scoring_then_explaining_each(pipeline, fresh_posts):
    posts = fresh_posts[:30]
    times = {"scored_at": 0, "latency_ms": 0, "received_at": 0}
    together = pipeline.score_and_explain(posts, top=4)
    apart = pipeline.score_batch(posts)
    assert [s.to_dict() | times for s, _ in together] == [s.to_dict() | times for s in apart]
    assert [e for _, e in together] == [pipeline.explain(s, top=4) for s in apart]
    assert pipeline.score_and_explain([]) == []
