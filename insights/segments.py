"""Audience segments: k-means over a documented, scaled feature vector of author profiles.

The feature vector of an author has three blocks, each switchable and weighted
(`FeatureWeights`):

- interest: the share of the author's posts in each topic cluster;
- activity: log posts per day, the share of posts in five bands of the day (UTC), on
  weekends, and that are replies, mention someone, carry a link, carry emoji;
- engagement: log(1 + mean engagement per post) (observed where known, else predicted),
  log(1 + mean predicted engagement), log(1 + followers), mean sentiment.

Every column is standardised (mean 0, variance 1 over the authors fitted), then multiplied
by its block's weight / sqrt(columns in the block), so each block weighs the same whatever
its width. k is chosen by the silhouette over `k_min..k_max` (the inertia of each k is kept
for the elbow chart) or fixed. Segment ids stay the same across refits: the new centres are
matched to the old ones (Hungarian assignment on distances, as topic clusters are matched).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from insights.profiles import EMOJI, LINKS, MENTIONS, REPLIES, WEEKEND, AuthorProfile

log = logging.getLogger(__name__)

BLOCKS = ("interest", "activity", "engagement")
# (first hour, end hour, words): the bands of the day the activity block counts.
DAY_BANDS = (
    (0, 6, "at night (0–6 h UTC)"),
    (6, 10, "in the morning (6–10 h UTC)"),
    (10, 14, "around midday (10–14 h UTC)"),
    (14, 18, "in the afternoon (14–18 h UTC)"),
    (18, 24, "in the evening (18–24 h UTC)"),
)
SILHOUETTE_SAMPLE = 3_000  # authors the silhouette of each k is measured on
K_SEARCH_SAMPLE = 20_000  # authors k is searched on (the final fit uses every author)
FIXED_COLUMNS = 15  # activity and engagement columns (after one per topic)


class SegmentationError(ValueError):
    """Authors that cannot be segmented (too few, or settings that do not fit them)."""


@dataclass(frozen=True)
class FeatureWeights:
    """Weight of each block of the feature vector; 0 switches a block off."""

    interest: float = 1.0
    activity: float = 1.0
    engagement: float = 1.0

    @classmethod
    def parse(cls, text: str) -> FeatureWeights:
        """From `interest=1,activity=0.5,engagement=0` (blocks left out keep 1)."""
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, raw = part.partition("=")
            name = name.strip()
            if name not in BLOCKS:
                raise ValueError(f"unknown feature block {name!r}; use {', '.join(BLOCKS)}")
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"the weight of {name} must be a number, not {raw!r}") from None
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"the weight of {name} must be a number ≥ 0")
            values[name] = value
        weights = cls(**values)
        if not any(weights.of(b) > 0 for b in BLOCKS):
            raise ValueError("at least one feature block needs a weight above 0")
        return weights

    def of(self, block: str) -> float:
        return float(getattr(self, block))


@dataclass(frozen=True)
class Feature:
    """One column of the feature vector: its key, block and what it means in words."""

    key: str
    block: str
    words: str  # "posts about #nba · lakers", "posts in the evening (18–24 h UTC)"
    unit: str = "share"  # share | log | value


@dataclass(frozen=True)
class SegmentParams:
    """How authors are segmented.

    Attributes:
        min_posts: authors with fewer posts are not segmented (too little to know them).
        k: number of segments; 0 chooses it by silhouette in `k_min..k_max`.
        weights: the feature blocks' weights.
        seed: k-means seed (the same profiles and seed give the same segments).
        n_init: k-means restarts of the final fit.
    """

    min_posts: int = 5
    k: int = 0
    k_min: int = 2
    k_max: int = 8
    weights: FeatureWeights = field(default_factory=FeatureWeights)
    seed: int = 0
    n_init: int = 10

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def topic_columns(profiles: Sequence[AuthorProfile], min_share: float = 0.01) -> list[int]:
    """The topic clusters the interest block has a column for: those holding at least
    `min_share` of the authors' posts (sorted by id, for stable columns)."""
    counts: dict[int, float] = {}
    for profile in profiles:
        for cluster, totals in profile.topics.items():
            counts[cluster] = counts.get(cluster, 0.0) + totals[0]
    total = sum(counts.values()) or 1.0
    return sorted(c for c, n in counts.items() if n / total >= min_share)


def features_of(topic_ids: Sequence[int], labels: dict[int, str]) -> list[Feature]:
    """The columns of the feature vector for these topic clusters."""
    columns = [
        Feature(f"topic:{c}", "interest", f"posts about {labels.get(c, f'topic {c}')}")
        for c in topic_ids
    ]
    columns.append(Feature("posts_per_day", "activity", "posts per day", "log"))
    columns += [
        Feature(f"hours:{start}-{end}", "activity", f"posts {words}")
        for start, end, words in DAY_BANDS
    ]
    columns += [
        Feature("weekend", "activity", "posts on weekends"),
        Feature("replies", "activity", "replies (posts starting with @)"),
        Feature("mentions", "activity", "posts mentioning someone"),
        Feature("links", "activity", "posts with a link"),
        Feature("emoji", "activity", "posts with emoji"),
        Feature("engagement", "engagement", "engagement per post", "log"),
        Feature("predicted", "engagement", "predicted engagement per post", "log"),
        Feature("followers", "engagement", "followers", "log"),
        Feature("sentiment", "engagement", "sentiment (−1 to 1)", "value"),
    ]
    return columns


def raw_row(profile: AuthorProfile, topic_ids: Sequence[int]) -> list[float]:
    """The author's unscaled feature vector (columns as `features_of` lists them)."""
    n = max(1, profile.n_posts)
    topics = profile.topics
    row = [topics[c][0] / n if c in topics else 0.0 for c in topic_ids]
    row.append(math.log1p(profile.posts_per_day()))
    hours = profile.hour_profile()
    row += [sum(hours[start:end]) for start, end, _ in DAY_BANDS]
    stats = profile.stats
    row.append(stats[WEEKEND] / n)
    row += [stats[REPLIES] / n, stats[MENTIONS] / n, stats[LINKS] / n, stats[EMOJI] / n]
    row.append(math.log1p(max(0.0, profile.mean_engagement())))
    row.append(math.log1p(max(0.0, profile.mean_predicted())))
    row.append(math.log1p(profile.followers or 0))
    row.append(profile.mean_sentiment())
    return row


def raw_matrix(profiles: Sequence[AuthorProfile], topic_ids: Sequence[int]) -> np.ndarray:
    return np.array([raw_row(p, topic_ids) for p in profiles], dtype=np.float64).reshape(
        len(profiles), len(topic_ids) + FIXED_COLUMNS
    )


@dataclass
class FeatureSpace:
    """The fitted scaling of the feature vector: standardise, then weigh each block."""

    columns: list[Feature]
    topic_ids: list[int]
    mean_: np.ndarray
    scale_: np.ndarray
    multiplier_: np.ndarray

    @classmethod
    def fit(
        cls, raw: np.ndarray, columns: list[Feature], topic_ids: list[int], weights: FeatureWeights
    ) -> FeatureSpace:
        mean = raw.mean(axis=0)
        scale = raw.std(axis=0)
        scale[scale < 1e-9] = 1.0  # a constant column: no information, no division by 0
        blocks = [c.block for c in columns]
        width = {b: blocks.count(b) for b in BLOCKS}
        multiplier = np.array(
            [weights.of(b) / math.sqrt(width[b]) if width[b] else 0.0 for b in blocks]
        )
        return cls(columns, topic_ids, mean, scale, multiplier)

    def transform(self, raw: np.ndarray) -> np.ndarray:
        return (raw - self.mean_) / self.scale_ * self.multiplier_

    def standardise(self, raw: np.ndarray) -> np.ndarray:
        """Standard scores without the block weights (for explanations)."""
        return (raw - self.mean_) / self.scale_

    def row(self, profile: AuthorProfile) -> np.ndarray:
        return np.asarray(raw_row(profile, self.topic_ids), dtype=np.float64)


@dataclass
class KChoice:
    """One k tried: its inertia (for the elbow) and silhouette."""

    k: int
    inertia: float
    silhouette: float


def choose_k(x: np.ndarray, k_min: int, k_max: int, seed: int) -> tuple[int, list[KChoice]]:
    """The k of the best silhouette on a sample, and every k tried."""
    rng = np.random.default_rng(seed)
    sample = x
    if len(x) > K_SEARCH_SAMPLE:
        sample = x[rng.choice(len(x), K_SEARCH_SAMPLE, replace=False)]
    tried: list[KChoice] = []
    for k in range(k_min, min(k_max, len(sample) - 1) + 1):
        model = KMeans(k, n_init=2, random_state=seed).fit(sample)
        labels = model.labels_
        if len(set(labels.tolist())) < 2:
            score = -1.0
        else:
            score = float(
                silhouette_score(
                    sample,
                    labels,
                    sample_size=min(len(sample), SILHOUETTE_SAMPLE),
                    random_state=seed,
                )
            )
        tried.append(KChoice(k, float(model.inertia_), score))
    if not tried:
        raise SegmentationError("too few authors to try any number of segments")
    best = max(tried, key=lambda t: (round(t.silhouette, 3), -t.k))
    return best.k, tried


def match_ids(
    old_centers: np.ndarray, old_ids: Sequence[int], new_centers: np.ndarray, next_id: int
) -> tuple[list[int], int]:
    """Ids for the new centres: the id of the old centre each is matched to (closest
    overall, one to one), fresh ids for the rest; and the next fresh id."""
    ids = [-1] * len(new_centers)
    if len(old_centers) and len(new_centers):
        cost = ((old_centers[:, None, :] - new_centers[None, :, :]) ** 2).sum(axis=2)
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            ids[c] = int(old_ids[r])
    for j in range(len(ids)):
        if ids[j] < 0:
            ids[j] = next_id
            next_id += 1
    return ids, next_id


@dataclass
class SegmentModel:
    """The fitted segmentation: feature space, centres and the ids of the segments."""

    space: FeatureSpace
    centers_: np.ndarray  # in the weighted space
    raw_centers_: np.ndarray  # unscaled means of each segment's members
    ids_: list[int]
    next_id_: int
    k_curve_: list[KChoice]
    chosen_by: str  # "silhouette" | "fixed"

    def predict_raw(self, raw: np.ndarray) -> np.ndarray:
        """Segment ids of unscaled rows."""
        x = self.space.transform(np.atleast_2d(raw))
        return self.predict_scaled(x)

    def predict_scaled(self, x: np.ndarray) -> np.ndarray:
        distances = ((x[:, None, :] - self.centers_[None, :, :]) ** 2).sum(axis=2)
        return np.asarray(self.ids_)[distances.argmin(axis=1)]

    def raw_center_in(self, space: FeatureSpace) -> np.ndarray:
        """The old centres as rows of another feature space (a topic column this model did
        not have is at that space's mean, i.e. says nothing)."""
        old = {c.key: i for i, c in enumerate(self.space.columns)}
        out = np.tile(space.mean_, (len(self.raw_centers_), 1))
        for j, column in enumerate(space.columns):
            i = old.get(column.key)
            if i is not None:
                out[:, j] = self.raw_centers_[:, i]
        return out


def fit_model(
    raw: np.ndarray,
    columns: list[Feature],
    topic_ids: list[int],
    params: SegmentParams,
    previous: SegmentModel | None = None,
) -> tuple[SegmentModel, np.ndarray, np.ndarray]:
    """Fit the segments of the rows of `raw`: the model, each row's segment id and the
    weighted rows."""
    n = len(raw)
    least = max(params.k if params.k else params.k_min, 2) + 1
    if n < least:
        raise SegmentationError(
            f"only {n} authors have at least {params.min_posts} posts; segmenting needs at "
            f"least {least}. Let the stream run longer or lower the minimum posts per author."
        )
    space = FeatureSpace.fit(raw, columns, topic_ids, params.weights)
    x = space.transform(raw)
    if params.k:
        k, curve, chosen_by = params.k, [], "fixed"
    else:
        k, curve = choose_k(x, params.k_min, params.k_max, params.seed)
        chosen_by = "silhouette"
    kmeans = KMeans(k, n_init=params.n_init, random_state=params.seed).fit(x)
    positions = kmeans.labels_
    raw_centers = np.vstack(
        [
            raw[positions == j].mean(axis=0) if (positions == j).any() else space.mean_
            for j in range(k)
        ]
    )
    if previous is not None:
        old = space.transform(previous.raw_center_in(space))
        ids, next_id = match_ids(old, previous.ids_, kmeans.cluster_centers_, previous.next_id_)
    else:
        ids, next_id = list(range(k)), k
    model = SegmentModel(
        space, kmeans.cluster_centers_, raw_centers, ids, next_id, curve, chosen_by
    )
    return model, np.asarray(ids)[positions], x


def silhouette_of(x: np.ndarray, labels: np.ndarray, seed: int = 0) -> float | None:
    if len(set(labels.tolist())) < 2 or len(x) < 3:
        return None
    return float(
        silhouette_score(x, labels, sample_size=min(len(x), SILHOUETTE_SAMPLE), random_state=seed)
    )


def bootstrap_stability(
    raw: np.ndarray,
    columns: list[Feature],
    topic_ids: list[int],
    params: SegmentParams,
    labels: np.ndarray,
    rounds: int = 5,
) -> float:
    """Mean adjusted Rand index between the segments of every author and those of refits
    on bootstrap samples of the authors (1: the same segments every time)."""
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(params.seed + 1)
    k = len(set(labels.tolist()))
    fixed = SegmentParams(**{**params.__dict__, "k": k})
    scores = []
    for round_ in range(rounds):
        rows = rng.choice(len(raw), len(raw), replace=True)
        seeded = SegmentParams(**{**fixed.__dict__, "seed": params.seed + 100 + round_})
        model, _, _ = fit_model(raw[rows], columns, topic_ids, seeded)
        scores.append(adjusted_rand_score(labels, model.predict_raw(raw)))
    return float(np.mean(scores))
