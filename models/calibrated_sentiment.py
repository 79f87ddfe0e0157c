"""A calibrated sentiment label next to VADER's scores: VADER's output stacked with a text model.

Every post keeps VADER's compound, pos, neu, neg and label exactly as VADER gives them. The
models here add `calibrated_label` (negative / neutral / positive) and its probability:

- `StackedSentimentModel`, trained on labelled tweets (`socialpulse train --sentiment-file`):
  NB-weighted logistic regressions, one per class, on TF-IDF of the words VADER read
  (level 1), and a logistic regression (level 2) on the first level's out-of-fold log
  probabilities and VADER's four scores. The level-2 layer both combines the two and
  calibrates the probabilities, since it learns from predictions on rows the text model
  did not see. Scoring reuses VADER's tokens and runs the TF-IDF arithmetic on the whole
  batch.
- `VaderFallbackSentimentModel`, used when no labelled data was given (the zero-set-up
  default of `make run`): VADER's label, with the probability that VADER's label is right
  as measured on labelled tweets for its |compound| (`FALLBACK_CALIBRATION`).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import chain, repeat
from typing import Any

import numpy as np
from scipy import sparse

from models.sentiment import (
    NEGATIVE_THRESHOLD,
    POSITIVE_THRESHOLD,
    VaderSentimentModel,
    _shared_vader,
    sentiment_label,
)
from streaming.records import Sentiment

LABELS = ("negative", "neutral", "positive")  # the classes, in the models' column order
C_CHOICES = (0.3, 1.0, 3.0)  # the text model's inverse penalties `fit` chooses from
NB_ALPHA = 1.0  # add-one smoothing of the text model's per-class word counts
_LABEL_NAMES = np.array(LABELS, dtype=object)

# P(VADER's label is the human label | |compound| in [edge, next edge)), measured on general
# tweets: TweetEval sentiment validation (2,000 tweets; 524, 304, 456, 376, 296 and 44 per
# bin). Used only when no model was trained on labelled data: README, "Sentiment".
FALLBACK_CALIBRATION: tuple[tuple[float, float], ...] = (
    (0.0, 0.64),
    (0.05, 0.34),
    (0.3, 0.47),
    (0.5, 0.59),
    (0.7, 0.78),
    (0.9, 0.93),
)


def _stack_features(scores: np.ndarray) -> np.ndarray:
    """VADER's (neg, neu, pos, compound) rows and the label their compound gives, one-hot."""
    compound = scores[:, 3:4]
    return np.hstack([scores, compound >= 0.05, compound <= -0.05, np.abs(compound) < 0.05]).astype(
        np.float64
    )


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


class VaderFallbackSentimentModel(VaderSentimentModel):
    """VADER's label as the calibrated label, with a measured probability of it being right."""

    kind = "vader-fallback"

    def score_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        scores = _shared_vader().scores
        edges = [edge for edge, _ in FALLBACK_CALIBRATION]
        results = []
        for text in texts:
            neg, neu, pos, compound = scores(text)
            label = sentiment_label(compound)
            probability = FALLBACK_CALIBRATION[bisect.bisect_right(edges, abs(compound)) - 1][1]
            results.append(Sentiment(compound, pos, neu, neg, label, label, probability))
        return results

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """The measured probability on VADER's label, the rest shared by the other two."""
        probabilities = np.zeros((len(texts), len(LABELS)))
        for row, sentiment in enumerate(self.score_batch(texts)):
            p = sentiment.calibrated_probability
            probabilities[row] = (1.0 - p) / 2
            probabilities[row, LABELS.index(sentiment.label)] = p
        return probabilities

    def describe(self) -> dict[str, Any]:
        """What the manifest and experiment log record of this model."""
        return {"kind": self.kind, "calibration": [list(row) for row in FALLBACK_CALIBRATION]}


class StackedSentimentModel(VaderSentimentModel):
    """VADER + an NB-weighted TF-IDF text model, stacked and calibrated by a logistic layer.

    Args:
        C: inverse regularization of the text model (level 1); None chooses it among
            `C_CHOICES` by out-of-fold log loss.
        stack_C: inverse regularization of the stacking layer (level 2).
        min_df: documents a word must appear in to be a feature.
        folds: folds of the out-of-fold predictions the stacking layer learns from.
        balance: weigh rows so that each group (e.g. each source file) and, within it, each
            class count the same: one large, one-sided file does not set the class priors.
        seed: random seed of the folds.
    """

    kind = "stacked"

    def __init__(
        self,
        C: float | None = None,
        stack_C: float = 1.0,
        min_df: int = 2,
        folds: int = 5,
        balance: bool = True,
        seed: int = 0,
    ) -> None:
        self.C = C
        self.stack_C = stack_C
        self.min_df = min_df
        self.folds = folds
        self.balance = balance
        self.seed = seed

    # -- fitting ---------------------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        groups: Sequence[str] | None = None,
        fixed_weights: Mapping[str, float] | None = None,
    ) -> StackedSentimentModel:
        """Learn from labelled texts (labels: negative / neutral / positive).

        `fixed_weights` names groups whose rows weigh a fixed amount each (an average row
        weighs 1) instead of being balanced: a handful of one-sided rows cannot tilt the
        classes then.

        Raises:
            ValueError: mismatched inputs, an unknown label, or a class with fewer rows
                than `folds`.
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold

        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        unknown = set(labels) - set(LABELS)
        if unknown:
            raise ValueError(f"unknown sentiment labels {sorted(unknown)[:3]}: use {LABELS}")
        y = np.array([LABELS.index(label) for label in labels])
        counts = np.bincount(y, minlength=len(LABELS))
        if counts.min() < self.folds:
            raise ValueError(
                f"every label needs at least {self.folds} examples; got "
                + ", ".join(f"{label} {n}" for label, n in zip(LABELS, counts, strict=True))
            )
        groups = ["all"] * len(y) if groups is None else list(groups)
        weights = self._weights(y, groups, fixed_weights or {})
        scores, words = self._vader(texts)
        self._fit_vocabulary(words)
        x = self._tfidf(words)

        # The text model's penalty is chosen by the weighted log loss of its out-of-fold
        # predictions: one large file wants less of it, a small general one more.
        splits = list(StratifiedKFold(self.folds, shuffle=True, random_state=self.seed).split(x, y))
        choices = [self.C] if self.C is not None else list(C_CHOICES)
        predicted = np.zeros((len(choices), len(y), len(LABELS)))
        for train, test in splits:
            fitted = self._fit_text_model(x[train], y[train], weights[train], choices)
            for i, (coef, intercept) in enumerate(fitted):
                predicted[i, test] = _log_softmax(x[test] @ coef + intercept)
        losses = [-np.average(p[np.arange(len(y)), y], weights=weights) for p in predicted]
        best = int(np.argmin(losses))
        self.C_, out_of_fold = choices[best], predicted[best]
        [(coef, intercept)] = self._fit_text_model(x, y, weights, [self.C_])
        stack = LogisticRegression(C=self.stack_C, max_iter=3000)
        stack.fit(np.hstack([out_of_fold, _stack_features(scores)]), y, sample_weight=weights)
        # Only the coefficients are kept: scoring needs no sklearn call.
        self.text_coef_ = np.ascontiguousarray(coef)  # (words, classes)
        self.text_intercept_ = intercept
        self.stack_coef_ = np.ascontiguousarray(stack.coef_.T)
        self.stack_intercept_ = stack.intercept_.copy()
        self.n_train_ = len(y)
        return self

    def _fit_text_model(
        self, x: sparse.csr_matrix, y: np.ndarray, weights: np.ndarray, choices: Sequence[float]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Level 1: one NB-weighted logistic regression per class against the others (NBSVM,
        Wang & Manning 2012), as (words × classes) coefficients and intercepts, for each
        inverse penalty in `choices`.

        Each word's column is scaled by the log ratio of how often it occurs (present or
        not, weighted, smoothed by `NB_ALPHA`) in the class's texts against the others'.
        Rare but telling words then start ahead of common ones, which a plain logistic
        regression learns poorly from a few thousand tweets. The scaling is folded into the
        coefficients, so scoring costs what a plain logistic regression costs. It does not
        depend on the penalty, so each class's scaled matrix serves every choice.
        """
        from sklearn.linear_model import LogisticRegression

        present = x.copy()
        present.data[:] = 1.0
        coefficients = np.zeros((len(choices), x.shape[1], len(LABELS)))
        intercepts = np.zeros((len(choices), len(LABELS)))
        for label in range(len(LABELS)):
            member = y == label
            counts_in = NB_ALPHA + present.T @ np.where(member, weights, 0.0)
            counts_out = NB_ALPHA + present.T @ np.where(member, 0.0, weights)
            ratio = np.log(counts_in / counts_in.sum()) - np.log(counts_out / counts_out.sum())
            scaled = x @ sparse.diags(ratio)
            for i, C in enumerate(choices):
                model = LogisticRegression(C=C, max_iter=3000)
                model.fit(scaled, member, sample_weight=weights)
                coefficients[i, :, label] = model.coef_[0] * ratio
                intercepts[i, label] = model.intercept_[0]
        return list(zip(coefficients, intercepts, strict=True))

    def _weights(self, y: np.ndarray, groups: list[str], fixed: Mapping[str, float]) -> np.ndarray:
        group_array = np.array(groups)
        balanced = ~np.isin(group_array, list(fixed))
        weights = np.ones(len(y))
        names = sorted(set(group_array[balanced]))
        if self.balance and names:
            for name in names:
                rows = group_array == name
                present = np.bincount(y[rows], minlength=len(LABELS))
                per_class = np.divide(
                    1.0, present * np.count_nonzero(present), where=present > 0, out=np.zeros(3)
                )
                weights[rows] = per_class[y[rows]]  # each group sums to 1
            weights[balanced] = weights[balanced] * np.count_nonzero(balanced) / len(names)
        for name, weight in fixed.items():
            weights[group_array == name] = weight
        return weights

    def _fit_vocabulary(self, words: Sequence[list[str]]) -> None:
        """The words seen in at least `min_df` texts, and their idf."""
        document_frequency: Counter[str] = Counter()
        for text_words in words:
            document_frequency.update(set(text_words))
        kept = [word for word, df in document_frequency.items() if df >= self.min_df]
        self.vocabulary_ = {word: i for i, word in enumerate(kept)}
        n = len(words)
        # scikit-learn's smooth idf: ln((1 + n) / (1 + df)) + 1.
        self.idf_ = np.array([math.log((1 + n) / (1 + document_frequency[w])) + 1 for w in kept])

    # -- scoring ---------------------------------------------------------------------------
    @staticmethod
    def _vader(texts: Sequence[str]) -> tuple[np.ndarray, Sequence[list[str]]]:
        """VADER's (neg, neu, pos, compound) of each text as rows, and the words it read."""
        scored = list(map(_shared_vader().scores_and_words, texts))
        if not scored:
            return np.zeros((0, 4)), []
        raw, words = zip(*scored, strict=True)
        return np.array(raw, dtype=np.float64), words

    def _term_counts(self, words: Sequence[list[str]]) -> tuple[np.ndarray, ...]:
        """(row, word, count) of every distinct known word of every text, sorted by row
        then word: the nonzero cells of the batch's count matrix, in CSR order.

        The batch's words are looked up in one pass that runs in C (`map` over the
        vocabulary's `get`) and counted by one sort of (row, word) codes."""
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        flat = list(chain.from_iterable(words))
        ids = np.fromiter(
            map(self.vocabulary_.get, flat, repeat(-1)), dtype=np.int64, count=len(flat)
        )
        rows = np.repeat(np.arange(len(words)), lengths)
        known = ids >= 0
        width = len(self.vocabulary_)
        cells, counts = np.unique(rows[known] * width + ids[known], return_counts=True)
        cell_rows = cells // width
        return cell_rows, cells - cell_rows * width, counts

    def _tfidf_cells(self, words: Sequence[list[str]]) -> tuple[np.ndarray, ...]:
        """(row, word, weight) of the batch's l2-normalized sublinear TF-IDF cells."""
        cell_rows, terms, counts = self._term_counts(words)
        weights = (np.log(counts) + 1.0) * self.idf_[terms]
        norms = np.sqrt(np.bincount(cell_rows, weights=weights * weights, minlength=len(words)))
        return cell_rows, terms, weights / norms[cell_rows]

    def _tfidf(self, words: Sequence[list[str]]) -> sparse.csr_matrix:
        """Sublinear TF-IDF of each text's words, l2-normalized rows (as
        TfidfVectorizer(sublinear_tf=True); tested)."""
        cell_rows, terms, weights = self._tfidf_cells(words)
        starts = np.concatenate([[0], np.cumsum(np.bincount(cell_rows, minlength=len(words)))])
        return sparse.csr_matrix((weights, terms, starts), shape=(len(words), len(self.idf_)))

    def _text_logits(self, words: Sequence[list[str]]) -> np.ndarray:
        """`_tfidf(words) @ text_coef_ + text_intercept_`, summed cell by cell with
        `bincount`: no matrix is built. Per post this costs a fraction of VADER's time."""
        n = len(words)
        cell_rows, terms, weights = self._tfidf_cells(words)
        contributions = self.text_coef_[terms] * weights[:, None]
        sums = [np.bincount(cell_rows, weights=column, minlength=n) for column in contributions.T]
        return np.column_stack(sums) + self.text_intercept_

    def _probabilities(self, scores: np.ndarray, words: list[list[str]]) -> np.ndarray:
        text_log_proba = _log_softmax(self._text_logits(words))
        stacked = np.hstack([text_log_proba, _stack_features(scores)])
        return _softmax(stacked @ self.stack_coef_ + self.stack_intercept_)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(negative), P(neutral), P(positive) of each text, one row per text."""
        if not texts:
            return np.zeros((0, len(LABELS)))
        return self._probabilities(*self._vader(texts))

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The calibrated label of each text."""
        return [LABELS[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def score_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        """VADER's scores untouched, plus the calibrated label and its probability."""
        if not texts:
            return []
        scored = list(map(_shared_vader().scores_and_words, texts))
        raw, words = zip(*scored, strict=True)
        scores = np.array(raw, dtype=np.float64)
        probabilities = self._probabilities(scores, words)
        best = probabilities.argmax(axis=1)
        # The whole batch at once: labels by lookup, probabilities rounded by numpy.
        top = np.round(probabilities[np.arange(len(best)), best], 4).tolist()
        labels = _LABEL_NAMES[best].tolist()
        compounds = scores[:, 3]
        vader_labels = np.where(  # `sentiment_label` of each compound
            compounds >= POSITIVE_THRESHOLD,
            "positive",
            np.where(compounds <= NEGATIVE_THRESHOLD, "negative", "neutral"),
        ).tolist()
        # VADER's own floats, positionally.
        return [
            Sentiment(compound, pos, neu, neg, vader_label, label, p)
            for (neg, neu, pos, compound), vader_label, label, p in zip(
                raw, vader_labels, labels, top, strict=True
            )
        ]

    def describe(self) -> dict[str, Any]:
        """What the manifest and experiment log record of this model."""
        return {
            "kind": self.kind,
            "params": {k: v for k, v in vars(self).items() if not k.endswith("_")},
            "chosen_C": getattr(self, "C_", self.C),
            "features": len(getattr(self, "vocabulary_", ())),
            "train_rows": getattr(self, "n_train_", 0),
        }
