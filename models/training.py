"""Fitting the clustering and engagement models with time-ordered evaluation.

Every evaluation here is time-ordered: rows are sorted by posting time, models learn from
the earlier 80% and are measured on the later 20%, and the grid search validates each fold
on rows later than the ones it learned from (`TimeSeriesSplit`). Nothing is shuffled
across time, so a score says how the model does on posts it could not have seen.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from models.calibrated_sentiment import VaderFallbackSentimentModel
from models.clustering import AUTO, StreamingTopicClusterer, topic_document
from models.corrections import CorrectionSet, evaluate_corrections
from models.datasets import TEST_FRACTION, Dataset, DatasetError, check_time_order, split_index
from models.engagement import EngagementModel
from models.features import AUTHOR_FEATURES, FEATURE_NAMES, AuthorPrior, author_key
from models.featurize import PostFeatures, featurize
from models.metrics import engagement_metrics, permutation_importance
from models.registry import EVALUATION_FILE, NEURAL_FILE, ModelBundle, save_bundle
from models.sentiment_training import SentimentData, train_sentiment
from models.signing import ManifestKey
from streaming.records import Post

log = logging.getLogger(__name__)

DEFAULT_CLUSTERS: int | str = AUTO  # topics follow the data (see models/clustering.py)
MODEL_CHOICES = ("rf", "nn", "both")
# The forest settings used without a grid search. Its size (30 trees of depth ≤ 10) keeps
# the live path fast: README, "Forest size and speed".
DEFAULT_FOREST: dict[str, Any] = {
    "n_estimators": 30,
    "max_depth": 10,
    "min_samples_leaf": 4,
    "max_features": 0.6,
    "baseline": "author",
}
# The author's recent level averages their last 20 posts: recent enough to follow an account
# whose audience changes (@BarackObama's posts went from ~e^7.7 to ~e^12.5 favorites when it
# became his personal account in 2017), long enough to average out a single viral post.
DEFAULT_AUTHOR_WINDOW = 20
# Author levels are kept per kind of post (own, reshare, reply): see AuthorPrior. On the
# FiveThirtyEight split this lifts the held-out R² by 0.02-0.035 over seeds (README).
AUTHOR_BY_KIND = True
# Searched with TimeSeriesSplit on the training rows. Fixed, not searched: the forest's size
# (a speed decision), the author window (above) and baseline="author" (trees cannot predict
# beyond the targets they saw, the author's level carries a prediction there).
PARAM_GRID: dict[str, list[Any]] = {
    "authors__window": [0, DEFAULT_AUTHOR_WINDOW],  # 0: no author features at all
    "model__max_depth": [8, 12],
    "model__min_samples_leaf": [4, 8],
    "model__max_features": [0.4, 0.6],
}
_N_BASE = len(FEATURE_NAMES) - len(AUTHOR_FEATURES)


def with_running_authors(
    features: np.ndarray, authors: Sequence[Hashable], log_targets: np.ndarray, prior: AuthorPrior
) -> np.ndarray:
    """Training rows' features with the author columns each row had when it was posted."""
    out = np.array(features, dtype=np.float64, copy=True)
    out[:, _N_BASE:] = prior.running(authors, log_targets)
    return out


def split_features(
    base: np.ndarray, authors: Sequence[Hashable], log_targets: np.ndarray, split: int, window: int
) -> tuple[np.ndarray, np.ndarray, AuthorPrior]:
    """Training and held-out features around `split`, with the author prior of the first.

    Training rows get running author values; held-out rows the values at the end of the
    training rows, as live posts would. `base` holds the other features of every row.
    """
    prior = AuthorPrior(window, by_kind=AUTHOR_BY_KIND).fit(authors[:split], log_targets[:split])
    x_train = with_running_authors(base[:split], authors[:split], log_targets[:split], prior)
    x_test = np.array(base[split:], dtype=np.float64, copy=True)
    x_test[:, _N_BASE:] = prior.lookup(authors[split:])
    return x_train, x_test, prior


def holdout_matrices(
    dataset: Dataset,
    n_clusters: int | str = DEFAULT_CLUSTERS,
    author_window: int = DEFAULT_AUTHOR_WINDOW,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) of the time-ordered split, as `train` builds them.

    The clusterer learns from the training rows only. For comparing models outside `train`,
    e.g. `models.experiments.forest_size_tradeoff`.
    """
    posts, targets = dataset.posts, np.asarray(dataset.log_targets, dtype=np.float64)
    check_time_order(posts)
    split = split_index(len(posts), test_fraction)
    docs = [topic_document(p) for p in posts]
    clusterer = StreamingTopicClusterer(n_clusters=n_clusters, seed=seed).fit(docs[:split])
    base = featurize(posts, clusterer).matrix
    authors = [author_key(p, AUTHOR_BY_KIND) for p in posts]
    x_train, x_test, _ = split_features(base, authors, targets, split, author_window)
    return x_train, targets[:split], x_test, targets[split:]


class AuthorColumns(TransformerMixin, BaseEstimator):
    """Grid-search step: the last input column (author codes) becomes the author features.

    Fitting rows get the running values (earlier rows only), later rows the values at the
    end of the fitting rows, just as a held-out or live post would.
    """

    def __init__(self, window: int = DEFAULT_AUTHOR_WINDOW, smoothing: float = 2.0) -> None:
        self.window = window
        self.smoothing = smoothing

    def fit(self, x: np.ndarray, y: np.ndarray) -> AuthorColumns:
        self.prior_ = AuthorPrior(self.window, self.smoothing).fit(x[:, -1].tolist(), y)
        return self

    def fit_transform(self, x: np.ndarray, y: np.ndarray = None, **_: Any) -> np.ndarray:
        self.fit(x, y)
        return np.hstack([x[:, :-1], self.prior_.running(x[:, -1].tolist(), y)])

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.hstack([x[:, :-1], self.prior_.lookup(x[:, -1].tolist())])


def _neg_mse(estimator, x: np.ndarray, y: np.ndarray) -> float:
    """Grid-search score through `predict_log` (the model's `predict` returns bands)."""
    predicted = estimator[-1].predict_log(estimator[:-1].transform(x))
    return -float(np.mean((np.asarray(y) - predicted) ** 2))


# -- training -------------------------------------------------------------------------------------
@dataclass
class TrainingOptions:
    """What `train` fits and how.

    Attributes:
        model: "rf" (tuned forest), "nn" (neural network, plus the forest at its shipped
            settings: the live path always scores with a forest), or "both".
        n_clusters: topic clusters, or "auto".
        search: grid-search the forest with TimeSeriesSplit (else the shipped settings).
        cv_splits: folds of the time-series split.
        n_estimators: trees of the forest (fixed: a speed decision, see README).
        author_window: the author prior's window (0: no author features); None searches
            0 or `DEFAULT_AUTHOR_WINDOW` with the grid, or uses the latter without it.
        forest: forest settings that override the defaults (and are not searched).
        test_fraction: the later share of rows held out.
        seed: random seed of every model.
        n_jobs: parallel grid-search fits (-1: every CPU).
        neural: parameters of `NeuralEngagementModel`.
    """

    model: str = "rf"
    n_clusters: int | str = DEFAULT_CLUSTERS
    search: bool = True
    cv_splits: int = 4
    n_estimators: int = DEFAULT_FOREST["n_estimators"]
    author_window: int | None = None
    forest: dict[str, Any] = field(default_factory=dict)
    test_fraction: float = TEST_FRACTION
    seed: int = 0
    n_jobs: int = -1
    neural: dict[str, Any] = field(default_factory=dict)

    @property
    def wants_forest_search(self) -> bool:
        return self.search and self.model in ("rf", "both")

    @property
    def wants_neural(self) -> bool:
        return self.model in ("nn", "both")

    def stages(self) -> list[str]:
        stages = ["topic clusters", "features"]
        if self.wants_forest_search:
            stages.append("grid search")
        stages.append("held-out forest")
        if self.wants_neural:
            stages.append("neural network")
        stages.append("refit on all rows")
        return stages


@dataclass
class TrainingResult:
    """Everything one training run produced, before it is saved as a version."""

    bundle: ModelBundle
    metrics: dict[str, Any]
    params: dict[str, Any]
    data: dict[str, Any]
    evaluation: dict[str, np.ndarray]
    neural: Any = None  # NeuralEngagementModel when trained
    seconds: float = 0.0


def train(
    dataset: Dataset,
    options: TrainingOptions | None = None,
    progress: Callable[[str], None] | None = None,
    sentiment_data: SentimentData | None = None,
    corrections: CorrectionSet | None = None,
) -> TrainingResult:
    """Fit, evaluate on the later rows, then refit on every row for the saved version.

    Args:
        dataset: time-ordered posts and targets.
        options: what to fit.
        progress: called with each stage's name once the stage is done.
        sentiment_data: labelled texts for the calibrated sentiment model (stage
            "sentiment model"); None keeps VADER's label with its measured probability
            (`VaderFallbackSentimentModel`).
        corrections: what people corrected. Their train side joins the sentiment data (when
            there is some) and seeds topics; their test side is measured, never learned.

    Raises:
        DatasetError: too few rows for the clusters or the time-series folds.
        NeuralUnavailable: a neural model was asked for without TensorFlow installed.
    """
    options = options or TrainingOptions()
    if options.model not in MODEL_CHOICES:
        raise ValueError(f"model must be one of {MODEL_CHOICES}, not {options.model!r}")
    if options.wants_neural:
        from models.neural import require_tensorflow

        require_tensorflow()  # fail before minutes of work, not after
    done = progress or (lambda stage: None)
    started = time.perf_counter()
    posts, targets = dataset.posts, np.asarray(dataset.log_targets, dtype=np.float64)
    check_time_order(posts)
    n = len(posts)
    split = split_index(n, options.test_fraction)
    fixed_k = options.n_clusters if isinstance(options.n_clusters, int) else 1
    if split < max(fixed_k, 2 * (options.cv_splits + 1)):
        raise DatasetError(
            f"{n} rows are too few to train {options.n_clusters} clusters and evaluate on the "
            f"later {options.test_fraction:.0%}: use more rows or fewer --k"
        )
    texts = [p.text for p in posts]
    authors = [author_key(p, AUTHOR_BY_KIND) for p in posts]
    docs = [topic_document(p) for p in posts]

    held_clusterer = StreamingTopicClusterer(n_clusters=options.n_clusters, seed=options.seed)
    held_clusterer.fit(docs[:split])
    done("topic clusters")
    held_features = featurize(posts, held_clusterer)
    base = held_features.matrix
    done("features")

    forest_params = {**DEFAULT_FOREST, "n_estimators": options.n_estimators, **options.forest}
    window = DEFAULT_AUTHOR_WINDOW if options.author_window is None else options.author_window
    search_summary: dict[str, Any] | None = None
    if options.wants_forest_search:
        forest_params, window, search_summary = _grid_search(
            base[:split], authors[:split], targets[:split], forest_params, options
        )
        done("grid search")

    x_train, x_test, held_prior = split_features(base, authors, targets, split, window)
    y_train, y_test = targets[:split], targets[split:]
    held_forest = EngagementModel(seed=options.seed, **forest_params).fit(
        x_train, y_train, held_prior
    )
    rf_predicted = held_forest.predict_log(x_test)
    edges = held_forest.band_edges_
    metrics: dict[str, Any] = {
        "engagement_holdout": engagement_metrics(y_test, rf_predicted, edges),
        "split": {
            "train_rows": split,
            "test_rows": n - split,
            "train_until": posts[split - 1].created_at.isoformat(),
            "test_from": posts[split].created_at.isoformat(),
        },
    }
    if search_summary:
        metrics["cv"] = {"best_neg_mse": search_summary["best_score"]}
    done("held-out forest")

    nn_predicted = None
    neural_params: dict[str, Any] = {}
    if options.wants_neural:
        from models.neural import NeuralEngagementModel

        held_neural = NeuralEngagementModel(seed=options.seed, **options.neural)
        held_neural.fit(texts[:split], x_train, y_train)
        nn_predicted = held_neural.predict_log(texts[split:], x_test)
        metrics["neural_holdout"] = engagement_metrics(y_test, nn_predicted, edges)
        neural_params = {**held_neural.get_params(), "epochs_used": held_neural.epochs_}
        done("neural network")

    clusterer = StreamingTopicClusterer(n_clusters=options.n_clusters, seed=options.seed)
    clusterer.fit(docs)
    seeded = clusterer.seed_topics(corrections.topic_groups()) if corrections else []
    final_features = featurize(posts, clusterer, sentiments=held_features.sentiments)
    prior = AuthorPrior(window, by_kind=AUTHOR_BY_KIND).fit(authors, targets)
    x_all = with_running_authors(final_features.matrix, authors, targets, prior)
    engagement = EngagementModel(seed=options.seed, **forest_params).fit(x_all, targets, prior)
    final_neural = None
    if options.wants_neural:
        # The same network refit on every row for as many epochs as early stopping chose.
        final_neural = NeuralEngagementModel(
            seed=options.seed, **{**options.neural, "epochs": held_neural.epochs_}
        )
        final_neural.fit(texts, x_all, targets, early_stopping=False)
    done("refit on all rows")

    evaluation = TrainingEvaluation(
        posts=posts,
        targets=targets,
        features=final_features,
        x_all=x_all,
        clusterer=clusterer,
        split=split,
        held_forest=held_forest,
        x_test=x_test,
        rf_predicted=rf_predicted,
        nn_predicted=nn_predicted,
    ).arrays()
    params = {
        "model": options.model,
        "n_clusters": options.n_clusters,
        "test_fraction": options.test_fraction,
        "seed": options.seed,
        "author_prior": {"window": window, "smoothing": prior.smoothing, "by_kind": prior.by_kind},
        "engagement": _params(engagement),
        "features": list(FEATURE_NAMES),
    }
    if search_summary:
        params["search"] = {
            "grid": search_grid(options),
            "cv": f"TimeSeriesSplit(n_splits={options.cv_splits})",
            "scoring": "neg_mean_squared_error",
            "candidates": search_summary["candidates"],
        }
    if neural_params:
        params["neural"] = neural_params
    data = dataset.description
    examples = corrections.sentiment_examples() if corrections else ([], [])
    if sentiment_data is not None:
        sentiment, metrics["sentiment_holdout"] = train_sentiment(
            sentiment_data, options.test_fraction, options.seed, corrections=examples
        )
        data = {**data, "sentiment": sentiment_data.description}
        done("sentiment model")
    else:
        sentiment = VaderFallbackSentimentModel()
    params["sentiment"] = sentiment.describe()
    if corrections is not None:
        data = {
            **data,
            "corrections": {
                **corrections.counts(),
                # Without labelled files there is no calibrated model to teach.
                "sentiment_learned": len(examples[0]) if sentiment_data is not None else 0,
                "topics_seeded": seeded,
            },
        }
        metrics["corrections"] = evaluate_corrections(corrections, sentiment, clusterer)
    return TrainingResult(
        bundle=ModelBundle(clusterer=clusterer, engagement=engagement, sentiment=sentiment),
        metrics=metrics,
        params=params,
        data=data,
        evaluation=evaluation,
        neural=final_neural,
        seconds=round(time.perf_counter() - started, 2),
    )


def search_grid(options: TrainingOptions) -> dict[str, list[Any]]:
    """The grid without what the options fix."""
    grid = dict(PARAM_GRID)
    if options.author_window is not None:
        grid["authors__window"] = [options.author_window]
    for name in options.forest:
        grid.pop(f"model__{name}", None)
    return grid


def _grid_search(
    base: np.ndarray,
    authors: Sequence[Hashable],
    targets: np.ndarray,
    forest_params: dict[str, Any],
    options: TrainingOptions,
) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """Best forest settings and author window on the training rows, by TimeSeriesSplit."""
    from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
    from sklearn.pipeline import Pipeline

    codes = {author: i for i, author in enumerate(dict.fromkeys(authors))}
    x = np.hstack([base[:, :_N_BASE], np.array([[codes[a]] for a in authors], dtype=float)])
    pipeline = Pipeline(
        [
            ("authors", AuthorColumns()),
            ("model", EngagementModel(seed=options.seed, **forest_params)),
        ]
    )
    search = GridSearchCV(
        pipeline,
        search_grid(options),
        scoring=_neg_mse,
        cv=TimeSeriesSplit(n_splits=options.cv_splits),
        n_jobs=options.n_jobs,
        refit=False,
        error_score="raise",
    )
    search.fit(x, targets)
    best = search.best_params_
    chosen = dict(forest_params)
    chosen.update({k.split("__", 1)[1]: v for k, v in best.items() if k.startswith("model__")})
    log.info("grid search: best %s (neg MSE %.4f)", best, search.best_score_)
    return (
        chosen,
        int(best.get("authors__window", DEFAULT_AUTHOR_WINDOW)),
        {"best_score": float(search.best_score_), "candidates": len(search.cv_results_["params"])},
    )


@dataclass(frozen=True)
class TrainingEvaluation:
    """What one training run leaves for its HTML report.

    Attributes:
        posts, targets: every row, in time order.
        features: the feature path's output with the final clusterer.
        x_all: the final model's training matrix (running author features).
        clusterer: the final topic clusterer.
        split: index of the first held-out row.
        held_forest: the forest fitted on the earlier rows only.
        x_test: held-out rows' features, as that forest saw them.
        rf_predicted, nn_predicted: held-out predictions (log scale); no network: None.
    """

    posts: Sequence[Post]
    targets: np.ndarray
    features: PostFeatures
    x_all: np.ndarray
    clusterer: StreamingTopicClusterer
    split: int
    held_forest: EngagementModel
    x_test: np.ndarray
    rf_predicted: np.ndarray
    nn_predicted: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays stored with the version (numbers and strings only, no pickles)."""
        clusterer, split, targets = self.clusterer, self.split, self.targets
        ids = clusterer.cluster_ids_
        arrays = {
            "feature_names": np.array(FEATURE_NAMES),
            "features": self.x_all.astype(np.float32),
            "target": targets.astype(np.float32),
            "sentiment": np.array([s.compound for s in self.features.sentiments], np.float32),
            "cluster": self.features.cluster_ids.astype(np.int16),
            "cluster_ids": np.array(ids, dtype=np.int64),
            "cluster_labels": np.array(clusterer.labels_),
            "cluster_terms": np.array([" · ".join(clusterer.top_terms(c, 6)) for c in ids]),
            "created_at": np.array([p.created_at.timestamp() for p in self.posts]),
            "split": np.array(split),
            "band_edges": np.array(self.held_forest.band_edges_),
            "test_actual": targets[split:].astype(np.float32),
            "test_rf": self.rf_predicted.astype(np.float32),
            "rf_importance": self.held_forest.forest_.feature_importances_,
            "rf_permutation_importance": permutation_importance(
                self.held_forest, self.x_test, targets[split:]
            ),
        }
        if self.nn_predicted is not None:
            arrays["test_nn"] = self.nn_predicted.astype(np.float32)
        return arrays


def save_result(
    result: TrainingResult,
    root: Path,
    extra_files: Mapping[str, bytes] | None = None,
    key: ManifestKey | None = None,
    mlflow_uri: str | None = None,
    mlflow_experiment: str = "socialpulse",
) -> Path:
    """Save a training run as a new version under `root` (signed with `key`) and log it
    with the experiments, and to MLflow at `mlflow_uri` when given."""
    from models.experiments import ExperimentLog, run_record

    files: dict[str, bytes] = {EVALUATION_FILE: _npz_bytes(result.evaluation)}
    extra_libraries: dict[str, str] = {}
    if result.neural is not None:
        files[NEURAL_FILE] = result.neural.to_bytes()
        extra_libraries = result.neural.library_versions()
    files.update(extra_files or {})
    folder = save_bundle(
        result.bundle,
        root,
        extra_manifest={
            "data": result.data,
            "params": result.params,
            "metrics": result.metrics,
            "training_seconds": result.seconds,
        },
        extra_files=files,
        extra_libraries=extra_libraries,
        key=key,
    )
    record = run_record(result.bundle.manifest)
    if mlflow_uri:
        from models.tracking import log_to_mlflow

        record["mlflow_run_id"] = log_to_mlflow(
            result.bundle.manifest, folder, mlflow_uri, mlflow_experiment
        )
    ExperimentLog(root).append(record)
    return folder


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _params(estimator: object) -> dict[str, Any]:
    """Constructor parameters (scikit-learn convention: learned state ends in `_`)."""
    return {k: v for k, v in vars(estimator).items() if not k.endswith("_")}
