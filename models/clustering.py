"""Hashtag/topic clustering: TF-IDF features into MiniBatchKMeans, learning online.

Cluster ids are stable: online updates never reassign centres (``reassignment_ratio=0``),
and a periodic refit on a window of recent posts (which may change the vocabulary) starts
from the old centres projected onto the new vocabulary and then matches new centres to old
ids, so a cluster keeps its id, colour and meaning on the dashboard.

A clusterer fitted on fewer posts than its window also refits as the window fills, from
fresh k-means++ restarts (ids still matched to the old centres): started on a few hundred
real tweets, it ends up as good as k-means on the whole stream (see models/evaluation.py).

With ``n_clusters="auto"`` (the live default) the number of topics follows the stream, up to
``max_clusters``: a group of posts that fits no centre (cosine similarity below
``new_topic_similarity``, the DP-means rule) opens a new cluster; every centre's weight (its
mini-batch k-means count) decays with a half-life in posts, so a topic that stops receiving
posts fades and retires below ``retire_weight``; centres that converge merge. The vocabulary
grows with the stream (a term joins it once seen in two posts, at once) and the periodic
refit re-learns it on the recent window, projecting the centres. Ids are never reused, and
every birth, retirement and merge is a `TopicEvent` in ``lineage_``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal

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
AUTO = "auto"
# With "auto", a term the vocabulary lacks joins it once this many posts have used it: one
# post's typo or name is noise, two posts sharing a new word may be a new topic.
NEW_TERM_DF = 2
# A live topic is examined for a split once per this many of its posts: a fork lasts longer
# than that, and examining every topic in every batch cost more than the k-means step.
SPLIT_CHECK_POSTS = 200
# A topic's weight in the assignment is floored here: one that has all but faded (it retires
# at `retire_weight`) is unlikely, not impossible.
MIN_ASSIGN_WEIGHT = 1e-3
EventKind = Literal["birth", "retirement", "merge", "split"]


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
        self.stop_words = vectorizer.get_stop_words() or frozenset()

    def _tokens(self, doc: str) -> list[str]:
        tokens = _simple_tokens(doc) if self.findall.__self__.pattern == TOKEN_PATTERN else None
        return self.findall(doc.lower()) if tokens is None else tokens

    def unknown_terms(self, docs: Sequence[str], min_df: int = 2) -> Counter:
        """Document frequency of the terms of `docs` the vocabulary lacks, in ≥ `min_df` docs.

        Only tokens the vectorizer's pattern would find and that are not stop words count.
        """
        vocabulary, stop = self.vocabulary, self.stop_words
        counts: Counter = Counter()
        for doc in docs:
            counts.update({t for t in self._tokens(doc) if t not in vocabulary})
        return Counter(
            {
                t: n
                for t, n in counts.items()
                # "#", "a" and "#a" are pieces of the fast split that the pattern never finds
                if n >= min_df and t not in stop and len(t.lstrip("#")) >= 2
            }
        )

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
    # Stable cluster id of each centre row (None: the row is the id, as with a fixed k).
    ids: np.ndarray | None = None
    # With a number of topics that follows the stream: the centres scaled to unit length,
    # for the cosine (spherical k-means) assignment that rule uses, how much a topic's
    # weight counts beside the cosine there and the cosine a post needs to fit a topic
    # (see `assign_rows`).
    unit: np.ndarray | None = None
    concentration: float = 0.0
    fit_similarity: float = 0.0

    def transform(self, docs: Sequence[str]) -> sparse.csr_matrix:
        return self.fast.transform(docs)

    @property
    def cluster_ids(self) -> list[int]:
        """The cluster id of every centre, in row order."""
        if self.ids is None:
            return list(range(self.kmeans.cluster_centers_.shape[0]))
        return self.ids.tolist()

    def label_of(self) -> dict[int, str]:
        """Label by cluster id."""
        return dict(zip(self.cluster_ids, self.labels, strict=True))

    def row_of(self, cluster_id: int) -> int:
        """The centre row of a live cluster id (KeyError when it is not live)."""
        if self.ids is None:
            if 0 <= cluster_id < self.kmeans.cluster_centers_.shape[0]:
                return int(cluster_id)
        else:
            rows = np.flatnonzero(self.ids == cluster_id)
            if rows.size:
                return int(rows[0])
        raise KeyError(f"no live topic cluster {cluster_id}")

    def predict(self, features) -> np.ndarray:
        """Nearest centre, as `MiniBatchKMeans.predict` but without its per-call overhead
        (when the number of topics is automatic: by cosine similarity and topic weight, see
        `assign_rows`), as cluster ids."""
        if features.shape[0] == 0:
            return np.empty(0, dtype=np.int64)
        if self.unit is not None:
            similarity = np.asarray(features @ self.unit.T)
            rows = assign_rows(
                similarity, self.kmeans._counts, self.concentration, self.fit_similarity
            )
            return self.ids[rows].astype(np.int64)
        centers = self.kmeans.cluster_centers_
        distances = (centers**2).sum(axis=1)[None, :] - 2.0 * np.asarray(features @ centers.T)
        rows = distances.argmin(axis=1).astype(np.int64)
        return rows if self.ids is None else self.ids[rows].astype(np.int64)


def assign_rows(
    similarity: np.ndarray, weights: np.ndarray, concentration: float, fit_similarity: float
) -> np.ndarray:
    """The topic row of each document. Among the topics it fits (cosine similarity at least
    `fit_similarity`; all of them when it fits none), the one with the largest cosine +
    ln(weight) ÷ `concentration`, a weight above the topics' mean counting as the mean.
    With `concentration` 0, the largest cosine alone.

    The weight term is the prior of Dirichlet-process clustering (the Chinese restaurant
    process of MStream and its kin: a topic is as likely as it is heavy). A post that fits
    an established topic about as well as a young or fading one joins the established one:
    a question naming its subject among generic words joins that subject, not a passing
    group of generic words. Two limits keep the prior from taking over. It never pulls a
    post into a topic it does not fit. And above the mean it stops growing, so a busy topic
    competes on similarity alone and cannot snowball through a feed that shares one word
    ("flight").
    """
    if not concentration or not len(weights):
        return similarity.argmax(axis=1)
    typical = float(weights.mean())
    prior = np.log(np.maximum(np.minimum(weights, typical), MIN_ASSIGN_WEIGHT)) / concentration
    score = similarity + prior[None, :]
    fits = similarity >= fit_similarity
    score = np.where(fits | ~fits.any(axis=1, keepdims=True), score, -np.inf)
    return score.argmax(axis=1)


@dataclass(frozen=True)
class TopicEvent:
    """One change in the set of live topics.

    Attributes:
        seq: position in the clusterer's lineage, from 1, increasing (see `events_since`).
        time: wall-clock time of the change (seconds since the epoch).
        posts_seen: posts the clusterer had learned from when it happened (stream time).
        kind: "birth", "retirement", "merge" (the first id absorbed the others) or "split".
        cluster_ids: the clusters involved; for a merge the surviving id comes first.
        top_terms: the top terms of each of `cluster_ids`, in the same order.
    """

    seq: int
    time: float
    posts_seen: int
    kind: EventKind
    cluster_ids: tuple[int, ...]
    top_terms: tuple[tuple[str, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "posts_seen": self.posts_seen,
            "kind": self.kind,
            "cluster_ids": list(self.cluster_ids),
            "top_terms": [list(t) for t in self.top_terms],
        }


# -- topics that follow the stream ("auto") ----------------------------------------------------
def _top_terms(center: np.ndarray, state: ClusterState, n: int) -> list[str]:
    terms = state.fast.terms
    return [terms[i] for i in _top_indices(center, n) if center[i] > 0]


def _unit_rows(centers: np.ndarray) -> np.ndarray:
    norms = np.sqrt((centers**2).sum(axis=1))
    norms[norms == 0] = 1.0
    return centers / norms[:, None]


def _grown_vectorizer(vectorizer: TfidfVectorizer, terms: list[str], idf: np.ndarray):
    """A copy of `vectorizer` whose vocabulary also holds `terms` (appended), with `idf`."""
    grown = copy.copy(vectorizer)
    grown._tfidf = copy.copy(vectorizer._tfidf)
    start = len(vectorizer.vocabulary_)
    vocabulary = dict(vectorizer.vocabulary_)
    vocabulary.update((term, start + i) for i, term in enumerate(terms))
    grown.vocabulary_ = vocabulary
    grown.idf_ = np.concatenate([vectorizer.idf_, idf])
    grown._tfidf.n_features_in_ = len(vocabulary)
    return grown


def _group_misfits(features, similarity: float, min_posts: int) -> list[np.ndarray]:
    """Groups of at least `min_posts` rows of `features` around a common centre.

    Greedy, densest first: the row with the most neighbours (cosine ≥ `similarity`) seeds a
    group; the group is every remaining row at least that similar to the seed's
    neighbourhood mean. Rows in no group are left out.
    """
    m = features.shape[0]
    if m < min_posts:
        return []
    neighbours = np.asarray((features @ features.T).todense()) >= similarity
    remaining = np.ones(m, dtype=bool)
    groups = []
    while remaining.sum() >= min_posts:
        counts = (neighbours & remaining[None, :]).sum(axis=1)
        counts[~remaining] = -1
        seed = int(counts.argmax())
        if counts[seed] < min_posts:
            break
        members = np.flatnonzero(neighbours[seed] & remaining)
        center = np.asarray(features[members].mean(axis=0)).ravel()
        norm = np.sqrt(center @ center) or 1.0
        close = remaining & (np.asarray(features @ center).ravel() / norm >= similarity)
        close[seed] = True
        members = np.flatnonzero(close)
        groups.append(members)
        remaining[members] = False
    return groups


def _bisect(gram: np.ndarray, iterations: int = 10) -> np.ndarray | None:
    """Two groups of the rows whose pairwise cosine similarities are `gram` (spherical
    2-means, seeded by the row least like the others and the row least like it); a boolean
    mask of the second group, or None when every row falls in one."""
    first = int(gram.mean(axis=1).argmin())
    second = int(gram[first].argmin())
    mask = gram[:, second] > gram[:, first]
    for _ in range(iterations):
        if mask.all() or not mask.any():
            return None
        moved = gram[:, mask].mean(axis=1) > gram[:, ~mask].mean(axis=1)
        if (moved == mask).all():
            break
        mask = moved
    return mask if mask.any() and not mask.all() else None


def _cohesion(gram: np.ndarray) -> float:
    """Mean cosine similarity of distinct pairs among the rows of `gram`."""
    n = len(gram)
    return float((gram.sum() - np.trace(gram)) / (n * (n - 1))) if n > 1 else 1.0


class _AutoTopics:
    """Methods of `StreamingTopicClusterer` for `n_clusters="auto"` (mixed in)."""

    def _auto_state(
        self,
        vectorizer: TfidfVectorizer,
        fast: FastTfidfVectorizer,
        centers: np.ndarray,
        counts: np.ndarray,
        ids: np.ndarray,
        labels: Sequence[str],
        n_docs: int,
        unit: np.ndarray | None = None,
    ) -> ClusterState:
        """A state whose MiniBatchKMeans holds `centers` and their (decayed) `counts`
        (`unit`: the centres at unit length, when the caller has them already)."""
        centers = np.ascontiguousarray(centers, dtype=np.float64)
        kmeans = MiniBatchKMeans(
            max(len(ids), 1),
            init="k-means++",
            n_init=1,
            batch_size=self.learn_batch_size,
            compute_labels=False,
            reassignment_ratio=0.0,
            random_state=self.seed,
        )
        # Fitted attributes, set as `partial_fit` leaves them: the k-means counts go on.
        kmeans.cluster_centers_ = centers
        kmeans._counts = np.asarray(counts, dtype=np.float64)
        kmeans.n_features_in_ = centers.shape[1]
        kmeans._n_threads = 1
        kmeans.n_steps_ = 0
        kmeans._n_since_last_reassign = 0
        kmeans._batch_size = self.learn_batch_size
        kmeans._random_state = np.random.RandomState(self.seed)
        return ClusterState(
            vectorizer,
            kmeans,
            tuple(labels),
            fast,
            n_docs,
            np.asarray(ids, dtype=np.int64),
            _unit_rows(centers) if unit is None else unit,
            self.concentration,
            self.new_topic_similarity,
        )

    def _fit_auto(self, docs: list[str]) -> None:
        if not docs:
            raise ValueError("need at least 1 document to learn topics from")
        vectorizer = self.make_vectorizer(len(docs)).fit(docs)
        fast = FastTfidfVectorizer(vectorizer)
        n = len(fast.terms)
        self.state_ = self._auto_state(
            vectorizer, fast, np.zeros((0, n)), np.zeros(0), np.zeros(0), (), len(docs)
        )
        step = max(self.learn_batch_size // 4, 1)
        for start in range(0, len(docs), step):
            self._learn_auto(docs[start : start + step], None, remember=False)

    def _event(self, kind: EventKind, ids: Sequence[int], terms: Sequence[Sequence[str]]):
        self.n_events_ += 1
        self.lineage_.append(
            TopicEvent(
                self.n_events_,
                time.time(),
                self.posts_seen_,
                kind,
                tuple(int(i) for i in ids),
                tuple(tuple(t) for t in terms),
            )
        )

    def _grow_vocabulary(self, state: ClusterState, docs: Sequence[str]) -> ClusterState:
        """The state with the new terms of the batch (seen in ≥ 2 posts so far) in its vocabulary.

        A new term's IDF is what the last fit would have given it with its document
        frequency in this batch: a term new to the stream is rare, hence distinctive.
        """
        batch = state.fast.unknown_terms(docs, min_df=1)
        # Terms seen once wait for a second post, in this batch or a later one. A term in
        # most posts of a batch is kept too: a burst of one new hashtag is a new topic.
        waiting = self.unknown_df_
        waiting.update(batch)
        terms = sorted(t for t in batch if waiting.get(t, 0) >= NEW_TERM_DF)
        if len(waiting) > 4 * self.max_features:  # forget the oldest single sightings
            for term in [t for t, n in waiting.items() if n < 2][: 2 * self.max_features]:
                del waiting[term]
        if not terms:
            return state
        df = np.array([waiting.pop(t) for t in terms], dtype=np.float64)
        n = state.n_docs
        idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
        vectorizer = _grown_vectorizer(state.vectorizer, terms, idf)
        padding = np.zeros((state.kmeans.cluster_centers_.shape[0], len(terms)))
        return self._auto_state(
            vectorizer,
            FastTfidfVectorizer(vectorizer),
            np.hstack([state.kmeans.cluster_centers_, padding]),
            state.kmeans._counts,
            state.ids,
            state.labels,
            n,
            np.hstack([state.unit, padding]),  # the new columns are zero: norms stay
        )

    def _project_state(
        self, state: ClusterState, vectorizer: TfidfVectorizer, n_docs: int
    ) -> ClusterState:
        """The live topics re-expressed in a vocabulary learned again on the window."""
        fast = FastTfidfVectorizer(vectorizer)
        centers = _project_centers(state, vectorizer)
        # Centres are means of TF-IDF rows: a term whose IDF changed scales the same way.
        old_idf = np.zeros(len(fast.terms))
        new_index = vectorizer.vocabulary_
        for term, col in state.vectorizer.vocabulary_.items():
            j = new_index.get(term)
            if j is not None:
                old_idf[j] = state.vectorizer.idf_[col]
        ratio = np.divide(vectorizer.idf_, old_idf, out=np.ones_like(old_idf), where=old_idf > 0)
        centers *= ratio[None, :]
        labels = [_label(center, fast.terms) for center in centers]
        return self._auto_state(
            vectorizer, fast, centers, state.kmeans._counts, state.ids, labels, n_docs
        )

    def _learn_auto(self, docs: Sequence[str], features, remember: bool = True) -> np.ndarray:
        """Learn from one batch: grow the vocabulary, decay, retire, merge, open new topics
        for posts that fit none, then the mini-batch k-means step. The ids of `docs`."""
        n = len(docs)
        if n == 0:
            return np.empty(0, dtype=np.int64)
        self.posts_seen_ += n
        if remember:
            self.window_.extend(docs)
            self.seen_since_refit_ += n
        state = self._grow_vocabulary(self.state_, docs)
        if state is not self.state_ or features is None:
            features = state.transform(docs)
        counts = state.kmeans._counts * 0.5 ** (n / self.half_life)
        centers = state.kmeans.cluster_centers_
        ids, labels, unit = state.ids, list(state.labels), state.unit
        changed = state is not self.state_

        # Topics that faded retire, the heaviest one always stays; converged ones merge.
        faded = counts < self.retire_weight
        if faded.all() and len(counts):
            faded[counts.argmax()] = False
        if faded.any():
            for row in np.flatnonzero(faded):
                self._event("retirement", [ids[row]], [_top_terms(centers[row], state, 5)])
            keep = ~faded
            centers, counts, ids, unit = centers[keep], counts[keep], ids[keep], unit[keep]
            labels = [label for label, k in zip(labels, keep, strict=True) if k]
            changed = True
        merged = self._merge(state, centers, counts, ids, unit)
        if merged is not None:
            centers, counts, ids, unit, keep = merged
            labels = [label for label, k in zip(labels, keep, strict=True) if k]
            changed = True

        # Whether a post fits any topic is its cosine alone (the DP-means rule); which one
        # it joins also weighs the topics (`assign_rows`). Groups of posts that fit none
        # open topics; lone ones join the topic `assign_rows` gives them.
        k = len(ids)
        if k:
            similarity = np.asarray(features @ unit.T)
            rows = assign_rows(similarity, counts, self.concentration, self.new_topic_similarity)
            best = similarity.max(axis=1)
        else:
            rows, best = np.zeros(n, dtype=np.int64), np.full(n, -1.0)
        has_terms = np.diff(features.indptr) > 0
        misfits = np.flatnonzero((best < self.new_topic_similarity) & has_terms)
        groups = _group_misfits(
            features[misfits], self.new_topic_similarity, max(self.min_topic_posts, 1)
        )
        if not groups and k == 0:
            # Nothing to join yet: the batch itself is the first topic.
            misfits = np.flatnonzero(has_terms) if has_terms.any() else np.arange(n)
            groups = [np.arange(len(misfits))]
        new_centers, new_ids = [], []
        for group in groups:
            members = misfits[group]
            if k + len(new_ids) >= self.max_clusters:
                # Full: the new topic replaces the lightest one, if lighter than it.
                lightest = int(counts.argmin()) if k else -1
                if lightest < 0 or counts[lightest] >= len(members):
                    break
                self._event(
                    "retirement", [ids[lightest]], [_top_terms(centers[lightest], state, 5)]
                )
                counts = counts.copy()
                counts[lightest] = 0.0  # removed at the next batch; takes no posts now
                centers = centers.copy()
                centers[lightest] = 0.0
                unit = unit.copy()
                unit[lightest] = 0.0
                changed = True
            center = np.asarray(features[members].mean(axis=0)).ravel()
            new_centers.append(center)
            new_ids.append(self.next_id_)
            rows[members] = k + len(new_ids) - 1
            self.next_id_ += 1
        if new_ids:
            centers = np.vstack([centers, np.array(new_centers)])
            unit = np.vstack([unit, _unit_rows(np.array(new_centers))])
            counts = np.concatenate([counts, np.zeros(len(new_ids))])
            ids = np.concatenate([ids, np.array(new_ids, dtype=np.int64)])
            for row, cid in zip(range(k, k + len(new_ids)), new_ids, strict=True):
                labels.append(_label(centers[row], state.fast.terms))
                self._event("birth", [cid], [_top_terms(centers[row], state, 5)])
            changed = True
        if changed:
            state = self._auto_state(
                # `centers` is a new array here (sliced, stacked or copied), or that of a
                # grown vocabulary's state, which no reader has seen yet.
                state.vectorizer,
                state.fast,
                centers,
                counts,
                ids,
                labels,
                state.n_docs,
                unit,
            )
        else:
            state.kmeans._counts[:] = counts
        touched = self._step(state, features, rows)
        # Splits follow topics of the live stream; the first topics (`fit`) are shaped by
        # births and merges alone.
        split = self._split(state, features, rows, touched) if remember else None
        if split is not None:
            state, rows, touched = split
        # The centres that moved are named again, so a label always reads its centre.
        labels = list(state.labels)
        for row in touched:
            labels[row] = _label(state.kmeans.cluster_centers_[row], state.fast.terms)
        state = dataclasses.replace(state, labels=tuple(labels))
        self.state_ = state
        if remember and self._refit_due():
            self.start_refit()
        return state.ids[rows].astype(np.int64)

    def seed_topics(self, groups: Mapping[str, Sequence[str]]) -> list[int]:
        """Open a topic for each group of documents people put under one name (their topic
        corrections) that no live topic holds yet: seeded k-means, the group's mean as the
        centre and its size as the weight. A group of fewer than `min_topic_posts`, or one
        whose mean is `merge_similarity`-close to a live centre, opens none. Only with
        "auto" (a fixed k keeps its k). The ids born, in the order of `groups`.
        """
        if not self.auto:
            return []
        kept = [list(docs) for docs in groups.values() if len(docs) >= self.min_topic_posts]
        if not kept:
            return []
        state = self._grow_vocabulary(self.state_, [doc for docs in kept for doc in docs])
        centers, counts = state.kmeans.cluster_centers_, state.kmeans._counts
        ids, labels, unit = state.ids, list(state.labels), state.unit
        born: list[int] = []
        for docs in kept:
            center = np.asarray(state.transform(docs).mean(axis=0)).ravel()
            if not center.any():
                continue
            direction = _unit_rows(center[None, :])
            if len(ids) and float((unit @ direction[0]).max()) >= self.merge_similarity:
                continue
            centers = np.vstack([centers, center[None, :]])
            unit = np.vstack([unit, direction])
            counts = np.concatenate([counts, [float(len(docs))]])
            ids = np.concatenate([ids, np.array([self.next_id_], dtype=np.int64)])
            labels.append(_label(center, state.fast.terms))
            self._event("birth", [self.next_id_], [_top_terms(center, state, 5)])
            born.append(self.next_id_)
            self.next_id_ += 1
        if born or state is not self.state_:
            self.state_ = self._auto_state(
                state.vectorizer, state.fast, centers, counts, ids, labels, state.n_docs, unit
            )
        return born

    def _step(self, state: ClusterState, features, rows: np.ndarray) -> np.ndarray:
        """The mini-batch k-means update (each centre moves to the running mean of its
        posts, at rate 1/count, with decayed counts), for the posts' cosine assignment."""
        touched, inverse = np.unique(rows, return_inverse=True)
        indicator = sparse.csr_matrix(
            (np.ones(len(rows)), (inverse, np.arange(len(rows)))),
            shape=(len(touched), len(rows)),
        )
        sums = np.asarray((indicator @ features).todense())
        n_per = np.bincount(inverse, minlength=len(touched)).astype(np.float64)
        centers, counts = state.kmeans.cluster_centers_, state.kmeans._counts
        old = counts[touched]
        counts[touched] = old + n_per
        centers[touched] = (centers[touched] * old[:, None] + sums) / counts[touched][:, None]
        state.unit[touched] = _unit_rows(centers[touched])
        self.touched_ = state.ids[touched].tolist()
        return touched

    def _split(self, state: ClusterState, features, rows: np.ndarray, touched: np.ndarray):
        """Split each topic whose posts of this batch fall into two groups (spherical
        2-means) less alike than `split_similarity` (cosine of their means; below
        `merge_similarity`, so they do not merge back), each of at least
        `2 · min_topic_posts` posts and a fifth of the batch's, the group less like the
        topic as cohesive as a new topic must be (mean pairwise cosine ≥
        `new_topic_similarity`). The topic as it was has become two: each group's mean is a
        centre, the old weight is shared in proportion, the group nearer the old centre
        keeps the id and the other is born with a new one.

        Returns:
            (state, rows, touched) after the splits, or None when nothing split.
        """
        if self.split_similarity <= 0:
            return None
        least = 2 * max(self.min_topic_posts, 1)
        found, count = np.unique(rows, return_counts=True)
        due = self.split_due_
        splits = []
        for row, n in zip(found.tolist(), count.tolist(), strict=True):
            cid = int(state.ids[row])
            waited = due.get(cid, 0) + n
            if waited < SPLIT_CHECK_POSTS or n < 2 * least:
                due[cid] = waited
                continue
            due[cid] = 0
            members = np.flatnonzero(rows == row)
            part = features[members]
            gram = (part @ part.T).toarray()
            leaving = _bisect(gram)
            if leaving is None or min(leaving.sum(), (~leaving).sum()) < max(
                least, 0.2 * len(members)
            ):
                continue
            closeness = np.asarray(part @ state.unit[row]).ravel()
            if closeness[leaving].mean() > closeness[~leaving].mean():
                leaving = ~leaving  # the group less like the topic leaves
            inside = gram[np.ix_(leaving, leaving)]
            if _cohesion(inside) < self.new_topic_similarity:
                continue
            between = gram[np.ix_(leaving, ~leaving)].mean()
            within = inside.mean() * gram[np.ix_(~leaving, ~leaving)].mean()
            if between / np.sqrt(within) < self.split_similarity:
                splits.append((row, members, part, leaving))
        if len(due) > 2 * self.max_clusters:  # forget retired topics
            live = set(state.ids.tolist())
            for cid in [c for c in due if c not in live]:
                del due[cid]
        if not splits:
            return None
        centers = state.kmeans.cluster_centers_.copy()
        counts = state.kmeans._counts.copy()
        ids, labels, unit = state.ids, list(state.labels), state.unit.copy()
        rows = rows.copy()
        new_centers, new_counts, new_ids = [], [], []
        for row, members, part, leaving in splits:
            before = _top_terms(centers[row], state, 5)
            share = leaving.mean()
            center = np.asarray(part[leaving].mean(axis=0)).ravel()
            centers[row] = np.asarray(part[~leaving].mean(axis=0)).ravel()
            unit[row] = _unit_rows(centers[row : row + 1])[0]
            new_centers.append(center)
            new_counts.append(counts[row] * share)
            counts[row] *= 1.0 - share
            new_ids.append(self.next_id_)
            rows[members[leaving]] = len(ids) + len(new_ids) - 1
            labels.append(_label(center, state.fast.terms))
            self._event("split", [ids[row], self.next_id_], [before, _top_terms(center, state, 5)])
            self.next_id_ += 1
        new = np.array(new_centers)
        state = self._auto_state(
            state.vectorizer,
            state.fast,
            np.vstack([centers, new]),
            np.concatenate([counts, new_counts]),
            np.concatenate([ids, np.array(new_ids, dtype=np.int64)]),
            labels,
            state.n_docs,
            np.vstack([unit, _unit_rows(new)]),
        )
        born = np.arange(len(ids), len(ids) + len(new_ids))
        touched = np.union1d(touched, np.concatenate([[row for row, *_ in splits], born]))
        self.touched_ = state.ids[touched].tolist()
        return state, rows, touched

    def _merge(self, state: ClusterState, centers, counts, ids, unit):
        """Merge each topic that last moved into another it has converged with (cosine of
        the centres ≥ `merge_similarity`); the heavier one keeps its id. None if none did."""
        touched = np.flatnonzero(np.isin(ids, self.touched_))
        if not len(touched) or len(ids) < 2 or self.merge_similarity >= 1.0:
            return None
        # Centres hold a small share of the vocabulary: a sparse product is much cheaper.
        every = sparse.csr_matrix(unit)
        similarity = (every[touched] @ every.T).toarray()
        similarity[np.arange(len(touched)), touched] = -1.0
        if similarity.max() < self.merge_similarity:
            return None  # the usual case: no copy of the centres
        centers, counts, unit = centers.copy(), counts.copy(), unit.copy()
        alive = np.ones(len(ids), dtype=bool)
        position = {int(row): i for i, row in enumerate(touched)}
        for i, row in enumerate(touched):
            if not alive[row]:
                continue
            candidates = similarity[i]
            other = int(candidates.argmax())
            if candidates[other] < self.merge_similarity:
                continue
            keep, gone = (row, other) if counts[row] >= counts[other] else (other, row)
            total = counts[keep] + counts[gone]
            terms = [_top_terms(centers[keep], state, 5), _top_terms(centers[gone], state, 5)]
            if total > 0:
                weighted = centers[keep] * counts[keep] + centers[gone] * counts[gone]
                centers[keep] = weighted / total
            counts[keep] = total
            unit[keep] = _unit_rows(centers[keep : keep + 1])[0]
            alive[gone] = False
            self._event("merge", [ids[keep], ids[gone]], terms)
            # Only the kept centre moved: refresh its column (and its row, if it has one).
            similarity[:, gone] = -1.0
            similarity[:, keep] = unit[touched] @ unit[keep]
            if keep in position:
                refreshed = unit @ unit[keep]
                refreshed[~alive] = -1.0
                similarity[position[keep]] = refreshed
            similarity[np.arange(len(touched)), touched] = -1.0
        return centers[alive], counts[alive], ids[alive], unit[alive], alive


class StreamingTopicClusterer(_AutoTopics):
    """Online topic clusterer with stable ids and human-readable labels.

    Args:
        n_clusters: number of topics, or "auto": topics are born, merge and retire as the
            stream goes, up to `max_clusters` (ids are never reused).
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
        max_clusters: most live topics with "auto"; at the limit, a new topic replaces the
            lightest one.
        new_topic_similarity: with "auto", a post whose cosine similarity to every centre is
            below this fits no topic; `min_topic_posts` such posts of one batch that are this
            similar to each other open a new cluster (DP-means, with λ² = 2 − 2·this).
        min_topic_posts: posts needed to open a topic; lone misfits join the topic
            `assign_rows` gives them.
        half_life: posts after which a topic's weight has halved (its mini-batch k-means
            count decays: recent posts move centres more, and silent topics fade).
        retire_weight: a topic whose decayed weight falls below this retires.
        merge_similarity: two topics whose centres are at least this cosine-similar merge.
        concentration: with "auto", a post joins, among the topics it fits, the one with
            the largest cosine similarity + ln(topic weight, at most the mean) / this (0:
            the largest cosine alone; see `assign_rows`).
        split_similarity: a live topic whose posts of one batch fall into two groups less
            alike than this (cosine of their means) splits in two (0 disables); below
            `merge_similarity`, so the two do not merge back. `fit` never splits.
        lineage_size: most recent `TopicEvent`s kept in `lineage_`.
    """

    def __init__(
        self,
        n_clusters: int | Literal["auto"] = AUTO,
        max_features: int = 20000,
        window_size: int = 5000,
        refit_every: int = 20000,
        learn_batch_size: int = 2048,
        n_init: int = 4,
        warmup_growth: float = 0.2,
        seed: int = 0,
        max_clusters: int = 300,
        new_topic_similarity: float = 0.2,
        min_topic_posts: int = 3,
        half_life: float = 2000.0,
        retire_weight: float = 0.5,
        merge_similarity: float = 0.3,
        concentration: float = 6.0,
        split_similarity: float = 0.1,
        lineage_size: int = 1000,
    ) -> None:
        self.n_clusters = n_clusters
        self.max_features = max_features
        self.window_size = window_size
        self.refit_every = refit_every
        self.learn_batch_size = learn_batch_size
        self.n_init = n_init
        self.warmup_growth = warmup_growth
        self.seed = seed
        self.max_clusters = max_clusters
        self.new_topic_similarity = new_topic_similarity
        self.min_topic_posts = min_topic_posts
        self.half_life = half_life
        self.retire_weight = retire_weight
        self.merge_similarity = merge_similarity
        self.concentration = concentration
        self.split_similarity = split_similarity
        self.lineage_size = lineage_size

    @property
    def auto(self) -> bool:
        """True when the number of topics follows the stream."""
        return self.n_clusters == AUTO

    # -- learning -------------------------------------------------------------------------
    def fit(self, docs: Sequence[str]) -> StreamingTopicClusterer:
        """Fit from scratch on `docs` (k-means++ with several inits)."""
        self.window_ = deque(docs[-self.window_size :], maxlen=self.window_size)
        self.seen_since_refit_ = 0
        self.n_refits_ = 0
        self.pending_ = []
        self.lineage_: deque[TopicEvent] = deque(maxlen=self.lineage_size)
        self.n_events_ = 0
        self.next_id_ = 0
        self.posts_seen_ = 0
        self.touched_: list[int] = []
        self.unknown_df_: Counter = Counter()
        self.split_due_: dict[int, int] = {}  # posts per live topic since its last split check
        if self.auto:
            self._fit_auto(list(docs))
        else:
            self.state_ = self._fit_state(list(self.window_), previous=None)
            self.next_id_ = self.n_clusters
        return self

    # A running refit thread is not part of the model: it is neither pickled nor copied.
    _refit_thread: threading.Thread | None = None
    _refit_result: list[ClusterState] | None = None

    def __setstate__(self, state: dict) -> None:
        # A version saved before topics could split loads without these: it never splits.
        state.setdefault("split_similarity", 0.0)
        state.setdefault("split_due_", {})
        # One saved before topics were weighed in the assignment takes the nearest centre.
        state.setdefault("concentration", 0.0)
        self.__dict__.update(state)

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
        if self.auto:
            self._learn_auto(docs, features)
            return
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
            # With "auto", only the vocabulary is learned here: the centres, births and
            # retirements of the meantime are projected onto it when it takes over.
            if self.auto:
                result.append(self.make_vectorizer(len(docs)).fit(docs))
            else:
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
        result = self._refit_result[0]
        if isinstance(result, ClusterState):
            self.state_ = result
        else:
            self.state_ = self._project_state(self.state_, result, len(self.window_))
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
        docs = list(self.window_)
        if self.auto:
            vectorizer = self.make_vectorizer(len(docs)).fit(docs)
            self.state_ = self._project_state(self.state_, vectorizer, len(docs))
        else:
            self.state_ = self._fit_state(docs, previous=self.state_)
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
        if learn and self.auto:
            # New topics are opened before the ids are given: the posts that start a topic
            # get its id at once.
            with lock or nullcontext():
                self._swap_if_refitted()
                ids = self._learn_auto(docs, None)
                return self.state_, ids
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
        """Labels of the live clusters, in the order of `cluster_ids_`."""
        return self.state_.labels

    @property
    def cluster_ids_(self) -> list[int]:
        """Ids of the live clusters (0 … k−1 with a fixed k)."""
        return self.state_.cluster_ids

    def label_of(self, cluster_id: int) -> str:
        """The label of a live cluster id."""
        return self.state_.labels[self.state_.row_of(cluster_id)]

    def top_terms(self, cluster_id: int, n: int = 8) -> list[str]:
        """The heaviest terms of a live cluster's centre (none for an id no longer live)."""
        state = self.state_
        try:
            row = state.row_of(cluster_id)
        except KeyError:
            return []
        return _top_terms(state.kmeans.cluster_centers_[row], state, n)

    def events_since(self, seq: int = 0) -> list[TopicEvent]:
        """Lineage events after `seq` (0: all those kept), oldest first.

        A consumer remembers the `seq` of the last event it saw and asks for the ones after.
        """
        return [event for event in getattr(self, "lineage_", ()) if event.seq > seq]

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


def _top_indices(center: np.ndarray, n: int) -> np.ndarray:
    """Indices of the `n` largest positive weights of `center`, largest first (ties by
    index); a centre's positive terms are few, so only they are ranked."""
    top = np.flatnonzero(center > 0)
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    if len(top) > n:
        top = top[np.argpartition(center[top], -n)[-n:]]
    return top[np.lexsort((top, -center[top]))]


def _label(center: np.ndarray, terms: np.ndarray, n: int = 3) -> str:
    top = [terms[i] for i in _top_indices(center, n * 4) if center[i] > 0]
    # Hashtags name a topic best; fill up with plain terms when a cluster has few.
    tags = [t for t in top if t.startswith("#")][:n]
    words = [t for t in top if not t.startswith("#")]
    chosen = tags + words[: n - len(tags)]
    return " · ".join(chosen) if chosen else "(empty)"
