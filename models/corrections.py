"""Corrections people make to a post's scores (its sentiment label or its topic), as data.

A correction is a labelled example. Every post falls for good on one side of a fixed split
(a digest of its id): the corrections of the train side join `socialpulse train`'s data,
those of the test side are never learned from, so the figures `evaluate corrections` gives
on them stay held-out figures however often the models are trained again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.calibrated_sentiment import LABELS

FIELDS = ("sentiment", "topic")
MAX_TOPIC_CHARS = 60
TEST_SHARE = 0.2  # of posts whose corrections are kept for measuring only
CORRECTIONS_GROUP = "user corrections"  # their group among the sentiment model's data
# A correction is a label for this very feed, given on purpose: it weighs as much as five
# average rows of a labelled file. Much more, and a few one-sided corrections (people
# mostly fix what they disagree with) would tilt the classes.
CORRECTION_WEIGHT = 5.0


class CorrectionError(ValueError):
    """A correction that cannot be stored: what is wrong with it."""


def clean_value(field: str, value: str, allow_empty: bool = False) -> str:
    """The stored form of a corrected value: a sentiment label, or a topic's name (printable,
    whitespace collapsed, at most `MAX_TOPIC_CHARS` characters); with `allow_empty`, an
    empty value is "" (taking a correction back).

    Raises:
        CorrectionError: an unknown field, label or an unusable name.
    """
    if field not in FIELDS:
        raise CorrectionError(f"a correction is of {' or '.join(FIELDS)}, not {field[:40]!r}")
    if allow_empty and not value.strip():
        return ""
    if field == "sentiment":
        label = value.strip().lower()
        if label not in LABELS:
            raise CorrectionError(f"a sentiment label is one of {', '.join(LABELS)}")
        return label
    name = " ".join(value.split())
    if not name:
        raise CorrectionError("give the topic a name")
    if len(name) > MAX_TOPIC_CHARS:
        raise CorrectionError(f"a topic name has at most {MAX_TOPIC_CHARS} characters")
    if not name.isprintable():
        raise CorrectionError("a topic name has only printable characters")
    return name


def is_test_post(post_id: str) -> bool:
    """Whether `post_id`'s corrections are kept for measuring (the same answer everywhere)."""
    digest = hashlib.sha256(post_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") < TEST_SHARE * 2**64


@dataclass(frozen=True)
class Correction:
    """One post's corrected sentiment label or topic; a later correction replaces it.

    Attributes:
        text: the post's text, kept so the example outlives the archived post.
        document: what the topic clusterer reads of the post (text and hashtags).
        model_value: what the models said when it was corrected.
        revisions: how many times the field was corrected (the last one is kept).
    """

    post_id: str
    field: str
    value: str
    text: str
    document: str
    model_value: str
    corrected_by: str
    corrected_at: float
    revisions: int = 1

    @property
    def held_out(self) -> bool:
        return is_test_post(self.post_id)


@dataclass(frozen=True)
class CorrectionSet:
    """The corrections `train` and `evaluate` read, split into train and test sides."""

    corrections: tuple[Correction, ...]

    def part(self, field: str, held_out: bool) -> list[Correction]:
        return [c for c in self.corrections if c.field == field and c.held_out == held_out]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per field, the corrections learned from ("train") and kept for measuring ("test")."""
        return {
            field: {"train": len(self.part(field, False)), "test": len(self.part(field, True))}
            for field in FIELDS
        }

    def sentiment_examples(self) -> tuple[list[str], list[str]]:
        """Texts and labels of the sentiment corrections to learn from."""
        train = self.part("sentiment", False)
        return [c.text for c in train], [c.value for c in train]

    def topic_groups(self) -> dict[str, list[str]]:
        """Documents per corrected topic name to learn from (names compared ignoring case)."""
        groups: dict[str, list[str]] = {}
        names: dict[str, str] = {}
        for c in self.part("topic", False):
            name = names.setdefault(c.value.casefold(), c.value)
            groups.setdefault(name, []).append(c.document)
        return groups


def evaluate_corrections(corrections: CorrectionSet, sentiment: Any, clusterer: Any) -> dict:
    """The models against the held-out corrections: VADER's and the calibrated label on the
    sentiment ones; on the topic ones, how well the clusters agree with the names people
    gave (NMI, adjusted Rand index, and the share of same-name pairs put in one cluster).

    Args:
        sentiment: the calibrated sentiment model (`score_batch`, `predict_proba`).
        clusterer: the topic clusterer (`predict`).
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from models.evaluation import (
        evaluate_calibrated_sentiment,
        evaluate_sentiment_labels,
    )

    report: dict[str, Any] = {"counts": corrections.counts()}
    held = corrections.part("sentiment", True)
    if held:
        texts, labels = [c.text for c in held], [c.value for c in held]
        report["sentiment"] = {
            "rows": len(held),
            "vader": evaluate_sentiment_labels(texts, labels).to_dict(),
            "model": evaluate_calibrated_sentiment(texts, labels, sentiment).to_dict(),
        }
    held = corrections.part("topic", True)
    if held:
        names = [c.value.casefold() for c in held]
        predicted = [int(i) for i in clusterer.predict([c.document for c in held])]
        report["topic"] = {
            "rows": len(held),
            "names": len(set(names)),
            "clusters": len(set(predicted)),
            "nmi": float(normalized_mutual_info_score(names, predicted)),
            "ari": float(adjusted_rand_score(names, predicted)),
            "pairs_together": _pairs_together(names, predicted),
        }
    return report


def _pairs_together(names: Sequence[str], clusters: Sequence[int]) -> float | None:
    """Of the pairs of posts people gave one topic name, the share in one cluster."""
    name_codes = np.unique(np.asarray(names), return_inverse=True)[1]
    cluster_codes = np.unique(np.asarray(clusters), return_inverse=True)[1]
    joint = np.zeros((name_codes.max() + 1, cluster_codes.max() + 1))
    np.add.at(joint, (name_codes, cluster_codes), 1)
    per_name = joint.sum(axis=1)
    pairs = float((per_name * (per_name - 1)).sum())
    return float((joint * (joint - 1)).sum() / pairs) if pairs else None
