"""Engagement: a random forest on posting-time features, predicting log(1 + engagement)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestRegressor

from models.features import FEATURE_NAMES, AuthorPrior
from streaming.records import EngagementPrediction

BANDS = ("low", "medium", "high")
BASELINES = ("none", "author")
# With baseline="author" the forest learns the deviation from the author's recent level.
_RECENT_LIFT = FEATURE_NAMES.index("author_recent_lift")
# Up to this many rows, `predict_log` walks every tree at once (one numpy step per tree
# level), which beats a call per tree; larger batches are faster tree by tree.
SMALL_BATCH = 8


class EngagementModel(BaseEstimator):
    """Random forest regressor with low/medium/high bands at the training target's terciles.

    A scikit-learn estimator for `clone` and grid search; `predict` returns predictions with
    bands, `predict_log` the numbers.

    The forest is kept small on purpose: a full-depth forest costs about as much per post
    as VADER and is large on disk, for little gain on held-out data (README, "Models").

    Args:
        n_estimators, max_depth, min_samples_leaf, max_features: the forest's.
        baseline: "none" predicts log(1 + engagement) directly; "author" predicts it as the
            author's recent level (feature `author_recent_lift` plus a fitted intercept) plus
            what the forest learns on top. The level carries over to accounts whose audience
            moved to heights the forest has few training rows for; unseen authors get the
            intercept. Needs the full feature layout of `FEATURE_NAMES`.
        seed: random seed of the forest.
    """

    def __init__(
        self,
        n_estimators: int = 30,
        max_depth: int | None = 10,
        min_samples_leaf: int = 4,
        max_features: float | str | None = 0.6,
        baseline: str = "none",
        seed: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.baseline = baseline
        self.seed = seed

    def fit(
        self,
        features: np.ndarray,
        log_target: np.ndarray,
        author_prior: AuthorPrior | None = None,
    ) -> EngagementModel:
        """Fit on time-ordered rows.

        Args:
            features: rows of posting-time features.
            log_target: log(1 + engagement) of each row.
            author_prior: the author table live posts are looked up in (fitted on the same
                rows); None means every author is unseen when scoring.
        """
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}, not {self.baseline!r}")
        features = np.asarray(features, dtype=np.float64)
        log_target = np.asarray(log_target, dtype=np.float64)
        self.intercept_ = 0.0
        residual = log_target
        if self.baseline == "author":
            level = features[:, _RECENT_LIFT]
            self.intercept_ = float(np.mean(log_target - level))
            residual = log_target - level - self.intercept_
        self.forest_ = RandomForestRegressor(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            random_state=self.seed,
            n_jobs=1,
        ).fit(features, residual)
        self.band_edges_ = tuple(float(q) for q in np.quantile(log_target, [1 / 3, 2 / 3]))
        if author_prior is None:
            author_prior = AuthorPrior().fit([], [])
        self.author_prior_ = author_prior
        return self

    def _trees(self):
        return [estimator.tree_ for estimator in self.forest_.estimators_]

    def _base(self, x: np.ndarray) -> np.ndarray | float:
        if self.baseline == "author":
            return self.intercept_ + x[:, _RECENT_LIFT].astype(np.float64)
        return 0.0

    def predict_log(self, features: np.ndarray) -> np.ndarray:
        """Same numbers as `forest_.predict` (plus the baseline), without its per-call
        validation and job overhead.

        That overhead (about 0.2 ms per tree) dominates small micro-batches.
        """
        n_rows = features.shape[0]
        if n_rows == 0:
            return np.empty(0)
        x = np.ascontiguousarray(features, dtype=np.float32)  # what the trees compare
        if n_rows <= SMALL_BATCH:
            # Every tree at once; a cumulative sum adds the trees in order, as below.
            total = np.cumsum(self._leaf_values(x), axis=1)[:, -1]
        else:
            total = np.zeros(n_rows)
            for tree in self._trees():
                total += tree.predict(x).reshape(n_rows)
        if self.baseline == "none":
            return total / len(self.forest_.estimators_)
        return total / len(self.forest_.estimators_) + self._base(
            np.asarray(features, dtype=np.float64)
        )

    def _leaf_values(self, x: np.ndarray) -> np.ndarray:
        """(rows, trees): the value of the leaf each float32 row reaches in each tree."""
        left, right, feature, threshold, value, roots = self._forest_arrays()
        rows = np.repeat(np.arange(x.shape[0]), len(roots))
        nodes = np.tile(roots, x.shape[0])
        inner = left[nodes] != -1
        while inner.any():
            at = nodes[inner]
            below = x[rows[inner], feature[at]].astype(np.float64) <= threshold[at]
            nodes[inner] = np.where(below, left[at], right[at])
            inner = left[nodes] != -1
        return value[nodes].reshape(x.shape[0], len(roots))

    def contributions(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split each prediction into a bias plus one contribution per feature.

        Along each tree's decision path, the change in node value at a split is credited to
        the split's feature; averaged over trees, bias + contributions.sum(1) = prediction.
        With the author baseline, the author's recent level is credited to its feature.
        Every row walks every tree at once, one tree level per step (see `_forest_arrays`).
        """
        x = np.ascontiguousarray(features, dtype=np.float32)
        n_rows, n_features = x.shape
        left, right, feature, threshold, value, roots = self._forest_arrays()
        contrib = np.zeros((n_rows, n_features))
        rows = np.repeat(np.arange(n_rows), len(roots))
        nodes = np.tile(roots, n_rows)
        while len(nodes):
            inner = left[nodes] != -1  # leaves are done
            rows, nodes = rows[inner], nodes[inner]
            split = feature[nodes]
            # float32 input against float64 thresholds, as the trees themselves compare
            below = x[rows, split].astype(np.float64) <= threshold[nodes]
            children = np.where(below, left[nodes], right[nodes])
            np.add.at(contrib, (rows, split), value[children] - value[nodes])
            nodes = children
        contrib /= len(roots)
        bias = np.full(n_rows, value[roots].mean())
        if self.baseline == "author":
            bias += self.intercept_
            contrib[:, _RECENT_LIFT] += np.asarray(features, dtype=np.float64)[:, _RECENT_LIFT]
        return bias, contrib

    def _forest_arrays(self) -> tuple[np.ndarray, ...]:
        """Every tree's nodes in one set of arrays (children renumbered), and the roots;
        built once per fitted forest, and never saved with the model."""
        cached = self.__dict__.get("_forest_cache")
        if cached is None or cached[0] is not self.forest_:
            trees = self._trees()
            offsets = np.cumsum([0] + [tree.node_count for tree in trees])[:-1]

            def joined(child: str) -> np.ndarray:
                return np.concatenate(
                    [
                        np.where(c == -1, -1, c + o)
                        for c, o in zip((getattr(t, child) for t in trees), offsets, strict=True)
                    ]
                )

            cached = self._forest_cache = (
                self.forest_,
                (
                    joined("children_left"),
                    joined("children_right"),
                    np.concatenate([t.feature for t in trees]),
                    np.concatenate([t.threshold for t in trees]),
                    np.concatenate([t.value.reshape(-1) for t in trees]),
                    offsets,
                ),
            )
        return cached[1]

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_forest_cache", None)
        return state

    def predict(self, features: np.ndarray) -> list[EngagementPrediction]:
        log_values = self.predict_log(features)
        bands = band_of(log_values, self.band_edges_)
        predicted = np.round(np.expm1(log_values), 2).tolist()
        return [
            EngagementPrediction(value, BANDS[band])
            for value, band in zip(predicted, bands.tolist(), strict=True)
        ]


def band_of(log_values: np.ndarray, edges: tuple[float, float]) -> np.ndarray:
    """Band index (0 low, 1 medium, 2 high) of each log value, cut at `edges`."""
    return np.searchsorted(edges, np.asarray(log_values, dtype=np.float64), side="right")
