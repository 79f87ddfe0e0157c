"""Fitting the clustering and engagement models: data sets, time-ordered evaluation, versions.

Every evaluation here is time-ordered: rows are sorted by posting time, models learn from
the earlier 80% and are measured on the later 20%, and the grid search validates each fold
on rows later than the ones it learned from (`TimeSeriesSplit`). Nothing is shuffled
across time, so a score says how the model does on posts it could not have seen.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from models.clustering import StreamingTopicClusterer, topic_document
from models.engagement import BANDS, EngagementModel, band_of
from models.features import AUTHOR_FEATURES, FEATURE_NAMES, AuthorPrior, posting_time_features
from models.registry import (
    EVALUATION_FILE,
    NEURAL_FILE,
    LibraryMismatch,
    ModelBundle,
    list_versions,
    load_bundle,
    save_bundle,
    sha256_file,
)
from models.sentiment import VaderSentimentModel
from streaming.records import InvalidPost, Post, parse_post
from streaming.sources import (
    DELIMITED_SUFFIXES,
    ColumnMapping,
    parse_file_time,
    read_rows,
    row_to_raw_post,
)
from streaming.synthetic import TRAINING_START, SyntheticPostGenerator, strip_private

log = logging.getLogger(__name__)

DEFAULT_TRAINING_POSTS = 6000
DEFAULT_CLUSTERS = 12
TEST_FRACTION = 0.2
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
_CLUSTER_COLUMN = FEATURE_NAMES.index("cluster")


class DatasetError(ValueError):
    """A training file that cannot be used; the message says what to change."""


# -- data -----------------------------------------------------------------------------------------
@dataclass
class Dataset:
    """Posts sorted by posting time, their log(1 + outcome) targets, and where they came from.

    `description` goes into the manifest and the experiment log: source, sha256 of every file
    (or the synthetic seed), a `fingerprint` of the whole, rows used and rows skipped.
    """

    posts: list[Post]
    log_targets: np.ndarray
    description: dict[str, Any] = field(default_factory=dict)


def total_engagement(post: Post) -> int:
    """Observed likes + shares + replies: the training target, never an input."""
    return sum(post.engagement.values()) if post.engagement else 0


def synthetic_training_set(n: int, seed: int) -> list[Post]:
    generator = SyntheticPostGenerator(seed=seed, start=TRAINING_START, rate=0.05)
    return [parse_post(strip_private(raw)) for raw in generator.take(n)]


def synthetic_dataset(n: int = DEFAULT_TRAINING_POSTS, seed: int = 11) -> Dataset:
    """`n` synthetic posts (already in time order) with their likes + shares + replies."""
    posts = synthetic_training_set(n, seed)
    return Dataset(
        posts,
        np.log1p([total_engagement(p) for p in posts]),
        {
            "source": "synthetic",
            "seed": seed,
            "rows": n,
            "fingerprint": f"synthetic:seed={seed}:posts={n}",
            "target": "log(1 + likes + shares + replies)",
        },
    )


def load_dataset(
    paths: Sequence[str | Path],
    mapping: ColumnMapping,
    target_columns: Sequence[str],
    encoding: str = "utf-8",
) -> Dataset:
    """Posts and targets from CSV/TSV/JSONL files, sorted by posting time.

    The target is log(1 + the sum of `target_columns`). Rows without readable text, time or
    target are skipped and counted; a post id seen before is skipped as a duplicate.

    Raises:
        DatasetError: unreadable file, wrong encoding, missing columns, or no usable rows.
    """
    if not target_columns:
        raise DatasetError(
            "say which column(s) hold the outcome to predict, e.g. --target-col favorites "
            "(repeat it to sum several: --target-col likes --target-col retweets)"
        )
    if not mapping.created_at:
        raise DatasetError("training needs posting times: pass --time-col")
    rows: list[tuple[Post, float]] = []
    skipped: Counter[str] = Counter()
    files = []
    seen_ids: set[str] = set()
    for order, raw_path in enumerate(paths):
        path = Path(raw_path)
        if not path.is_file():
            raise DatasetError(f"no such file: {path}")
        used, checked = 0, False
        try:
            for number, row in read_rows(path, encoding):
                if isinstance(row, str):
                    skipped["not a JSON object"] += 1
                    continue
                if not checked and path.suffix.lower() in DELIMITED_SUFFIXES:
                    _check_columns(path, row, mapping, target_columns)  # the header row
                    checked = True
                post_or_reason = _training_row(row, mapping, target_columns, f"{order}:{number}")
                if isinstance(post_or_reason, str):
                    skipped[post_or_reason] += 1
                    continue
                post, target = post_or_reason
                if mapping.id and row.get(mapping.id) not in (None, ""):
                    if post.id in seen_ids:
                        skipped["duplicate id"] += 1
                        continue
                    seen_ids.add(post.id)
                rows.append((post, target))
                used += 1
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"{path} is not valid {encoding} (byte {exc.start}); try --encoding latin-1"
            ) from exc
        except ValueError as exc:  # unsupported suffix
            raise DatasetError(str(exc)) from exc
        files.append({"path": str(path.resolve()), "sha256": sha256_file(path), "rows": used})
    if len(rows) < 50:
        raise DatasetError(
            f"only {len(rows)} usable rows (skipped: {dict(skipped) or 'none'}); "
            "training needs at least 50"
        )
    rows.sort(key=lambda pair: pair[0].created_at)  # stable: ties keep the file order
    posts = [post for post, _ in rows]
    targets = np.log1p(np.array([target for _, target in rows], dtype=np.float64))
    fingerprint = (
        files[0]["sha256"]
        if len(files) == 1
        else hashlib.sha256("".join(f["sha256"] for f in files).encode()).hexdigest()
    )
    description = {
        "source": "file",
        "files": files,
        "fingerprint": fingerprint,
        "encoding": encoding,
        "mapping": {k: v for k, v in asdict(mapping).items() if v is not None},
        "target_columns": list(target_columns),
        "target": f"log(1 + {' + '.join(target_columns)})",
        "rows": len(posts),
        "skipped": dict(skipped),
        "first": posts[0].created_at.isoformat(),
        "last": posts[-1].created_at.isoformat(),
    }
    return Dataset(posts, targets, description)


def _check_columns(path: Path, row: Mapping, mapping: ColumnMapping, targets: Sequence[str]):
    wanted = [mapping.text, mapping.created_at, *targets]
    missing = [c for c in wanted if c and c not in row]
    if missing:
        raise DatasetError(
            f"{path.name} has no column(s) {', '.join(map(repr, missing))}; "
            f"it has: {', '.join(map(str, list(row)[:30]))}"
        )


def _training_row(
    row: Mapping[str, Any], mapping: ColumnMapping, targets: Sequence[str], default_id: str
) -> tuple[Post, float] | str:
    """(post, outcome) of one file row, or the reason it cannot be used."""
    total = 0.0
    for column in targets:
        try:
            value = float(row.get(column))
        except (TypeError, ValueError):
            return "target missing or not a number"
        if not math.isfinite(value) or value < 0:
            return "target missing or not a number"
        total += value
    if parse_file_time(row.get(mapping.created_at), mapping.time_format) is None:
        return "time missing or unreadable"
    raw = row_to_raw_post(row, mapping)
    raw.pop("engagement", None)  # outcomes never enter the post the features are built from
    try:
        post = parse_post(raw, default_id=default_id)
    except InvalidPost:
        return "invalid post"
    return post, total


def split_index(n_rows: int, test_fraction: float = TEST_FRACTION) -> int:
    """Rows before the returned index train; the later rest is held out."""
    split = round(n_rows * (1.0 - test_fraction))
    return min(max(split, 1), n_rows - 1)


# -- features -------------------------------------------------------------------------------------
def features_for(
    posts: Sequence[Post],
    clusterer: StreamingTopicClusterer,
    author_prior: AuthorPrior | None = None,
) -> np.ndarray:
    """Features of posts as the live path computes them (authors looked up in the prior)."""
    sentiments = VaderSentimentModel().score_batch([p.text for p in posts])
    cluster_ids = clusterer.predict([topic_document(p) for p in posts])
    return posting_time_features(posts, sentiments, cluster_ids, author_prior)


def with_running_authors(
    features: np.ndarray, authors: Sequence[str], log_targets: np.ndarray, prior: AuthorPrior
) -> np.ndarray:
    """Training rows' features with the author columns each row had when it was posted."""
    out = np.array(features, dtype=np.float64, copy=True)
    out[:, _N_BASE:] = prior.running(authors, log_targets)
    return out


def split_features(
    base: np.ndarray, authors: Sequence[str], log_targets: np.ndarray, split: int, window: int
) -> tuple[np.ndarray, np.ndarray, AuthorPrior]:
    """Training and held-out features around `split`, with the author prior of the first.

    Training rows get running author values; held-out rows the values at the end of the
    training rows, as live posts would. `base` holds the other features of every row.
    """
    prior = AuthorPrior(window).fit(authors[:split], log_targets[:split])
    x_train = with_running_authors(base[:split], authors[:split], log_targets[:split], prior)
    x_test = np.array(base[split:], dtype=np.float64, copy=True)
    x_test[:, _N_BASE:] = prior.lookup(authors[split:])
    return x_train, x_test, prior


def holdout_matrices(
    dataset: Dataset,
    n_clusters: int = DEFAULT_CLUSTERS,
    author_window: int = DEFAULT_AUTHOR_WINDOW,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) of the time-ordered split, as `train` builds them.

    The clusterer learns from the training rows only. For comparing models outside `train`,
    e.g. `models.experiments.forest_size_tradeoff`.
    """
    posts, targets = dataset.posts, np.asarray(dataset.log_targets, dtype=np.float64)
    _check_time_order(posts)
    split = split_index(len(posts), test_fraction)
    docs = [topic_document(p) for p in posts]
    clusterer = StreamingTopicClusterer(n_clusters=n_clusters, seed=seed).fit(docs[:split])
    sentiments = VaderSentimentModel().score_batch([p.text for p in posts])
    base = posting_time_features(posts, sentiments, clusterer.predict(docs))
    authors = [p.author for p in posts]
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


# -- metrics --------------------------------------------------------------------------------------
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
    }


def engagement_metrics(
    actual: np.ndarray, predicted: np.ndarray, edges: tuple[float, float]
) -> dict[str, Any]:
    return {**regression_metrics(actual, predicted), **band_metrics(actual, predicted, edges)}


def permutation_importance(
    model: EngagementModel, x: np.ndarray, y: np.ndarray, repeats: int = 3, seed: int = 0
) -> np.ndarray:
    """Mean drop of held-out R² when one feature's column is shuffled (fast predict path)."""
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(seed)
    reference = r2_score(y, model.predict_log(x))
    drops = np.zeros(x.shape[1])
    for column in range(x.shape[1]):
        shuffled = np.array(x, copy=True)
        for _ in range(repeats):
            shuffled[:, column] = rng.permutation(x[:, column])
            drops[column] += reference - r2_score(y, model.predict_log(shuffled))
    return drops / repeats


# -- training -------------------------------------------------------------------------------------
@dataclass
class TrainingOptions:
    """What `train` fits and how.

    Attributes:
        model: "rf" (tuned forest), "nn" (neural network, plus the forest at its shipped
            settings: the live path always scores with a forest), or "both".
        n_clusters: topic clusters.
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
    n_clusters: int = DEFAULT_CLUSTERS
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
) -> TrainingResult:
    """Fit, evaluate on the later rows, then refit on every row for the saved version.

    Args:
        dataset: time-ordered posts and targets.
        options: what to fit.
        progress: called with each stage's name once the stage is done.

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
    _check_time_order(posts)
    n = len(posts)
    split = split_index(n, options.test_fraction)
    if split < max(options.n_clusters, 2 * (options.cv_splits + 1)):
        raise DatasetError(
            f"{n} rows are too few to train {options.n_clusters} clusters and evaluate on the "
            f"later {options.test_fraction:.0%}: use more rows or fewer --k"
        )
    texts = [p.text for p in posts]
    authors = [p.author for p in posts]
    docs = [topic_document(p) for p in posts]
    sentiments = VaderSentimentModel().score_batch(texts)

    held_clusterer = StreamingTopicClusterer(n_clusters=options.n_clusters, seed=options.seed)
    held_clusterer.fit(docs[:split])
    done("topic clusters")
    base = posting_time_features(posts, sentiments, held_clusterer.predict(docs))
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
    cluster_ids = clusterer.predict(docs)
    prior = AuthorPrior(window).fit(authors, targets)
    # `base` differs only in its cluster ids, which came from the held-out clusterer.
    x_all = with_running_authors(base, authors, targets, prior)
    x_all[:, _CLUSTER_COLUMN] = cluster_ids
    engagement = EngagementModel(seed=options.seed, **forest_params).fit(x_all, targets, prior)
    final_neural = None
    if options.wants_neural:
        # The same network refit on every row for as many epochs as early stopping chose.
        final_neural = NeuralEngagementModel(
            seed=options.seed, **{**options.neural, "epochs": held_neural.epochs_}
        )
        final_neural.fit(texts, x_all, targets, early_stopping=False)
    done("refit on all rows")

    evaluation = _evaluation_arrays(
        posts,
        targets,
        sentiments,
        x_all,
        cluster_ids,
        clusterer,
        split,
        rf_predicted,
        nn_predicted,
        edges,
        held_forest,
        x_test,
    )
    params = {
        "model": options.model,
        "n_clusters": options.n_clusters,
        "test_fraction": options.test_fraction,
        "seed": options.seed,
        "author_prior": {"window": window, "smoothing": prior.smoothing},
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
    return TrainingResult(
        bundle=ModelBundle(clusterer=clusterer, engagement=engagement),
        metrics=metrics,
        params=params,
        data=dataset.description,
        evaluation=evaluation,
        neural=final_neural,
        seconds=round(time.perf_counter() - started, 2),
    )


def _check_time_order(posts: Sequence[Post]) -> None:
    for earlier, later in pairwise(posts):
        if later.created_at < earlier.created_at:
            raise ValueError("posts must be sorted by created_at (see load_dataset)")


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
    authors: Sequence[str],
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


def _evaluation_arrays(
    posts,
    targets,
    sentiments,
    x_all,
    cluster_ids,
    clusterer,
    split,
    rf_predicted,
    nn_predicted,
    edges,
    held_forest,
    x_test,
) -> dict[str, np.ndarray]:
    """What the HTML report draws, stored with the version (numbers and strings only)."""
    k = clusterer.n_clusters
    arrays = {
        "feature_names": np.array(FEATURE_NAMES),
        "features": x_all.astype(np.float32),
        "target": targets.astype(np.float32),
        "sentiment": np.array([s.compound for s in sentiments], dtype=np.float32),
        "cluster": np.asarray(cluster_ids, dtype=np.int16),
        "cluster_labels": np.array(clusterer.labels_),
        "cluster_terms": np.array([" · ".join(clusterer.top_terms(c, 6)) for c in range(k)]),
        "created_at": np.array([p.created_at.timestamp() for p in posts]),
        "split": np.array(split),
        "band_edges": np.array(edges),
        "test_actual": targets[split:].astype(np.float32),
        "test_rf": rf_predicted.astype(np.float32),
        "rf_importance": held_forest.forest_.feature_importances_,
        "rf_permutation_importance": permutation_importance(held_forest, x_test, targets[split:]),
    }
    if nn_predicted is not None:
        arrays["test_nn"] = nn_predicted.astype(np.float32)
    return arrays


def save_result(
    result: TrainingResult,
    root: Path,
    extra_files: Mapping[str, bytes] | None = None,
) -> Path:
    """Save a training run as a new version under `root` and log it with the experiments."""
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
    )
    ExperimentLog(root).append(run_record(result.bundle.manifest))
    return folder


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def train_default_bundle(root: Path, seed: int = 0) -> ModelBundle:
    """Train on synthetic posts (a few seconds) and save a new version under `root`."""
    dataset = synthetic_dataset(DEFAULT_TRAINING_POSTS, seed=seed + 11)
    # The live synthetic stream has other authors than these posts: no author features.
    options = TrainingOptions(
        model="rf", search=False, seed=seed, author_window=0, forest={"baseline": "none"}
    )
    result = train(dataset, options)
    save_result(result, root)
    log.info("trained default models: held-out %s", result.metrics["engagement_holdout"])
    # Training leaves many dead objects behind and advances the collector's generations;
    # one full collection now keeps it out of the first live batches scored right after.
    gc.collect()
    return result.bundle


def ensure_bundle(root: Path, version: str | None = None, seed: int = 0) -> ModelBundle:
    """Load the pinned or newest version; train defaults when there is none usable.

    A pinned version is never replaced: problems with it are raised. The newest version is
    retrained when it was saved with other library versions; a tampered file is refused.
    """
    if version is not None:
        return load_bundle(root, version)
    if not list_versions(root):
        log.info("no models under %s yet: training defaults on synthetic posts", root)
        return train_default_bundle(root, seed=seed)
    try:
        return load_bundle(root)
    except LibraryMismatch as exc:
        log.warning("%s; retraining defaults", exc)
        return train_default_bundle(root, seed=seed)


def _params(estimator: object) -> dict[str, Any]:
    """Constructor parameters (scikit-learn convention: learned state ends in `_`)."""
    return {k: v for k, v in vars(estimator).items() if not k.endswith("_")}
