"""Hashtag/topic clustering: TF-IDF features into MiniBatchKMeans, learning online.

Cluster ids are stable: online updates never reassign centres (``reassignment_ratio=0``),
and a periodic refit on a window of recent posts (which may change the vocabulary) starts
from the old centres projected onto the new vocabulary and then matches new centres to old
ids, so a cluster keeps its id, colour and meaning on the dashboard.

A clusterer fitted on fewer posts than its window also refits as the window fills, from
fresh k-means++ restarts (ids still matched to the old centres): started on a few hundred
real tweets, it ends up as good as k-means on the whole stream (see models/evaluation.py).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.feature_extraction.text import TfidfVectorizer

from streaming.records import URL_OR_MENTION_RE, Post

TOKEN_PATTERN = r"(?u)#?\b\w\w+\b"
# A refit keeps fresh k-means++ centres over those grown from the old ones only when their
# inertia is at least this much lower: smaller gains are noise that would reshuffle topics.
REFIT_RESTART_GAIN = 0.01


def topic_document(post: Post) -> str:
    """The text the clusterer sees: words without URLs or mentions, plus hashtags as #tags."""
    # Parsing already found URLs and mentions; only texts that have them need the regex.
    words = URL_OR_MENTION_RE.sub(" ", post.text) if post.urls or post.mentions else post.text
    if post.hashtags:
        words = words + " #" + " #".join(post.hashtags)
    return words


# For `_simple_tokens`: lowercases ASCII letters, keeps [a-z0-9_#] and turns every other
# byte (each byte of a non-ASCII character too) into a space.
_TOKEN_BYTES = bytes(
    ord(c.lower()) if c.isascii() and (c.isalnum() or c in "_#") else ord(" ")
    for c in map(chr, range(256))
)
_ASCII_BYTES = bytes(range(128))


def _simple_tokens(doc: str) -> list[str] | None:
    """The tokens TOKEN_PATTERN finds in `doc` lowercased, without the regex; None when the
    text has non-ASCII letters or digits, which only the regex knows.

    Every other character separates words, so the bytes of all of them become spaces; a
    split before each "#" and on whitespace then gives the pattern's tokens, plus pieces
    it would not match ("#", "a", "#a") that no vocabulary learned with it holds.
    """
    raw = doc.encode("utf-8", "surrogatepass")
    if not doc.isascii():
        rest = raw.translate(None, _ASCII_BYTES).decode("utf-8", "surrogatepass")
        if any(map(str.isalnum, rest)):  # exactly the non-ASCII characters \w matches
            return None
    return raw.translate(_TOKEN_BYTES).decode("ascii").replace("#", " #").split()


class FastTfidfVectorizer:
    """The fitted vectorizer's `transform`, recomputed with fewer Python steps per document.

    Most documents are split into tokens without the regex (`_simple_tokens`); the
    vocabulary holds no stop words, so looking every token up in it filters them too; the
    TF-IDF arithmetic then runs on the whole batch at once. Results equal
    `TfidfVectorizer.transform` (tested), at about 40% of its cost per post.
    """

    def __init__(self, vectorizer: TfidfVectorizer) -> None:
        if (
            vectorizer.ngram_range != (1, 1)
            or not vectorizer.lowercase
            or vectorizer.norm != "l2"
            or vectorizer.strip_accents is not None
            or vectorizer.analyzer != "word"
        ):
            raise ValueError("FastTfidfVectorizer supports word unigrams, lowercase, l2 norm only")
        self.findall = re.compile(vectorizer.token_pattern).findall
        self.vocabulary = vectorizer.vocabulary_
        self.idf = vectorizer.idf_.astype(np.float64) if vectorizer.use_idf else None
        self.sublinear = vectorizer.sublinear_tf
        self.n_features = len(self.vocabulary)
        # Feature index → term; `get_feature_names_out` rebuilds this on every call.
        self.terms = vectorizer.get_feature_names_out()

    def __setstate__(self, state: dict) -> None:
        # Artifacts saved before `terms` existed rebuild it from the vocabulary.
        if "terms" not in state:
            terms = np.empty(len(state["vocabulary"]), dtype=object)
            for term, index in state["vocabulary"].items():
                terms[index] = term
            state["terms"] = terms
        self.__dict__.update(state)

    def transform(self, docs: Sequence[str]) -> sparse.csr_matrix:
        lookup, findall = self.vocabulary.get, self.findall
        # `_simple_tokens` reproduces TOKEN_PATTERN only; another pattern keeps the regex.
        simple = findall.__self__.pattern == TOKEN_PATTERN
        indptr = [0]
        indices: list[int] = []
        for doc in docs:
            tokens = _simple_tokens(doc) if simple else None
            if tokens is None:
                tokens = findall(doc.lower())
            indices.extend([i for i in map(lookup, tokens) if i is not None])
            indptr.append(len(indices))
        ones = np.ones(len(indices))
        counts = sparse.csr_matrix(
            (ones, np.asarray(indices, dtype=np.int32), np.asarray(indptr, dtype=np.int64)),
            shape=(len(docs), self.n_features),
        )
        counts.sum_duplicates()  # sorts indices and adds repeated terms up, in C
        data = counts.data
        if self.sublinear:
            data = np.log(data) + 1.0
        if self.idf is not None:
            data = data * self.idf[counts.indices]
        lengths = np.diff(counts.indptr)
        squares = np.zeros(len(docs))
        nonempty = lengths > 0
        if data.size:
            squares[nonempty] = np.add.reduceat(data**2, counts.indptr[:-1][nonempty])
        norms = np.sqrt(squares)
        norms[norms == 0] = 1.0
        counts.data = data / np.repeat(norms, lengths)
        return counts


# The class's earlier name, which artifacts saved before the rename still reference.
FastTfidf = FastTfidfVectorizer


@dataclass(frozen=True)
class ClusterState:
    """Everything `predict` needs, swapped as one object so readers never see a half refit."""

    vectorizer: TfidfVectorizer
    kmeans: MiniBatchKMeans
    labels: tuple[str, ...]
    fast: FastTfidfVectorizer
    n_docs: int  # documents the vocabulary and centres were fitted on

    def transform(self, docs: Sequence[str]) -> sparse.csr_matrix:
        return self.fast.transform(docs)

    def predict(self, features) -> np.ndarray:
        """Nearest centre, as `MiniBatchKMeans.predict` but without its per-call overhead."""
        if features.shape[0] == 0:
            return np.empty(0, dtype=np.int64)
        centers = self.kmeans.cluster_centers_
        distances = (centers**2).sum(axis=1)[None, :] - 2.0 * np.asarray(features @ centers.T)
        return distances.argmin(axis=1).astype(np.int64)


class StreamingTopicClusterer:
    """Online topic clusterer with stable ids and human-readable labels.

    Args:
        n_clusters: number of topics.
        max_features: vocabulary size of the TF-IDF vectorizer.
        window_size: how many recent documents a refit learns from.
        refit_every: documents between refits (0 disables periodic refits).
        learn_batch_size: documents gathered before one `MiniBatchKMeans.partial_fit` step;
            a step has a fixed cost of milliseconds, so tiny live batches are pooled.
        n_init: k-means++ restarts of a fit; a refit also starts k-means from the old centres
            and keeps that unless the restarts are clearly better (or the window is still
            filling).
        warmup_growth: while the window is not yet full, also refit whenever it has grown by
            this fraction since the last fit (0 disables): a clusterer started on few posts
            learns its vocabulary and centres again as posts arrive, a few times in all.
        seed: random seed, for reproducible clusters.
    """

    def __init__(
        self,
        n_clusters: int = 12,
        max_features: int = 20000,
        window_size: int = 5000,
        refit_every: int = 20000,
        learn_batch_size: int = 2048,
        n_init: int = 4,
        warmup_growth: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.max_features = max_features
        self.window_size = window_size
        self.refit_every = refit_every
        self.learn_batch_size = learn_batch_size
        self.n_init = n_init
        self.warmup_growth = warmup_growth
        self.seed = seed

    # -- learning -------------------------------------------------------------------------
    def fit(self, docs: Sequence[str]) -> StreamingTopicClusterer:
        """Fit from scratch on `docs` (k-means++ with several inits)."""
        self.window_ = deque(docs[-self.window_size :], maxlen=self.window_size)
        self.seen_since_refit_ = 0
        self.n_refits_ = 0
        self.pending_ = []
        self.state_ = self._fit_state(list(self.window_), previous=None)
        return self

    # A running refit thread is not part of the model: it is neither pickled nor copied.
    _refit_thread: threading.Thread | None = None
    _refit_result: list[ClusterState] | None = None

    def __getstate__(self) -> dict:
        if self._refit_thread is not None:
            self._refit_thread.join()
            self._swap_if_refitted()
        state = self.__dict__.copy()
        state.pop("_refit_thread", None)
        state.pop("_refit_result", None)
        return state

    def partial_fit(self, docs: Sequence[str]) -> StreamingTopicClusterer:
        """Learn from one micro-batch; refits on the recent window every `refit_every` docs."""
        self.learn(docs, self.transform(docs))
        return self

    def learn(self, docs: Sequence[str], features) -> None:
        """`partial_fit` with features already computed by `transform` for the same docs.

        The features must come from the current state (the pipeline checks that it has not
        changed since it transformed the batch).
        """
        if not docs:
            return
        if self._swap_if_refitted():
            # The refit that just took over may have a new vocabulary: the features of the
            # old one would not fit its centres.
            features = self.state_.transform(docs)
        self.window_.extend(docs)
        self.pending_.append(features)
        self.seen_since_refit_ += len(docs)
        if sum(f.shape[0] for f in self.pending_) >= self.learn_batch_size:
            self.flush()
        if self._refit_due():
            self.start_refit()

    def _refit_due(self) -> bool:
        if self.refit_every and self.seen_since_refit_ >= self.refit_every:
            return True
        fitted = self.state_.n_docs
        return (
            self.warmup_growth > 0
            and fitted < self.window_size
            and self.seen_since_refit_ >= self.warmup_growth * fitted
        )

    def start_refit(self) -> None:
        """Refit in a background thread; the live path keeps scoring with the current state.

        When the refit is done, the next `learn` call swaps the new state in. Updates that
        arrived meanwhile went to the old centres, and their documents are in the window for
        the next refit.
        """
        if self._refit_thread is not None:
            return
        docs, previous = list(self.window_), self.state_
        result: list[ClusterState] = []
        self.seen_since_refit_ = 0

        def work() -> None:
            result.append(self._fit_state(docs, previous))

        self._refit_result = result
        self._refit_thread = threading.Thread(target=work, name="cluster-refit", daemon=True)
        self._refit_thread.start()

    def wait_for_refit(self, swap: bool = False) -> None:
        """Block until a running background refit is done.

        Its state takes over at the next `learn`, as in the live stream, or now with `swap`.
        """
        thread = self._refit_thread
        if thread is not None:
            thread.join()
            if swap:
                self._swap_if_refitted()

    def _swap_if_refitted(self) -> bool:
        """Swap a finished background refit in; True when the state changed."""
        thread = self._refit_thread
        if thread is None or thread.is_alive():
            return False
        self._refit_thread = None
        if not self._refit_result:  # empty if the refit failed; the old state simply stays
            return False
        self.pending_ = []
        self.state_ = self._refit_result[0]
        self.n_refits_ += 1
        return True

    def flush(self) -> None:
        """Apply the pooled documents as one mini-batch step."""
        if self.pending_:
            self.state_.kmeans.partial_fit(sparse.vstack(self.pending_, format="csr"))
            self.pending_ = []

    def refit(self) -> None:
        """Refit vocabulary and centres on the recent window now, keeping cluster ids."""
        if self._refit_thread is not None:
            self._refit_thread.join()
            self._refit_thread = None
        self.flush()
        self.state_ = self._fit_state(list(self.window_), previous=self.state_)
        self.seen_since_refit_ = 0
        self.n_refits_ += 1

    # -- inference ------------------------------------------------------------------------
    def transform(self, docs: Sequence[str]):
        return self.state_.transform(docs)

    def predict(self, docs: Sequence[str]) -> np.ndarray:
        state = self.state_
        return state.predict(state.transform(docs))

    def assign(
        self, docs: Sequence[str], learn: bool = False, lock: threading.Lock | None = None
    ) -> tuple[ClusterState, np.ndarray]:
        """The live path: the state used and the cluster ids of `docs`; with `learn`, then
        learn from them, under `lock` when several threads score with this clusterer. A refit
        that took over meanwhile is not fed: these features belong to the old state."""
        state = self.state_
        features = state.transform(docs)
        ids = state.predict(features)
        if learn:
            with lock or nullcontext():
                if self.state_ is state:
                    self.learn(docs, features)
        return state, ids

    @property
    def labels_(self) -> tuple[str, ...]:
        return self.state_.labels

    def top_terms(self, cluster_id: int, n: int = 8) -> list[str]:
        state = self.state_
        terms = state.fast.terms
        order = np.argsort(state.kmeans.cluster_centers_[cluster_id])[::-1][:n]
        return [terms[i] for i in order if state.kmeans.cluster_centers_[cluster_id, i] > 0]

    def make_vectorizer(self, n_docs: int) -> TfidfVectorizer:
        """The unfitted TF-IDF vectorizer a fit on `n_docs` documents uses."""
        return TfidfVectorizer(
            token_pattern=TOKEN_PATTERN,
            stop_words="english",
            min_df=2 if n_docs >= 200 else 1,
            max_df=0.5 if n_docs >= 200 else 1.0,
            max_features=self.max_features,
            sublinear_tf=True,
            dtype=np.float64,
        )

    # -- internals ------------------------------------------------------------------------
    def _fit_state(self, docs: list[str], previous: ClusterState | None) -> ClusterState:
        if len(docs) < self.n_clusters:
            raise ValueError(
                f"need at least {self.n_clusters} documents to form {self.n_clusters} clusters"
            )
        vectorizer = self.make_vectorizer(len(docs))
        features = vectorizer.fit_transform(docs)
        fresh = KMeans(self.n_clusters, n_init=self.n_init, random_state=self.seed).fit(features)
        if previous is None:
            centers = fresh.cluster_centers_
        else:
            old = _project_centers(previous, vectorizer)
            best = fresh
            if previous.n_docs >= self.window_size:
                # Centres grown from the old ones keep ids and meanings; fresh restarts
                # replace them only when clearly better. While the window still fills, the
                # old centres saw a fraction of the posts at hand and steer k-means into
                # poorer optima than fresh restarts do, so the fresh centres always win.
                warm = KMeans(self.n_clusters, init=old, n_init=1, random_state=self.seed)
                warm.fit(features)
                if fresh.inertia_ >= warm.inertia_ * (1.0 - REFIT_RESTART_GAIN):
                    best = warm
            # Each new centre takes the id of the old centre it is closest to.
            centers = best.cluster_centers_[_match_to_old(old, best.cluster_centers_)]
        online = MiniBatchKMeans(
            self.n_clusters,
            init=centers,
            n_init=1,
            batch_size=self.learn_batch_size,
            compute_labels=False,
            reassignment_ratio=0.0,  # never move a centre at random: ids keep their meaning
            random_state=self.seed,
        )
        online.partial_fit(features)
        terms = vectorizer.get_feature_names_out()
        labels = tuple(_label(online.cluster_centers_[j], terms) for j in range(self.n_clusters))
        return ClusterState(vectorizer, online, labels, FastTfidfVectorizer(vectorizer), len(docs))


def _project_centers(previous: ClusterState, vectorizer: TfidfVectorizer) -> np.ndarray:
    """Old centres expressed in the new vocabulary (terms that left it are dropped)."""
    new_index = vectorizer.vocabulary_
    old_terms = previous.vectorizer.get_feature_names_out()
    old_centers = previous.kmeans.cluster_centers_
    projected = np.zeros((old_centers.shape[0], len(new_index)), dtype=np.float64)
    old_cols, new_cols = [], []
    for col, term in enumerate(old_terms):
        j = new_index.get(term)
        if j is not None:
            old_cols.append(col)
            new_cols.append(j)
    projected[:, new_cols] = old_centers[:, old_cols]
    return projected


def _match_to_old(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Permutation p such that new[p[i]] is the centre closest to old centre i."""
    cost = (old**2).sum(axis=1)[:, None] + (new**2).sum(axis=1)[None, :] - 2.0 * old @ new.T
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)]


def _label(center: np.ndarray, terms: np.ndarray, n: int = 3) -> str:
    order = np.argsort(center)[::-1]
    top = [terms[i] for i in order[: n * 4] if center[i] > 0]
    # Hashtags name a topic best; fill up with plain terms when a cluster has few.
    tags = [t for t in top if t.startswith("#")][:n]
    words = [t for t in top if not t.startswith("#")]
    chosen = tags + words[: n - len(tags)]
    return " · ".join(chosen) if chosen else "(empty)"
