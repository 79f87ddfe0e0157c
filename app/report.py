"""The HTML report of a model version: one self-contained file, figures as base64 PNG.

Built from what a version stores (its manifest and `evaluation.npz`, both hash-checked),
so `socialpulse report` can redraw any version without the training data. The file has
inline styles and no script at all; the dashboard serves it under its own strict CSP.
"""

from __future__ import annotations

import base64
import io
import logging
import threading
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader

from app.config import PROJECT_ROOT
from models.engagement import BANDS, band_of
from models.metrics import ENGAGEMENT_METRICS

log = logging.getLogger(__name__)

# matplotlib's pyplot keeps global state: one report is drawn at a time.
_DRAW_LOCK = threading.Lock()
_COLOURS = {"rf": "#4f46e5", "nn": "#d97706"}
_NAMES = {"rf": "random forest", "nn": "neural network"}


def build_report(
    manifest: Mapping[str, Any],
    evaluation: Mapping[str, np.ndarray],
    audiences: Any = None,
) -> str:
    """The report of one version as an HTML string.

    Args:
        manifest: the version's manifest (or the same entries before it is saved).
        evaluation: the arrays `models.training.TrainingEvaluation` stores in `evaluation.npz`.
        audiences: a segmentation (insights.audiences.Segmentation) to add a section for.
    """
    with _DRAW_LOCK, warnings.catch_warnings():
        figures = _figures(manifest, evaluation)
        audience = None
        if audiences is not None:
            from app.audience_report import audience_section

            audience = audience_section(audiences)
    return _TEMPLATE.render(
        version=manifest.get("version", ""),
        created_at=manifest.get("created_at", ""),
        data=manifest.get("data", {}),
        params=manifest.get("params", {}),
        libraries=manifest.get("libraries", {}),
        split=manifest.get("metrics", {}).get("split", {}),
        metric_rows=_metric_rows(manifest.get("metrics", {})),
        models=[m for m in ("rf", "nn") if _holdout(manifest.get("metrics", {}), m)],
        names=_NAMES,
        clusters=_cluster_profiles(evaluation),
        figures=figures,
        edges=[float(e) for e in evaluation["band_edges"]],
        audience=audience,
    )


def _holdout(metrics: Mapping[str, Any], model: str) -> Mapping[str, Any] | None:
    return metrics.get("engagement_holdout" if model == "rf" else "neural_holdout")


def _metric_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, label in ENGAGEMENT_METRICS:
        row = {"label": label}
        for model in ("rf", "nn"):
            held = _holdout(metrics, model)
            row[model] = None if not held or key not in held else f"{held[key]:.3f}"
        rows.append(row)
    return rows


def _cluster_ids(evaluation: Mapping[str, np.ndarray]) -> list[int]:
    """The id of each labelled cluster (versions saved before ids were stored: 0 … k−1)."""
    if "cluster_ids" in evaluation:
        return [int(i) for i in evaluation["cluster_ids"]]
    return list(range(len(evaluation["cluster_labels"])))


def _cluster_profiles(evaluation: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    clusters = evaluation["cluster"]
    target = evaluation["target"].astype(np.float64)
    sentiment = evaluation["sentiment"].astype(np.float64)
    profiles = []
    for cid, label, terms in zip(
        _cluster_ids(evaluation),
        evaluation["cluster_labels"],
        evaluation["cluster_terms"],
        strict=True,
    ):
        members = clusters == cid
        n = int(members.sum())
        profiles.append(
            {
                "id": cid,
                "label": str(label),
                "terms": str(terms),
                "posts": n,
                "share": f"{n / max(len(clusters), 1):.1%}",
                "sentiment": f"{sentiment[members].mean():+.3f}" if n else "–",
                "log_engagement": f"{target[members].mean():.2f}" if n else "–",
                "median": f"{np.expm1(np.median(target[members])):,.0f}" if n else "–",
            }
        )
    return profiles


# -- figures --------------------------------------------------------------------------------------
def _figures(manifest: Mapping[str, Any], ev: Mapping[str, np.ndarray]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display, no GUI toolkit
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.85)
    # seaborn's heatmap calls a matplotlib method that matplotlib plans to deprecate.
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning, module="seaborn")
    predictions = {"rf": ev["test_rf"].astype(np.float64)}
    if "test_nn" in ev:
        predictions["nn"] = ev["test_nn"].astype(np.float64)
    actual = ev["test_actual"].astype(np.float64)
    names = [str(n) for n in ev["feature_names"]]
    figures = {}
    try:
        figures["correlation"] = _correlation(plt, sns, ev, names)
        figures["clusters"] = _cluster_bars(plt, sns, ev)
        figures["predicted"] = _predicted_vs_actual(plt, actual, predictions)
        figures["residuals"] = _residuals(plt, sns, actual, predictions)
        figures["importance"] = _importances(plt, ev, names)
        figures["confusion"] = _confusions(plt, sns, actual, predictions, ev["band_edges"])
        if "nn" in predictions:
            figures["comparison"] = _comparison(plt, manifest.get("metrics", {}))
    finally:
        plt.close("all")
    return figures


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _correlation(plt, sns, ev, names) -> str:
    import pandas as pd

    frame = pd.DataFrame(ev["features"].astype(np.float64), columns=names)
    frame["log(1 + outcome)"] = ev["target"].astype(np.float64)
    frame = frame.loc[:, frame.std() > 0]  # constant columns have no correlation
    corr = frame.corr(method="spearman")
    size = 0.36 * len(corr) + 2
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    sns.heatmap(
        corr, cmap="vlag", vmin=-1, vmax=1, center=0, square=True, ax=ax, cbar_kws={"shrink": 0.6}
    )
    ax.set_title("Spearman correlation of the features and the target (all rows)")
    return _png(fig)


def _cluster_bars(plt, sns, ev) -> str:
    ids = _cluster_ids(ev)
    clusters = ev["cluster"].astype(int)
    counts = np.array([int((clusters == i).sum()) for i in ids])
    labels = [f"{i}: {label}" for i, label in zip(ids, ev["cluster_labels"], strict=True)]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(labels) + 1.2))
    sns.barplot(x=counts, y=labels, color="#6366f1", ax=ax, orient="h")
    ax.set_xlabel("posts")
    ax.set_ylabel("")
    ax.set_title("Posts per topic cluster")
    return _png(fig)


def _predicted_vs_actual(plt, actual, predictions) -> str:
    fig, axes = plt.subplots(1, len(predictions), figsize=(5.2 * len(predictions), 4.6))
    axes = np.atleast_1d(axes)
    low = min(actual.min(), *(p.min() for p in predictions.values()))
    high = max(actual.max(), *(p.max() for p in predictions.values()))
    for ax, (model, predicted) in zip(axes, predictions.items(), strict=True):
        ax.scatter(actual, predicted, s=7, alpha=0.35, color=_COLOURS[model], linewidths=0)
        ax.plot([low, high], [low, high], color="#111827", linewidth=1, linestyle="--")
        ax.set_xlabel("actual log(1 + outcome)")
        ax.set_ylabel("predicted")
        ax.set_title(f"{_NAMES[model]}: held-out later rows")
    return _png(fig)


def _residuals(plt, sns, actual, predictions) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for model, predicted in predictions.items():
        residual = actual - predicted
        sns.histplot(
            residual, bins=40, ax=axes[0], color=_COLOURS[model], alpha=0.45, label=_NAMES[model]
        )
        axes[1].scatter(
            predicted, residual, s=6, alpha=0.3, color=_COLOURS[model], label=_NAMES[model]
        )
    axes[0].set_xlabel("actual − predicted (log scale)")
    axes[0].set_title("Residuals on the held-out rows")
    axes[0].legend()
    axes[1].axhline(0, color="#111827", linewidth=1, linestyle="--")
    axes[1].set_xlabel("predicted")
    axes[1].set_ylabel("actual − predicted")
    axes[1].set_title("Residuals against the prediction")
    return _png(fig)


def _importances(plt, ev, names) -> str:
    permutation = ev["rf_permutation_importance"].astype(np.float64)
    impurity = ev["rf_importance"].astype(np.float64)
    order = np.argsort(permutation)
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.28 * len(names) + 1.5), sharey=True)
    y = np.arange(len(names))
    axes[0].barh(y, permutation[order], color="#4f46e5")
    axes[0].set_yticks(y, [names[i] for i in order])
    axes[0].set_title("Permutation: drop of held-out R²")
    axes[1].barh(y, impurity[order], color="#a5b4fc")
    axes[1].set_title("Impurity (training rows)")
    fig.suptitle("Random forest feature importance")
    return _png(fig)


def _confusions(plt, sns, actual, predictions, edges) -> str:
    from sklearn.metrics import confusion_matrix

    fig, axes = plt.subplots(1, len(predictions), figsize=(4.6 * len(predictions), 3.9))
    axes = np.atleast_1d(axes)
    true_bands = band_of(actual, edges)
    for ax, (model, predicted) in zip(axes, predictions.items(), strict=True):
        matrix = confusion_matrix(true_bands, band_of(predicted, edges), labels=[0, 1, 2])
        sns.heatmap(
            matrix,
            annot=True,
            fmt="d",
            cmap="Blues",
            cbar=False,
            xticklabels=BANDS,
            yticklabels=BANDS,
            ax=ax,
        )
        ax.set_xlabel("predicted band")
        ax.set_ylabel("actual band")
        ax.set_title(_NAMES[model])
    return _png(fig)


def _comparison(plt, metrics) -> str:
    keys = [("r2", "R²"), ("spearman", "Spearman ρ"), ("band_macro_f1", "band macro-F1")]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(keys))
    for offset, model in ((-0.2, "rf"), (0.2, "nn")):
        held = _holdout(metrics, model) or {}
        values = [held.get(key, np.nan) for key, _ in keys]
        bars = ax.bar(x + offset, values, width=0.38, color=_COLOURS[model], label=_NAMES[model])
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(x, [label for _, label in keys])
    ax.axhline(0, color="#111827", linewidth=0.8)
    ax.set_title("Forest against network on the same held-out rows")
    ax.legend()
    return _png(fig)


_TEMPLATE = Environment(
    loader=FileSystemLoader(str(PROJECT_ROOT / "templates")), autoescape=True
).get_template("model_report.html")
