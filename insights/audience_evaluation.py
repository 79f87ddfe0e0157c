"""How well audience segments are found, on a synthetic stream with planted segments.

The generator (`streaming.synthetic`, `PLANTED_SEGMENTS`) gives every author a segment
with its own interests, daily rhythm, replies, links and engagement. The stream is scored
by the live pipeline, folded into author profiles and segmented as the service does; the
segments are compared with the planted ones for the authors with at least `min_posts`
posts: adjusted Rand index and normalised mutual information, the silhouette, and the
stability (mean ARI between the segmentation and refits on bootstrap samples of authors).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from insights.audience_data import score_raw
from insights.audiences import fit_segmentation
from insights.profiles import AuthorProfiles
from insights.segments import (
    SegmentParams,
    bootstrap_stability,
    features_of,
    raw_matrix,
    topic_columns,
)
from streaming.records import ScoredPost
from streaming.synthetic import (
    OVERLAPPING_SEGMENTS,
    PLANTED_SEGMENTS,
    TRAINING_START,
    SyntheticPostGenerator,
)

TARGETS = {"ari": 0.8, "stability_ari": 0.9}
Scorer = Callable[[Sequence[Any]], Sequence[ScoredPost]]


PLANTED = {"distinct": PLANTED_SEGMENTS, "overlapping": OVERLAPPING_SEGMENTS}


def planted_stream(
    n_posts: int, n_authors: int, seed: int, planted: str = "distinct"
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Raw posts of a stream with planted segments (`PLANTED`), and each author's segment."""
    generator = SyntheticPostGenerator(
        seed=seed, n_authors=n_authors, start=TRAINING_START, rate=0.05, segments=PLANTED[planted]
    )
    raw = generator.take(n_posts)
    truth = {a.handle: a.segment or "" for a in generator.authors}
    return raw, truth


def score_stream(
    raw: Sequence[dict[str, Any]], score: Scorer, batch: int = 500
) -> list[ScoredPost]:
    """The raw posts scored in micro-batches, as the live stream scores them."""
    return score_raw(raw, score, batch)


def evaluate_audiences(
    score: Scorer,
    n_posts: int = 40_000,
    n_authors: int = 800,
    min_posts: int = 20,
    seed: int = 0,
    k: int = 0,
    rounds: int = 5,
    planted: str = "distinct",
) -> dict[str, Any]:
    """Segment a planted stream and compare with the planted segments (see the module;
    `planted`: "distinct" segments, or "overlapping" pairs with the same interests)."""
    started = time.perf_counter()
    raw, truth = planted_stream(n_posts, n_authors, seed, planted)
    scored = score_stream(raw, score)
    scored_seconds = time.perf_counter() - started
    book = AuthorProfiles(max_authors=max(1, n_authors), max_idle=0)
    for start in range(0, len(scored), 500):
        book.update(scored[start : start + 500])
    params = SegmentParams(min_posts=min_posts, k=k, seed=seed)
    segmentation = fit_segmentation(book, params)
    members = book.eligible(min_posts)
    handles = [p.handle for p in members]
    found = np.array([segmentation.labels[h] for h in handles])
    expected = [truth[h] for h in handles]
    topic_ids = topic_columns(members)
    columns = features_of(topic_ids, segmentation.topic_labels)
    raw_rows = raw_matrix(members, topic_ids)
    stability = bootstrap_stability(raw_rows, columns, topic_ids, params, found, rounds)
    figures = {
        "ari": round(float(adjusted_rand_score(expected, found)), 4),
        "nmi": round(float(normalized_mutual_info_score(expected, found)), 4),
        "silhouette": segmentation.metrics["silhouette"],
        "stability_ari": round(stability, 4),
    }
    return {
        "stream": {
            "posts": n_posts,
            "authors": n_authors,
            "planted": planted,
            "planted_segments": [s.name for s in PLANTED[planted]],
            "seed": seed,
        },
        "authors_evaluated": len(handles),
        "min_posts": min_posts,
        "k": segmentation.metrics["k"],
        "k_curve": segmentation.metrics["k_curve"],
        "figures": figures,
        "targets": TARGETS,
        "met": {name: figures[name] >= target for name, target in TARGETS.items()},
        "segments": [
            {
                "id": s["id"],
                "name": s["name"],
                "size": s["size"],
                "planted": _majority(
                    [truth[h] for h in handles if segmentation.labels[h] == s["id"]]
                ),
            }
            for s in (segmentation.segments[i] for i in segmentation.ids)
        ],
        "seconds": {
            "scoring": round(scored_seconds, 2),
            "total": round(time.perf_counter() - started, 2),
        },
    }


def _majority(names: Sequence[str]) -> dict[str, Any]:
    if not names:
        return {"segment": None, "share": 0.0}
    values, counts = np.unique(names, return_counts=True)
    best = int(counts.argmax())
    return {"segment": str(values[best]), "share": round(float(counts[best] / len(names)), 3)}
