"""How good the live clustering and sentiment paths are on labelled posts.

Everything here measures the code the live stream runs, not a look-alike: topic clusters come
from `topic_document` and a `StreamingTopicClusterer` fed micro-batch by micro-batch with the
pipeline's own transform → predict → learn sequence, and sentiment from
`VaderSentimentModel.score_batch` on the texts exactly as given.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any, Protocol

import numpy as np

from models.clustering import AUTO, StreamingTopicClusterer, topic_document
from models.sentiment import VaderSentimentModel
from streaming.records import InvalidPost, parse_post

log = logging.getLogger(__name__)

SENTIMENT_LABELS = ("negative", "neutral", "positive")  # rows and columns of the confusion
SILHOUETTE_SAMPLE = 3000


class Progress(Protocol):
    """Anything with `update(n)`, such as a tqdm bar."""

    def update(self, n: int) -> Any: ...


# -- clustering metrics --------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusteringScores:
    """Agreement of cluster assignments with reference labels (1 = the same partition)."""

    nmi: float
    ari: float
    v_measure: float
    silhouette: float | None  # cosine, on a sample; None when undefined (a single cluster)
    n_docs: int
    n_clusters: int  # distinct clusters actually used

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def silhouette(
    features, assignments: Sequence[int], sample_size: int = SILHOUETTE_SAMPLE, seed: int = 0
) -> float | None:
    """Mean cosine silhouette of `assignments` on at most `sample_size` rows (None if undefined)."""
    from sklearn.metrics import silhouette_score

    assignments = np.asarray(assignments)
    n = assignments.shape[0]
    rows = np.arange(n)
    if n > sample_size:
        rows = np.sort(np.random.default_rng(seed).choice(n, sample_size, replace=False))
    sample = assignments[rows]
    if not 2 <= len(np.unique(sample)) <= len(rows) - 1:
        return None
    return float(silhouette_score(features[rows], sample, metric="cosine"))


def clustering_scores(
    labels_true: Sequence[Hashable],
    assignments: Sequence[int],
    features=None,
    sample_size: int = SILHOUETTE_SAMPLE,
    seed: int = 0,
) -> ClusteringScores:
    """NMI, ARI and V-measure against `labels_true`; silhouette when `features` are given."""
    from sklearn.metrics import (
        adjusted_rand_score,
        normalized_mutual_info_score,
        v_measure_score,
    )

    truth = [str(label) for label in labels_true]
    predicted = np.asarray(assignments)
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} labels but {len(predicted)} assignments")
    if not truth:
        raise ValueError("no documents to score")
    return ClusteringScores(
        nmi=float(normalized_mutual_info_score(truth, predicted)),
        ari=float(adjusted_rand_score(truth, predicted)),
        v_measure=float(v_measure_score(truth, predicted)),
        silhouette=None if features is None else silhouette(features, predicted, sample_size, seed),
        n_docs=len(truth),
        n_clusters=len(np.unique(predicted)),
    )


def topic_documents(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """What the live clusterer reads for each text, and the indices of the texts kept.

    Texts the live path would dead-letter (empty, too long, invalid Unicode) are left out.
    """
    docs, kept = [], []
    for index, text in enumerate(texts):
        try:
            post = parse_post({"text": text})
        except InvalidPost:
            continue
        docs.append(topic_document(post))
        kept.append(index)
    return docs, kept


# -- choosing k --------------------------------------------------------------------------------
@dataclass(frozen=True)
class KScore:
    k: int
    inertia: float
    silhouette: float | None


@dataclass(frozen=True)
class KChoice:
    """Inertia and silhouette per candidate k, and the k each rule picks."""

    scores: list[KScore]
    elbow_k: int  # the knee of the inertia curve (largest distance to its chord)
    silhouette_k: int | None  # the highest silhouette (None if none is defined)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scores": [asdict(s) for s in self.scores],
            "elbow_k": self.elbow_k,
            "silhouette_k": self.silhouette_k,
        }


def elbow_k(ks: Sequence[int], inertias: Sequence[float]) -> int:
    """The "kneedle" rule: with both axes scaled to [0, 1], the candidate farthest from the
    straight line joining the first and last points of the inertia curve."""
    if len(ks) != len(inertias) or not ks:
        raise ValueError("need one inertia per candidate k")
    x = np.asarray(ks, dtype=float)
    y = np.asarray(inertias, dtype=float)
    span_x, span_y = x[-1] - x[0], y.max() - y.min()
    if len(ks) < 3 or span_x == 0 or span_y == 0:
        return int(ks[0])
    x = (x - x[0]) / span_x
    y = (y - y.min()) / span_y
    # Distance to the chord from (0, y0) to (1, y1), up to a constant factor.
    distance = np.abs((y[-1] - y[0]) * x - y + y[0])
    return int(ks[int(distance.argmax())])


def choose_k(
    docs: Sequence[str],
    candidates: Sequence[int],
    seed: int = 0,
    n_init: int = 4,
    sample_size: int = SILHOUETTE_SAMPLE,
    progress: Progress | None = None,
) -> KChoice:
    """Fit the live clusterer's vectorizer once and KMeans for each candidate k.

    Args:
        docs: topic documents (see `topic_documents`).
        candidates: the k values to try, at least three for an elbow.
        seed: random seed of KMeans and of the silhouette sample.
        n_init: k-means++ restarts per k (the live clusterer's default).
        sample_size: rows the silhouette is computed on (the same rows for every k).
        progress: told after each k.
    """
    from sklearn.cluster import KMeans

    ks = sorted(set(int(k) for k in candidates))
    if len(ks) < 3:
        raise ValueError("give at least three candidate values of k")
    if ks[0] < 2 or ks[-1] >= len(docs):
        raise ValueError(f"every k must be between 2 and {len(docs) - 1} (one less than the posts)")
    vectorizer = StreamingTopicClusterer().make_vectorizer(len(docs))
    features = vectorizer.fit_transform(docs)
    scores = []
    for k in ks:
        kmeans = KMeans(k, n_init=n_init, random_state=seed).fit(features)
        scores.append(
            KScore(
                k, float(kmeans.inertia_), silhouette(features, kmeans.labels_, sample_size, seed)
            )
        )
        if progress is not None:
            progress.update(1)
    defined = [s for s in scores if s.silhouette is not None]
    best = max(defined, key=lambda s: s.silhouette).k if defined else None
    return KChoice(scores, elbow_k(ks, [s.inertia for s in scores]), best)


# -- streaming clustering ------------------------------------------------------------------------
def score_micro_batch(clusterer: StreamingTopicClusterer, docs: Sequence[str]) -> np.ndarray:
    """One live micro-batch: the cluster ids `ScoringPipeline.score_batch(..., learn=True)`
    gives these topic documents, through the same call (it learns from them)."""
    return clusterer.assign(docs, learn=True)[1]


@dataclass(frozen=True)
class StreamingClusteringReport:
    """Quality of the live streaming clusterer on one labelled file, with two baselines.

    Attributes:
        streaming: the headline: every post's id from the clusterer as it stands at the end
            of the stream (see `evaluate_streaming_clustering`).
        on_arrival: the id each post was given when its micro-batch was scored.
        batch_kmeans: TF-IDF + KMeans on the whole file at once (not possible live).
        naive_minibatch: TF-IDF fitted on the whole file, one pass of
            `MiniBatchKMeans.partial_fit` over the micro-batches in arrival order.
        true_k: distinct reference labels (what the baselines use when `k` is "auto").
        live_clusters: clusters live at the end of the stream.
        warm_start_topics: clusters live after the warm start.
        births, retirements, merges, splits: lineage events after the warm start.
        per_batch: NMI within each stretch of the stream (the warm start, then each
            micro-batch): `start` and `end` (post indices) and the NMI of `streaming`,
            `on_arrival` and `batch_kmeans` (None without baselines) on that stretch alone.
            How well each method separates the topics that are live at that point.
    """

    k: int | str
    batch_size: int
    warm_start_docs: int
    refits: int
    skipped: int
    seconds: float
    streaming: ClusteringScores
    on_arrival: ClusteringScores
    batch_kmeans: ClusteringScores | None = None
    naive_minibatch: ClusteringScores | None = None
    cluster_labels: tuple[str, ...] = field(default=(), repr=False)
    true_k: int = 0
    live_clusters: int = 0
    warm_start_topics: int = 0
    births: int = 0
    retirements: int = 0
    merges: int = 0
    splits: int = 0
    per_batch: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = {
            key: value.to_dict() if isinstance(value, ClusteringScores) else value
            for key, value in vars(self).items()
        }
        data["cluster_labels"] = list(self.cluster_labels)
        data["per_batch"] = [dict(row) for row in self.per_batch]
        return data


def evaluate_streaming_clustering(
    texts: Sequence[str],
    labels: Sequence[Hashable],
    k: int | str,
    batch_size: int = 500,
    seed: int = 0,
    warm_start: int | None = None,
    baselines: bool = True,
    clusterer_options: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> StreamingClusteringReport:
    """Run the live streaming clusterer over `texts` in arrival order and score it.

    What runs is the live path: each text becomes a post (`parse_post`) and its
    `topic_document`; a `StreamingTopicClusterer(n_clusters=k)` with the live defaults is
    fitted on the first micro-batches (together at least `warm_start` posts, by default
    max(`batch_size`, 5·k): a live clusterer has to start from something); every later
    micro-batch goes through `score_micro_batch`, the pipeline's transform → predict → learn.
    Its online steps and its refits (the periodic ones and those while the window fills) are
    the clusterer's own. The one liberty taken is time: before the next micro-batch arrives,
    a background refit is given the time to finish, as it has at live rates (a refit takes
    seconds, a micro-batch of 500 posts is many seconds of a live feed); it then takes over at
    the next `learn`, exactly as live.

    Reported (`streaming`) are the ids a live user sees at the end of the stream: every post
    of the file predicted by the clusterer as it stands after the last micro-batch, once the
    refit that batch may have started has taken over. `on_arrival` are the ids posts got as
    they arrived. Silhouettes use the final vectorizer's features.

    Args:
        texts: post texts, in arrival order.
        labels: the reference topic of each text.
        k: number of clusters, or "auto": the clusterer opens, merges and retires topics
            itself (up to its `max_clusters`) and the baselines get the true number.
        batch_size: posts per micro-batch (the live default is up to 500).
        seed: random seed of the clusterer and of the baselines.
        warm_start: posts the clusterer is first fitted on (rounded up to whole batches).
        baselines: also measure batch KMeans and one-pass MiniBatchKMeans.
        clusterer_options: other `StreamingTopicClusterer` parameters (default: live ones).
        progress: told the number of posts after each micro-batch.

    Raises:
        ValueError: on mismatched inputs, k < 2, or fewer usable posts than needed.
    """
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    auto = k == AUTO
    if not auto and (not isinstance(k, int) or k < 2):
        raise ValueError('k must be at least 2, or "auto"')
    if batch_size < 1:
        raise ValueError("the batch size must be at least 1")
    started = time.perf_counter()
    docs, kept = topic_documents(texts)
    truth = [str(labels[i]) for i in kept]
    true_k = len(set(truth))
    if warm_start is None:
        warm_start = batch_size if auto else max(batch_size, 5 * k)
    if auto and not docs:
        raise ValueError("no usable posts to cluster")
    if not auto and len(docs) <= k:
        raise ValueError(f"{len(docs)} usable posts are too few for k = {k}")

    clusterer = StreamingTopicClusterer(n_clusters=k, seed=seed, **(clusterer_options or {}))
    warm = min(len(docs), max(0 if auto else k, math.ceil(warm_start / batch_size) * batch_size))
    clusterer.fit(docs[:warm])
    warm_events, warm_topics = clusterer.n_events_, len(clusterer.cluster_ids_)
    on_arrival = [clusterer.predict(docs[:warm])]
    if progress is not None:
        progress.update(warm)
    for start in range(warm, len(docs), batch_size):
        batch = docs[start : start + batch_size]
        on_arrival.append(score_micro_batch(clusterer, batch))
        clusterer.wait_for_refit()
        if progress is not None:
            progress.update(len(batch))
    clusterer.wait_for_refit(swap=True)
    final_features = clusterer.transform(docs)
    final = clusterer.state_.predict(final_features)
    seconds = round(time.perf_counter() - started, 2)
    log.info("streaming clustering: %d posts in %.1f s", len(docs), seconds)
    baseline_k = true_k if auto else k
    kinds = [event.kind for event in clusterer.events_since(warm_events)]
    arrival = np.concatenate(on_arrival)
    batch_kmeans = None
    if baselines and 2 <= baseline_k < len(docs):
        kmeans_ids, kmeans_features = _batch_kmeans(docs, baseline_k, seed)
        batch_kmeans = clustering_scores(truth, kmeans_ids, kmeans_features, seed=seed)
    runs = {"streaming": final, "on_arrival": arrival}
    if batch_kmeans is not None:
        runs["batch_kmeans"] = kmeans_ids
    return StreamingClusteringReport(
        k=k,
        batch_size=batch_size,
        warm_start_docs=warm,
        refits=clusterer.n_refits_,
        skipped=len(texts) - len(docs),
        seconds=seconds,
        streaming=clustering_scores(truth, final, final_features, seed=seed),
        on_arrival=clustering_scores(truth, arrival),
        batch_kmeans=batch_kmeans,
        naive_minibatch=(
            naive_minibatch_baseline(docs, truth, baseline_k, batch_size, seed)
            if baselines and 2 <= baseline_k < len(docs)
            else None
        ),
        cluster_labels=clusterer.labels_,
        true_k=true_k,
        live_clusters=len(clusterer.cluster_ids_),
        warm_start_topics=warm_topics,
        births=kinds.count("birth"),
        retirements=kinds.count("retirement"),
        merges=kinds.count("merge"),
        splits=kinds.count("split"),
        per_batch=nmi_per_batch(truth, runs, warm, batch_size),
    )


def nmi_per_batch(
    truth: Sequence[str], runs: dict[str, np.ndarray], warm: int, batch_size: int
) -> tuple[dict[str, Any], ...]:
    """NMI of each run's ids against `truth` within each stretch of the stream: the first
    `warm` posts, then every `batch_size` posts. Runs missing from `runs` are None."""
    from sklearn.metrics import normalized_mutual_info_score

    edges = [0, *range(warm, len(truth), batch_size), len(truth)]
    rows = []
    for start, end in pairwise(dict.fromkeys(edges)):
        if end <= start:
            continue
        row: dict[str, Any] = {"start": start, "end": end}
        for name in ("streaming", "on_arrival", "batch_kmeans"):
            ids = runs.get(name)
            row[name] = (
                None
                if ids is None
                else float(normalized_mutual_info_score(truth[start:end], ids[start:end]))
            )
        rows.append(row)
    return tuple(rows)


def _batch_kmeans(docs: Sequence[str], k: int, seed: int = 0, n_init: int = 4):
    """scikit-learn's default TF-IDF and KMeans on all documents at once: (ids, features)."""
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    features = TfidfVectorizer().fit_transform(docs)
    return KMeans(k, n_init=n_init, random_state=seed).fit_predict(features), features


def batch_kmeans_baseline(
    docs: Sequence[str], labels: Sequence[Hashable], k: int, seed: int = 0, n_init: int = 4
) -> ClusteringScores:
    """scikit-learn's default TF-IDF and KMeans, fitted on all documents at once."""
    assignments, features = _batch_kmeans(docs, k, seed, n_init)
    return clustering_scores(labels, assignments, features, seed=seed)


def naive_minibatch_baseline(
    docs: Sequence[str], labels: Sequence[Hashable], k: int, batch_size: int = 500, seed: int = 0
) -> ClusteringScores:
    """Default TF-IDF fitted on all documents, then one pass of `MiniBatchKMeans.partial_fit`
    over the micro-batches in arrival order; every document predicted at the end."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    features = TfidfVectorizer().fit_transform(docs)
    # Its first partial_fit needs k documents to seed k centres.
    first = max(batch_size, k)
    kmeans = MiniBatchKMeans(k, batch_size=batch_size, random_state=seed, n_init=3)
    kmeans.partial_fit(features[:first])
    for start in range(first, features.shape[0], batch_size):
        kmeans.partial_fit(features[start : start + batch_size])
    return clustering_scores(labels, kmeans.predict(features), features, seed=seed)


# -- sentiment -----------------------------------------------------------------------------------
def normalize_sentiment_label(value: Any) -> str:
    """ "Positive", " neutral " … as one of `SENTIMENT_LABELS`; ValueError for anything else."""
    label = str(value).strip().lower()
    if label not in SENTIMENT_LABELS:
        raise ValueError(
            f"unknown sentiment label {str(value)[:40]!r}: use positive, neutral or negative"
        )
    return label


@dataclass(frozen=True)
class SentimentLabelReport:
    """Live VADER labels against reference labels.

    `confusion[i][j]` counts posts labelled `labels[i]` that VADER called `labels[j]`.
    """

    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]  # precision, recall, f1, support per label
    confusion: list[list[int]]
    labels: tuple[str, ...] = SENTIMENT_LABELS
    predicted: tuple[str, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("predicted")
        data["labels"] = list(self.labels)
        return data


@dataclass(frozen=True)
class SentimentRatingReport:
    """Live VADER compound scores against numeric ratings."""

    n: int
    pearson: float
    spearman: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _score(
    texts: Sequence[str], model: VaderSentimentModel | None, progress: Progress | None, chunk=2000
):
    model = model or VaderSentimentModel()
    scored = []
    for start in range(0, len(texts), chunk):
        batch = texts[start : start + chunk]
        scored.extend(model.score_batch(batch))  # the live call, on the texts as given
        if progress is not None:
            progress.update(len(batch))
    return scored


def evaluate_sentiment_labels(
    texts: Sequence[str],
    labels: Sequence[Any],
    model: VaderSentimentModel | None = None,
    progress: Progress | None = None,
) -> SentimentLabelReport:
    """Accuracy, macro-F1, per-class scores and confusion of the live sentiment labels.

    Args:
        texts: post texts, passed to `VaderSentimentModel.score_batch` untouched.
        labels: positive / neutral / negative, in any letter case.
        model: the sentiment model (default: a new `VaderSentimentModel`).
        progress: told the number of texts after each chunk.
    """
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise ValueError("no texts to score")
    actual = [normalize_sentiment_label(label) for label in labels]
    predicted = [s.label for s in _score(texts, model, progress)]
    return sentiment_label_report(actual, predicted)


def sentiment_label_report(actual: Sequence[str], predicted: Sequence[str]) -> SentimentLabelReport:
    """Accuracy, macro-F1, per-class scores and confusion of `predicted` against `actual`."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
    from sklearn.metrics import precision_recall_fscore_support as prfs

    order = list(SENTIMENT_LABELS)
    precision, recall, f1, support = prfs(actual, predicted, labels=order, zero_division=0)
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(order)
    }
    return SentimentLabelReport(
        n=len(actual),
        accuracy=float(accuracy_score(actual, predicted)),
        macro_f1=float(f1_score(actual, predicted, labels=order, average="macro", zero_division=0)),
        per_class=per_class,
        confusion=confusion_matrix(actual, predicted, labels=order).tolist(),
        predicted=tuple(predicted),
    )


@dataclass(frozen=True)
class CalibratedSentimentReport:
    """The calibrated model's labels against reference labels, and how far its
    probabilities can be trusted.

    Attributes:
        labels: the same scores as VADER's report, for the calibrated labels.
        log_loss: of the three class probabilities (lower is better).
        brier: multi-class Brier score (mean squared error of the probabilities).
        ece: expected calibration error of the top label's probability, in 10 bins.
        kind: which model ("stacked", or "vader-fallback" without a trained one).
    """

    labels: SentimentLabelReport
    log_loss: float
    brier: float
    ece: float
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.labels.to_dict(),
            "log_loss": self.log_loss,
            "brier": self.brier,
            "ece": self.ece,
            "kind": self.kind,
        }


def calibration_scores(actual: Sequence[str], probabilities: np.ndarray) -> dict[str, float]:
    """Log loss, Brier score and 10-bin expected calibration error of class probabilities
    (columns in `SENTIMENT_LABELS` order)."""
    from sklearn.metrics import log_loss

    truth = np.array([SENTIMENT_LABELS.index(label) for label in actual])
    probabilities = np.clip(np.asarray(probabilities, dtype=float), 1e-12, 1.0)
    one_hot = np.eye(len(SENTIMENT_LABELS))[truth]
    top = probabilities.argmax(axis=1)
    confidence = probabilities[np.arange(len(top)), top]
    correct = top == truth
    bins = np.minimum((confidence * 10).astype(int), 9)
    ece = sum(
        abs(correct[bins == b].mean() - confidence[bins == b].mean()) * np.mean(bins == b)
        for b in range(10)
        if np.any(bins == b)
    )
    return {
        "log_loss": float(log_loss(truth, probabilities, labels=[0, 1, 2])),
        "brier": float(np.mean(np.sum((probabilities - one_hot) ** 2, axis=1))),
        "ece": float(ece),
    }


def evaluate_calibrated_sentiment(
    texts: Sequence[str],
    labels: Sequence[Any],
    model: Any,
    progress: Progress | None = None,
    chunk: int = 2000,
) -> CalibratedSentimentReport:
    """Scores of the calibrated sentiment label and its probabilities on labelled texts.

    Args:
        texts: post texts, untouched.
        labels: positive / neutral / negative, in any letter case.
        model: a model of `models.calibrated_sentiment` (`score_batch`, `predict_proba`).
        progress: told the number of texts after each chunk.
    """
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise ValueError("no texts to score")
    actual = [normalize_sentiment_label(label) for label in labels]
    predicted: list[str] = []
    probabilities = []
    for start in range(0, len(texts), chunk):
        batch = texts[start : start + chunk]
        predicted.extend(s.calibrated_label for s in model.score_batch(batch))
        probabilities.append(model.predict_proba(batch))
        if progress is not None:
            progress.update(len(batch))
    return CalibratedSentimentReport(
        labels=sentiment_label_report(actual, predicted),
        kind=model.kind,
        **calibration_scores(actual, np.vstack(probabilities)),
    )


def evaluate_sentiment_ratings(
    texts: Sequence[str],
    ratings: Sequence[float],
    model: VaderSentimentModel | None = None,
    progress: Progress | None = None,
) -> SentimentRatingReport:
    """Pearson and Spearman correlation of the live VADER compound with numeric ratings."""
    from scipy.stats import pearsonr, spearmanr

    if len(texts) != len(ratings):
        raise ValueError(f"{len(texts)} texts but {len(ratings)} ratings")
    if len(texts) < 3:
        raise ValueError("need at least three rated texts for a correlation")
    values = np.asarray(ratings, dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError("ratings must be finite numbers")
    if np.ptp(values) == 0:
        raise ValueError("all ratings are the same: nothing to correlate with")
    compound = np.asarray([s.compound for s in _score(texts, model, progress)])
    if np.ptp(compound) == 0:
        raise ValueError("VADER gives every text the same score: nothing to correlate")
    return SentimentRatingReport(
        n=len(values),
        pearson=float(pearsonr(compound, values).statistic),
        spearman=float(spearmanr(compound, values).statistic),
    )
