"""Labelled sentiment files in, the calibrated sentiment model out, measured on held-out rows.

Each file is a group: its rows are split 80/20, stratified by label (`seed`); the model
learns from the 80% of every file and is measured on each file's 20% next to plain VADER,
then refit on every row for the saved version. Nothing it is measured on was learned from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.calibrated_sentiment import LABELS, StackedSentimentModel
from models.corrections import CORRECTION_WEIGHT, CORRECTIONS_GROUP
from models.datasets import TEST_FRACTION, DatasetError
from models.registry import sha256_file

log = logging.getLogger(__name__)

# Tried in this order when no label column is named: TweetEval's, then the airline file's.
LABEL_COLUMNS = ("label", "sentiment", "airline_sentiment")
ID_COLUMNS = ("tweet_id", "id")
CORRECTION_WEIGHTS = {CORRECTIONS_GROUP: CORRECTION_WEIGHT}


@dataclass
class SentimentData:
    """Labelled texts, the file (group) each came from, and a description for the manifest."""

    texts: list[str]
    labels: list[str]
    groups: list[str]
    description: dict[str, Any] = field(default_factory=dict)


def load_sentiment_files(
    paths: list[str | Path],
    label_col: str | None = None,
    text_col: str = "text",
    encoding: str = "utf-8",
) -> SentimentData:
    """Texts and negative/neutral/positive labels from CSV/TSV/JSONL files.

    Rows without text or with another label are skipped and counted; a repeated tweet id
    (`tweet_id` or `id` column) is skipped as a duplicate.

    Raises:
        DatasetError: a missing file or column, a wrong encoding, or no usable rows.
    """
    from models.evaluation import normalize_sentiment_label
    from streaming.sources import read_rows

    data = SentimentData([], [], [])
    files = []
    for raw_path in paths:
        path = Path(raw_path)
        if not path.is_file():
            raise DatasetError(f"no such file: {path}")
        try:
            rows = [row for _, row in read_rows(path, encoding) if isinstance(row, dict)]
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path} is not valid {encoding} (byte {exc.start})") from exc
        except ValueError as exc:
            raise DatasetError(str(exc)) from exc
        columns = {key for row in rows[:50] for key in row}
        column = label_col or next((c for c in LABEL_COLUMNS if c in columns), None)
        if column is None or column not in columns or text_col not in columns:
            raise DatasetError(
                f"{path.name} needs a {text_col!r} column and a label column "
                f"({label_col or ' or '.join(LABEL_COLUMNS)}); it has: {', '.join(sorted(columns))}"
            )
        id_col = next((c for c in ID_COLUMNS if c in columns), None)
        seen: set[str] = set()
        used = skipped = 0
        for row in rows:
            text = row.get(text_col)
            try:
                label = normalize_sentiment_label(row.get(column))
            except ValueError:
                label = None
            key = str(row.get(id_col)) if id_col else None
            if not isinstance(text, str) or not text.strip() or label is None or key in seen:
                skipped += 1
                continue
            if key is not None:
                seen.add(key)
            data.texts.append(text)
            data.labels.append(label)
            data.groups.append(path.name)
            used += 1
        files.append(
            {
                "path": str(path.resolve()),
                "sha256": sha256_file(path),
                "label_col": column,
                "rows": used,
                "skipped": skipped,
            }
        )
    if len(data.texts) < 50:
        raise DatasetError(f"only {len(data.texts)} labelled texts; training needs at least 50")
    data.description = {"files": files, "rows": len(data.texts)}
    return data


def holdout_split(
    labels: list[str], groups: list[str], test_fraction: float = TEST_FRACTION, seed: int = 0
) -> np.ndarray:
    """A boolean mask of the held-out rows: `test_fraction` of each group, stratified."""
    from sklearn.model_selection import train_test_split

    held = np.zeros(len(labels), dtype=bool)
    group_array = np.array(groups)
    for group in dict.fromkeys(groups):
        rows = np.flatnonzero(group_array == group)
        strata = [labels[i] for i in rows]
        _, test = train_test_split(
            rows, test_size=test_fraction, random_state=seed, stratify=strata
        )
        held[test] = True
    return held


def train_sentiment(
    data: SentimentData,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    corrections: tuple[list[str], list[str]] | None = None,
) -> tuple[StackedSentimentModel, dict[str, Any]]:
    """The model refit on every row, and VADER's and the model's scores on held-out rows.

    `corrections` (texts and labels people corrected, of their train side) are learned from
    by both models, as a group of their own; their test side is measured elsewhere.

    Returns:
        (model, metrics): `metrics[file name]` holds "vader" and "model" reports (macro-F1,
        accuracy, per class; the model's also log loss, Brier score and ECE) and the rows.
    """
    from models.evaluation import evaluate_calibrated_sentiment, evaluate_sentiment_labels

    texts, labels, groups = data.texts, data.labels, data.groups
    extra_texts, extra_labels = corrections or ([], [])
    extra_groups = [CORRECTIONS_GROUP] * len(extra_texts)
    held = holdout_split(labels, groups, test_fraction, seed)
    train_rows = np.flatnonzero(~held)
    held_model = StackedSentimentModel(seed=seed, **(params or {})).fit(
        [texts[i] for i in train_rows] + extra_texts,
        [labels[i] for i in train_rows] + extra_labels,
        [groups[i] for i in train_rows] + extra_groups,
        fixed_weights=CORRECTION_WEIGHTS,
    )
    metrics: dict[str, Any] = {}
    for group in dict.fromkeys(groups):
        rows = [i for i in np.flatnonzero(held) if groups[i] == group]
        group_texts, group_labels = [texts[i] for i in rows], [labels[i] for i in rows]
        vader = evaluate_sentiment_labels(group_texts, group_labels).to_dict()
        model = evaluate_calibrated_sentiment(group_texts, group_labels, held_model).to_dict()
        metrics[group] = {
            "test_rows": len(rows),
            "train_rows": sum(1 for i in train_rows if groups[i] == group),
            "vader": _summary(vader),
            "model": _summary(model),
        }
        log.info(
            "sentiment on %s held out: macro-F1 VADER %.3f, model %.3f",
            group,
            vader["macro_f1"],
            model["macro_f1"],
        )
    final = StackedSentimentModel(seed=seed, **(params or {})).fit(
        texts + extra_texts, labels + extra_labels, groups + extra_groups, CORRECTION_WEIGHTS
    )
    return final, metrics


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("macro_f1", "accuracy", "log_loss", "brier", "ece", "per_class", "confusion")
    return {k: report[k] for k in keys if k in report}


def cross_validate_sentiment(
    texts: list[str],
    labels: list[str],
    folds: int = 5,
    extra: SentimentData | None = None,
    seed: int = 0,
    params: dict[str, Any] | None = None,
):
    """The calibrated model's report on `texts`, each fold predicted by a model that learned
    from the other folds (and every row of `extra`), never from the fold itself.

    Returns:
        a `CalibratedSentimentReport` of the out-of-fold labels and probabilities.
    """
    from sklearn.model_selection import StratifiedKFold

    from models.evaluation import (
        CalibratedSentimentReport,
        calibration_scores,
        normalize_sentiment_label,
        sentiment_label_report,
    )

    actual = [normalize_sentiment_label(label) for label in labels]
    probabilities = np.zeros((len(texts), 3))
    extra_texts = extra.texts if extra else []
    extra_labels = extra.labels if extra else []
    extra_groups = extra.groups if extra else []
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(texts, actual):
        model = StackedSentimentModel(seed=seed, **(params or {})).fit(
            extra_texts + [texts[i] for i in train],
            extra_labels + [actual[i] for i in train],
            extra_groups + ["evaluated file"] * len(train),
        )
        probabilities[test] = model.predict_proba([texts[i] for i in test])
    predicted = [LABELS[i] for i in probabilities.argmax(axis=1)]
    return CalibratedSentimentReport(
        labels=sentiment_label_report(actual, predicted),
        kind=StackedSentimentModel.kind,
        **calibration_scores(actual, probabilities),
    )
