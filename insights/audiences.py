"""One segmentation of the audience: fitted from author profiles, explained, and used to
assign an author or a few posts to a segment.

`fit_segmentation` turns `AuthorProfiles` into a `Segmentation`: the model (insights/
segments.py), each segment's profile and recommendations (insights/segment_profiles.py),
the metrics (silhouette, the elbow curve) and a 2-D map of the authors (PCA).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from insights.profiles import AuthorProfile, AuthorProfiles
from insights.segment_profiles import (
    content_to_show,
    recommendations,
    segment_name,
    segment_profile,
)
from insights.segments import (
    SegmentationError,
    SegmentModel,
    SegmentParams,
    features_of,
    fit_model,
    raw_matrix,
    raw_row,
    silhouette_of,
    topic_columns,
)

log = logging.getLogger(__name__)

MAP_POINTS = 2_000  # authors drawn on the map (a random sample beyond that)
WHY_Z = 0.5  # how far (standard deviations) an input must lean the segment's way to count


@dataclass
class Segmentation:
    """A fitted segmentation and everything shown of it.

    Attributes:
        model: centres, ids and feature space.
        params: how it was fitted.
        labels: author handle → segment id, for the authors fitted.
        segments: segment id → profile (see `segment_profile`), with "name" and
            "recommendations".
        metrics: k, how it was chosen, silhouette, the k curve (inertia and silhouette).
        map: points {x, y, segment, author, posts, interest} and the explained variance.
        topic_labels: topic cluster id → label, when fitted.
        version: set when saved (insights/segment_store.py).
    """

    model: SegmentModel
    params: SegmentParams
    labels: dict[str, int]
    segments: dict[int, dict[str, Any]]
    metrics: dict[str, Any]
    map: dict[str, Any]
    topic_labels: dict[int, str]
    created_at: float = field(default_factory=time.time)
    version: str = ""

    @property
    def ids(self) -> list[int]:
        return sorted(self.segments)

    def sizes(self) -> dict[int, int]:
        return {i: s["size"] for i, s in self.segments.items()}

    def summary(self) -> dict[str, Any]:
        """Small enough for the dashboard: version, k and each segment's name and size."""
        return {
            "version": self.version,
            "k": len(self.segments),
            "authors": len(self.labels),
            "segments": [
                {"id": i, "name": self.segments[i]["name"], "size": self.segments[i]["size"]}
                for i in self.ids
            ],
        }

    def to_dict(self, authors: bool = False) -> dict[str, Any]:
        """Everything, JSON-ready (`authors`: with every author's segment)."""
        out = {
            "version": self.version,
            "created_at": self.created_at,
            "params": self.params.to_dict(),
            "metrics": self.metrics,
            "features": [
                {"key": c.key, "block": c.block, "words": c.words} for c in self.model.space.columns
            ],
            "segments": [self.segments[i] for i in self.ids],
            "map": self.map,
        }
        if authors:
            out["authors"] = dict(sorted(self.labels.items()))
        return out

    # -- assigning --------------------------------------------------------------------
    def assign(self, profile: AuthorProfile, unknown: Sequence[str] = ()) -> dict[str, Any]:
        """The segment of a profile (known author or posts), why, and what to do for it.
        Columns whose key starts with one of `unknown` say nothing (they take the fitted
        mean): bare texts have no posting times and no follower count."""
        space = self.model.space
        row = space.row(profile)
        for i, column in enumerate(space.columns):
            if column.key.startswith(tuple(unknown)):
                row[i] = space.mean_[i]
        segment_id = int(self.model.predict_raw(row)[0])
        segment = self.segments[segment_id]
        z = self.model.space.standardise(row)
        keys = {c.key: i for i, c in enumerate(self.model.space.columns)}
        why = []
        for feature in segment["distinguishing"]:
            i = keys.get(feature["feature"])
            # Shared when the input leans the same way as the segment does.
            if i is not None and z[i] * np.sign(feature["z"]) >= WHY_Z:
                why.append(feature["words"])
        return {
            "segment": segment_id,
            "name": segment["name"],
            "size": segment["size"],
            "why": why,
            "distinguishing": [d["words"] for d in segment["distinguishing"]],
            "recommendations": segment["recommendations"],
        }

    def content(self, segment_id: int, book: AuthorProfiles, top: int = 5) -> list[dict]:
        """Recent top-engaging posts on the segment's interests."""
        segment = self.segments[segment_id]
        return content_to_show(
            book.recent(),
            [i["topic"] for i in segment["top_interests"][:3]],
            segment["top_hashtags"][:5],
            top,
        )


def fit_segmentation(
    book: AuthorProfiles | Sequence[AuthorProfile],
    params: SegmentParams,
    previous: Segmentation | None = None,
    min_rec_posts: int = 20,
    topic_labels: dict[int, str] | None = None,
) -> Segmentation:
    """Segment the authors with at least `params.min_posts` posts (`topic_labels`: cluster
    id → label, known already when `book` is an `AuthorProfiles`).

    Raises:
        SegmentationError: too few authors (the message says how many and what to do).
    """
    started = time.perf_counter()
    members = (
        book.eligible(params.min_posts)
        if isinstance(book, AuthorProfiles)
        else [p for p in book if p.n_posts >= params.min_posts]
    )
    labels = dict(topic_labels or {})
    if isinstance(book, AuthorProfiles):
        labels = {**book.topic_labels, **labels}
    topic_ids = topic_columns(members)
    columns = features_of(topic_ids, labels)
    raw = raw_matrix(members, topic_ids)
    model, assigned, x = fit_model(
        raw, columns, topic_ids, params, previous.model if previous is not None else None
    )
    previous_sizes = previous.sizes() if previous is not None else {}
    segments: dict[int, dict[str, Any]] = {}
    for segment_id in model.ids_:
        rows = np.flatnonzero(assigned == segment_id)
        group = [members[i] for i in rows.tolist()]
        center = model.raw_centers_[model.ids_.index(segment_id)]
        profile = segment_profile(
            segment_id,
            group,
            raw[rows],
            center,
            model.space,
            labels,
            previous_sizes.get(segment_id),
        )
        profile["name"] = segment_name(profile)
        profile["recommendations"] = recommendations(group, labels, min_rec_posts)
        segments[segment_id] = profile
    metrics = {
        "k": len(model.ids_),
        "chosen_by": model.chosen_by,
        "authors": len(members),
        "posts": int(sum(p.n_posts for p in members)),
        "silhouette": silhouette_of(x, assigned, params.seed),
        "k_curve": [
            {"k": c.k, "inertia": round(c.inertia, 3), "silhouette": round(c.silhouette, 4)}
            for c in model.k_curve_
        ],
        "fit_seconds": round(time.perf_counter() - started, 3),
    }
    return Segmentation(
        model,
        params,
        {p.handle: int(s) for p, s in zip(members, assigned.tolist(), strict=True)},
        segments,
        metrics,
        author_map(x, assigned, members, labels, params.seed),
        labels,
    )


def author_map(
    x: np.ndarray,
    assigned: np.ndarray,
    members: Sequence[AuthorProfile],
    topic_labels: dict[int, str],
    seed: int = 0,
) -> dict[str, Any]:
    """Authors projected on the first two principal components of the weighted features
    (a random sample of `MAP_POINTS` when there are more)."""
    from sklearn.decomposition import PCA

    if len(x) < 3:
        return {"method": "pca", "explained": [], "points": []}
    rows = np.arange(len(x))
    if len(rows) > MAP_POINTS:
        rows = np.sort(np.random.default_rng(seed).choice(len(x), MAP_POINTS, replace=False))
    pca = PCA(2, random_state=seed).fit(x)
    xy = pca.transform(x[rows])
    points = []
    for (px, py), i in zip(xy.tolist(), rows.tolist(), strict=True):
        profile = members[i]
        top = max(profile.topics.items(), key=lambda item: item[1][0], default=None)
        points.append(
            {
                "x": round(px, 4),
                "y": round(py, 4),
                "segment": int(assigned[i]),
                "author": profile.handle,
                "posts": profile.n_posts,
                "interest": topic_labels.get(top[0], "") if top else "",
            }
        )
    return {
        "method": "pca",
        "explained": [round(float(v), 4) for v in pca.explained_variance_ratio_],
        "points": points,
    }


def profile_of_posts(scored: Sequence[Any]) -> AuthorProfile:
    """A profile built from a few scored posts (the assign form's "posts" input)."""
    profile = AuthorProfile("(posts)")
    for post in scored:
        profile.add(post)
    return profile


__all__ = [
    "Segmentation",
    "SegmentationError",
    "fit_segmentation",
    "profile_of_posts",
    "raw_row",
]
