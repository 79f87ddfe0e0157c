"""Fitting the clustering and engagement models, and the default models a fresh clone needs."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.clustering import StreamingTopicClusterer, topic_document
from models.engagement import EngagementModel
from models.features import posting_time_features
from models.registry import (
    LibraryMismatch,
    ModelBundle,
    list_versions,
    load_bundle,
    save_bundle,
)
from models.sentiment import VaderSentimentModel
from streaming.records import Post, parse_post
from streaming.synthetic import TRAINING_START, SyntheticPostGenerator, strip_private

log = logging.getLogger(__name__)

DEFAULT_TRAINING_POSTS = 6000
DEFAULT_CLUSTERS = 12


def total_engagement(post: Post) -> int:
    """Observed likes + shares + replies: the training target, never an input."""
    return sum(post.engagement.values()) if post.engagement else 0


def synthetic_training_set(n: int, seed: int) -> list[Post]:
    generator = SyntheticPostGenerator(seed=seed, start=TRAINING_START, rate=0.05)
    return [parse_post(strip_private(raw)) for raw in generator.take(n)]


def fit_bundle(
    posts: Sequence[Post],
    log_targets: np.ndarray,
    n_clusters: int = DEFAULT_CLUSTERS,
    engagement_params: dict[str, Any] | None = None,
    seed: int = 0,
) -> ModelBundle:
    """Fit the clusterer on all posts and the forest on their posting-time features."""
    clusterer = StreamingTopicClusterer(n_clusters=n_clusters, seed=seed)
    clusterer.fit([topic_document(p) for p in posts])
    features = features_for(posts, clusterer)
    engagement = EngagementModel(seed=seed, **(engagement_params or {}))
    engagement.fit(features, log_targets)
    return ModelBundle(clusterer=clusterer, engagement=engagement)


def features_for(posts: Sequence[Post], clusterer: StreamingTopicClusterer) -> np.ndarray:
    sentiments = VaderSentimentModel().score_batch([p.text for p in posts])
    cluster_ids = clusterer.predict([topic_document(p) for p in posts])
    return posting_time_features(posts, sentiments, cluster_ids)


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from scipy.stats import spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "mae": float(mean_absolute_error(actual, predicted)),
        "rmse": float(math.sqrt(mean_squared_error(actual, predicted))),
        "r2": float(r2_score(actual, predicted)),
        "spearman": float(spearmanr(actual, predicted).statistic),
    }


def train_default_bundle(root: Path, seed: int = 0) -> ModelBundle:
    """Train on synthetic posts (a few seconds) and save a new version under `root`."""
    posts = synthetic_training_set(DEFAULT_TRAINING_POSTS, seed=seed + 11)
    targets = np.log1p([total_engagement(p) for p in posts])
    split = int(len(posts) * 0.8)  # time-ordered: evaluate on the later 20%
    held_out = fit_bundle(posts[:split], targets[:split], seed=seed)
    predicted = held_out.engagement.predict_log(features_for(posts[split:], held_out.clusterer))
    metrics = regression_metrics(targets[split:], predicted)
    bundle = fit_bundle(posts, targets, seed=seed)
    save_bundle(
        bundle,
        root,
        extra_manifest={
            "data": {"source": "synthetic", "posts": len(posts), "seed": seed + 11},
            "params": {"n_clusters": DEFAULT_CLUSTERS, "engagement": _params(bundle.engagement)},
            "metrics": {"engagement_holdout": metrics},
        },
    )
    log.info("trained default models: held-out %s", metrics)
    return bundle


def ensure_bundle(root: Path, version: str | None = None, seed: int = 0) -> ModelBundle:
    """Load the pinned or newest version; train defaults when there is none usable.

    A pinned version is never replaced: problems with it are raised. The newest version is
    retrained when it was saved with other library versions; a tampered file is refused.
    """
    if version is not None:
        return load_bundle(root, version)
    if not list_versions(root):
        log.info("no models under %s yet: training defaults on synthetic posts", root)
        return train_default_bundle(root, seed=seed)
    try:
        return load_bundle(root)
    except LibraryMismatch as exc:
        log.warning("%s; retraining defaults", exc)
        return train_default_bundle(root, seed=seed)


def _params(estimator: object) -> dict[str, Any]:
    """Constructor parameters (scikit-learn convention: learned state ends in `_`)."""
    return {k: v for k, v in vars(estimator).items() if not k.endswith("_")}
