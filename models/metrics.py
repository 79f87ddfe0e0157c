"""How well an engagement model did on held-out posts: one table of metrics, one place.

`ENGAGEMENT_METRICS` names every metric once, with its label; the HTML report, the
experiment log and the `train` summary all read it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.engagement import BANDS, EngagementModel, band_of

# (key, label) of every held-out engagement metric, in the order they are shown.
ENGAGEMENT_METRICS: tuple[tuple[str, str], ...] = (
    ("mae", "MAE (log)"),
    ("rmse", "RMSE (log)"),
    ("r2", "R²"),
    ("spearman", "Spearman ρ"),
    ("band_accuracy", "band accuracy"),
    ("band_macro_f1", "band macro-F1"),
)
METRIC_KEYS: tuple[str, ...] = tuple(key for key, _ in ENGAGEMENT_METRICS)


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from scipy.stats import spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "mae": float(mean_absolute_error(actual, predicted)),
        "rmse": float(math.sqrt(mean_squared_error(actual, predicted))),
        "r2": float(r2_score(actual, predicted)),
        "spearman": float(spearmanr(actual, predicted).statistic),
    }


def band_metrics(
    actual: np.ndarray, predicted: np.ndarray, edges: tuple[float, float]
) -> dict[str, Any]:
    """Accuracy and macro-F1 of the low/medium/high band, both cut at the same `edges`.

    A band absent from both the actual and the predicted bands does not count in the mean.
    `band_rates` is the calibration of the bands: the share of rows predicted in each band
    next to the share observed in it (low, medium, high). A model whose bands are
    calibrated predicts each band about as often as it happens.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    true_bands, predicted_bands = band_of(actual, edges), band_of(predicted, edges)
    present = sorted(set(true_bands.tolist()) | set(predicted_bands.tolist()))
    return {
        "band_accuracy": float(accuracy_score(true_bands, predicted_bands)),
        "band_macro_f1": float(
            f1_score(true_bands, predicted_bands, labels=present, average="macro", zero_division=0)
        ),
        # rows: actual band, columns: predicted band, in the order of BANDS
        "band_confusion": confusion_matrix(
            true_bands, predicted_bands, labels=list(range(len(BANDS)))
        ).tolist(),
        "band_rates": {
            "predicted": _rates(predicted_bands),
            "observed": _rates(true_bands),
        },
    }


def _rates(bands: np.ndarray) -> list[float]:
    """Share of rows in each band, in the order of BANDS (zeros when there are no rows)."""
    counts = np.bincount(bands, minlength=len(BANDS)).astype(np.float64)
    return (counts / max(len(bands), 1)).round(4).tolist()


def engagement_metrics(
    actual: np.ndarray, predicted: np.ndarray, edges: tuple[float, float]
) -> dict[str, Any]:
    return {**regression_metrics(actual, predicted), **band_metrics(actual, predicted, edges)}


def r2_on_log_scale(model: EngagementModel, x: np.ndarray, y: np.ndarray) -> float:
    """Held-out R² of `predict_log` (the model's `predict` gives bands), as a scorer."""
    from sklearn.metrics import r2_score

    return float(r2_score(y, model.predict_log(x)))


def permutation_importance(
    model: EngagementModel, x: np.ndarray, y: np.ndarray, repeats: int = 3, seed: int = 0
) -> np.ndarray:
    """Mean drop of held-out R² when one feature's column is shuffled."""
    from sklearn.inspection import permutation_importance as sklearn_permutation_importance

    result = sklearn_permutation_importance(
        model, x, y, scoring=r2_on_log_scale, n_repeats=repeats, random_state=seed
    )
    return result.importances_mean
