"""Scoring throughput: micro-batches against VADER alone and against post-by-post scoring."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import numpy as np

from models.clustering import topic_document
from models.featurize import featurize
from models.pipeline import ScoringPipeline
from models.registry import load_bundle
from models.vader import Vader
from streaming.records import Post, Sentiment


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def run(model_dir: Path, posts: list[Post], batch: int = 500, single: int = 1000) -> dict:
    """VADER alone (the library, and the same scores in linear time), the batched pipeline,
    one post per call, and library calls per post."""
    bundle = load_bundle(model_dir)
    n_posts = len(posts)
    texts = [p.text for p in posts]
    # Long-lived objects out of the collector's way, so a full collection does not land in
    # one timed loop and not the other.
    gc.collect()
    gc.freeze()

    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    analyzer.polarity_scores("warm up")
    started = time.perf_counter()
    for text in texts:
        analyzer.polarity_scores(text)
    vader_rate = _rate(n_posts, time.perf_counter() - started)
    # The same scores (models.vader), computed in linear time: what the pipeline runs.
    linear = Vader(analyzer)
    started = time.perf_counter()
    for text in texts:
        linear.scores(text)
    linear_vader_rate = _rate(n_posts, time.perf_counter() - started)

    pipeline = ScoringPipeline(bundle.clusterer, bundle.engagement, bundle.version)
    pipeline.score_batch(posts[:batch], learn=False)
    started = time.perf_counter()
    for i in range(0, n_posts, batch):
        pipeline.score_batch(posts[i : i + batch], learn=True)
    batch_rate = _rate(n_posts, time.perf_counter() - started)

    fresh = load_bundle(model_dir)
    one_by_one = ScoringPipeline(fresh.clusterer, fresh.engagement, fresh.version)
    started = time.perf_counter()
    for post in posts[:single]:
        one_by_one.score_batch([post], learn=True)
    single_rate = _rate(single, time.perf_counter() - started)

    naive_rate = _naive_per_post_rate(load_bundle(model_dir), posts[: single // 4], analyzer)
    return {
        "posts": n_posts,
        "batch_size": batch,
        "vader_only_posts_per_s": round(vader_rate),
        "linear_vader_posts_per_s": round(linear_vader_rate),
        "pipeline_batched_posts_per_s": round(batch_rate),
        "pipeline_one_post_per_call_posts_per_s": round(single_rate),
        "library_calls_per_post_posts_per_s": round(naive_rate),
        "batched_vs_vader": round(batch_rate / vader_rate, 3),
        "batched_vs_one_post_per_call": round(batch_rate / single_rate, 1),
        "batched_vs_library_calls_per_post": round(batch_rate / naive_rate, 1),
    }


def _naive_per_post_rate(bundle, posts, analyzer) -> float:
    """Each post through the libraries' own APIs, one call each, learning per post."""
    state = bundle.clusterer.state_
    forest = bundle.engagement.forest_
    started = time.perf_counter()
    for post in posts:
        scores = analyzer.polarity_scores(post.text)
        features = state.vectorizer.transform([topic_document(post)])
        cluster = state.kmeans.predict(features)
        state.kmeans.partial_fit(features)
        sentiment = Sentiment(scores["compound"], scores["pos"], scores["neu"], scores["neg"], "")
        row = featurize([post], bundle.clusterer, sentiments=[sentiment], cluster_ids=cluster)
        np.expm1(forest.predict(row.matrix))
    return _rate(len(posts), time.perf_counter() - started)
