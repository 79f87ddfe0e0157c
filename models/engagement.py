"""Engagement: a random forest on posting-time features, predicting log(1 + engagement)."""

from __future__ import annotations

from typing import NamedTuple

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


class _ForestArrays(NamedTuple):
    """Every tree of a forest in one set of node arrays (see `EngagementModel._forest_arrays`)."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: int


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
            leaves, _ = self._walk(x, contributions=False)
            return self._log_values(leaves, features)
        total = np.zeros(n_rows)
        for tree in self._trees():
            total += tree.predict(x).reshape(n_rows)
        return self._with_baseline(total, features)

    def _log_values(self, leaves: np.ndarray, features: np.ndarray) -> np.ndarray:
        """`predict_log` from the leaf each row reached in each tree (see `_walk`)."""
        forest = self._forest_arrays()
        leaf_values = forest.value[leaves].reshape(features.shape[0], len(forest.roots))
        # A cumulative sum adds the trees in order, as `predict_log` does tree by tree.
        return self._with_baseline(np.cumsum(leaf_values, axis=1)[:, -1], features)

    def _with_baseline(self, total: np.ndarray, features: np.ndarray) -> np.ndarray:
        if self.baseline == "none":
            return total / len(self.forest_.estimators_)
        return total / len(self.forest_.estimators_) + self._base(
            np.asarray(features, dtype=np.float64)
        )

    def contributions(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split each prediction into a bias plus one contribution per feature.

        Along each tree's decision path, the change in node value at a split is credited to
        the split's feature; averaged over trees, bias + contributions.sum(1) = prediction.
        With the author baseline, the author's recent level is credited to its feature.
        """
        _, bias, contrib = self._walk_with_contributions(features)
        return bias, contrib

    def predict_and_contributions(
        self, features: np.ndarray
    ) -> tuple[list[EngagementPrediction], np.ndarray, np.ndarray]:
        """`predict` and `contributions` of the same rows from one walk down the trees."""
        leaves, bias, contrib = self._walk_with_contributions(features)
        return self._predictions(self._log_values(leaves, features)), bias, contrib

    def _walk_with_contributions(
        self, features: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The leaves each row reached (see `_walk`), the bias and the contributions."""
        x = np.ascontiguousarray(features, dtype=np.float32)
        n_rows, n_features = x.shape
        forest = self._forest_arrays()
        leaves, summed = self._walk(x, contributions=True)
        contrib = summed.reshape(n_rows, n_features) / len(forest.roots)
        bias = np.full(n_rows, forest.value[forest.roots].mean())
        if self.baseline == "author":
            bias += self.intercept_
            contrib[:, _RECENT_LIFT] += np.asarray(features, dtype=np.float64)[:, _RECENT_LIFT]
        return leaves, bias, contrib

    def _walk(self, x: np.ndarray, contributions: bool) -> tuple[np.ndarray, np.ndarray]:
        """Every float32 row down every tree at once, one tree level per numpy step: the
        leaf reached (row by row, trees in order) and each (row, feature)'s sum of the value
        changes at the splits on that feature, flattened (zeros unless asked).

        Leaves point to themselves (see `_forest_arrays`), so every step moves every row
        and tree and no step filters: a leaf reached early stays, with a change of 0.
        """
        forest = self._forest_arrays()
        n_rows, n_features = x.shape
        # float32 input against float64 thresholds, as the trees themselves compare
        cells = x.astype(np.float64).ravel()
        row_offsets = np.repeat(np.arange(n_rows) * n_features, len(forest.roots))
        nodes = np.tile(forest.roots, n_rows)
        split_cells, changes = [], []
        for _ in range(forest.depth):
            cell = row_offsets + forest.feature.take(nodes)
            below = cells.take(cell) <= forest.threshold.take(nodes)
            children = np.where(below, forest.left.take(nodes), forest.right.take(nodes))
            if contributions:
                split_cells.append(cell)
                changes.append(forest.value.take(children) - forest.value.take(nodes))
            nodes = children
        if not changes:  # not asked, or every tree is a single leaf
            return nodes, np.zeros(n_rows * n_features)
        # bincount adds each cell's changes in the order np.add.at would: level by level,
        # trees in order.
        summed = np.bincount(
            np.concatenate(split_cells), np.concatenate(changes), minlength=n_rows * n_features
        )
        return nodes, summed

    def _forest_arrays(self) -> _ForestArrays:
        """Every tree's nodes in one set of arrays (children renumbered), the roots and the
        deepest tree's depth; built once per fitted forest, and never saved with the model.
        A leaf's children are the leaf itself, split on feature 0, so a walk can take the
        same number of steps down every tree."""
        cached = self.__dict__.get("_forest_cache")
        if cached is None or cached[0] is not self.forest_:
            trees = self._trees()
            offsets = np.cumsum([0] + [tree.node_count for tree in trees])[:-1]
            placed = list(zip(trees, offsets, strict=True))
            left = np.concatenate([t.children_left + offset for t, offset in placed])
            right = np.concatenate([t.children_right + offset for t, offset in placed])
            leaf = np.concatenate([t.children_left == -1 for t in trees])
            own = np.flatnonzero(leaf)
            left[own] = own
            right[own] = own
            feature = np.concatenate([t.feature for t in trees]).astype(np.intp)
            feature[own] = 0
            arrays = _ForestArrays(
                left,
                right,
                feature,
                np.concatenate([t.threshold for t in trees]),
                np.concatenate([t.value.reshape(-1) for t in trees]),
                offsets,
                max(tree.max_depth for tree in trees),
            )
            cached = self._forest_cache = (self.forest_, arrays)
        return cached[1]

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_forest_cache", None)
        return state

    def predict(self, features: np.ndarray) -> list[EngagementPrediction]:
        return self._predictions(self.predict_log(features))

    def _predictions(self, log_values: np.ndarray) -> list[EngagementPrediction]:
        bands = band_of(log_values, self.band_edges_)
        predicted = np.round(np.expm1(log_values), 2).tolist()
        return [
            EngagementPrediction(value, BANDS[band])
            for value, band in zip(predicted, bands.tolist(), strict=True)
        ]


def band_of(log_values: np.ndarray, edges: tuple[float, float]) -> np.ndarray:
    """Band index (0 low, 1 medium, 2 high) of each log value, cut at `edges`."""
    return np.searchsorted(edges, np.asarray(log_values, dtype=np.float64), side="right")
