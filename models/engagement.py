"""Engagement: a random forest on posting-time features, predicting log(1 + engagement)."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from streaming.records import EngagementPrediction

BANDS = ("low", "medium", "high")


class EngagementModel:
    """Random forest regressor with low/medium/high bands at the training target's terciles.

    The forest is kept shallow on purpose: a full-depth forest costs about as much per post
    as VADER and is large on disk, for little gain on held-out data.
    """

    def __init__(
        self,
        n_estimators: int = 30,
        max_depth: int | None = 10,
        min_samples_leaf: int = 4,
        max_features: float | str | None = 0.6,
        seed: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.seed = seed

    def fit(self, features: np.ndarray, log_target: np.ndarray) -> EngagementModel:
        self.forest_ = RandomForestRegressor(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            random_state=self.seed,
            n_jobs=1,
        ).fit(features, log_target)
        self.band_edges_ = tuple(float(q) for q in np.quantile(log_target, [1 / 3, 2 / 3]))
        return self

    def _trees(self):
        return [estimator.tree_ for estimator in self.forest_.estimators_]

    def predict_log(self, features: np.ndarray) -> np.ndarray:
        """Same numbers as `forest_.predict`, without its per-call validation and job overhead.

        That overhead (about 0.2 ms per tree) dominates small micro-batches.
        """
        n_rows = features.shape[0]
        if n_rows == 0:
            return np.empty(0)
        x = np.ascontiguousarray(features, dtype=np.float32)  # what the trees compare
        total = np.zeros(n_rows)
        for tree in self._trees():
            total += tree.predict(x).reshape(n_rows)
        return total / len(self.forest_.estimators_)

    def contributions(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split each prediction into a bias plus one contribution per feature.

        Along each tree's decision path, the change in node value at a split is credited to
        the split's feature; averaged over trees, bias + contributions.sum(1) = prediction.
        """
        x = np.ascontiguousarray(features, dtype=np.float32)
        n_rows, n_features = x.shape
        contrib = np.zeros((n_rows, n_features))
        bias = 0.0
        trees = self._trees()
        for tree in trees:
            values = tree.value.reshape(-1)
            bias += values[0]
            paths = tree.decision_path(x)
            for row in range(n_rows):
                nodes = paths.indices[paths.indptr[row] : paths.indptr[row + 1]]
                nodes = np.sort(nodes)  # parents come before children in node numbering
                np.add.at(contrib[row], tree.feature[nodes[:-1]], np.diff(values[nodes]))
        return np.full(n_rows, bias / len(trees)), contrib / len(trees)

    def predict(self, features: np.ndarray) -> list[EngagementPrediction]:
        log_values = self.predict_log(features)
        bands = np.searchsorted(self.band_edges_, log_values, side="right")
        predicted = np.round(np.expm1(log_values), 2).tolist()
        return [
            EngagementPrediction(value, BANDS[band])
            for value, band in zip(predicted, bands.tolist(), strict=True)
        ]
