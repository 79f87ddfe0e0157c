"""The one feature path: sentiment → topic document → cluster → posting-time features.

Live scoring, the form and API, training, evaluation and the benchmarks all build the
engagement model's inputs here, so what a model learned from is what it is later asked about.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.clustering import ClusterState, StreamingTopicClusterer, topic_document
from models.features import AuthorPrior, posting_time_features
from models.sentiment import VaderSentimentModel
from streaming.records import Post, Sentiment


@dataclass(frozen=True)
class PostFeatures:
    """What the feature path computed for a batch of posts, row for row.

    Attributes:
        sentiments: VADER scores of each text.
        cluster_ids: topic cluster of each post.
        matrix: posting-time features, shape (posts, `FEATURE_NAMES`).
        cluster_state: the clusterer state that gave `cluster_ids` (its labels name them);
            None when the ids were given.
    """

    sentiments: list[Sentiment]
    cluster_ids: np.ndarray
    matrix: np.ndarray
    cluster_state: ClusterState | None = None


def featurize(
    posts: Sequence[Post],
    clusterer: StreamingTopicClusterer,
    author_prior: AuthorPrior | None = None,
    *,
    sentiment_model: VaderSentimentModel | None = None,
    sentiments: Sequence[Sentiment] | None = None,
    cluster_ids: Sequence[int] | None = None,
    learn: bool = False,
    learn_lock: threading.Lock | None = None,
) -> PostFeatures:
    """Features of `posts` as the live path computes them.

    Args:
        posts: the batch.
        clusterer: the fitted topic clusterer.
        author_prior: what training knew of each author (None: every author unseen).
        sentiment_model: the sentiment model (VADER by default).
        sentiments: scores already computed for these posts (skips that stage).
        cluster_ids: clusters already assigned to these posts (skips that stage).
        learn: let the clusterer learn from these posts, as the live stream does.
        learn_lock: held while learning, when several threads share the clusterer.
    """
    if sentiments is None:
        sentiments = (sentiment_model or VaderSentimentModel()).score_batch([p.text for p in posts])
    state = None
    if cluster_ids is None:
        docs = [topic_document(p) for p in posts]
        state, cluster_ids = clusterer.assign(docs, learn, learn_lock)
    sentiments = list(sentiments)
    ids = np.asarray(cluster_ids, dtype=np.int64)
    matrix = posting_time_features(posts, sentiments, ids.tolist(), author_prior)
    return PostFeatures(sentiments, ids, matrix, state)
