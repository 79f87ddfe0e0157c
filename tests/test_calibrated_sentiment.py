"""The calibrated sentiment label: VADER's scores untouched, a label and probability added,
saved and loaded with hashes, better than VADER on held-out labelled tweets."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score

from app.cli import main
from models.calibrated_sentiment import (
    C_CHOICES,
    FALLBACK_CALIBRATION,
    LABELS,
    StackedSentimentModel,
    VaderFallbackSentimentModel,
)
from models.registry import SENTIMENT_FILE, ArtifactError, ModelBundle, load_bundle, save_bundle
from models.sentiment import VaderSentimentModel
from models.sentiment_training import holdout_split, load_sentiment_files, train_sentiment

# Words VADER has no valence for, each tied to one label in the made-up training set.
DOMAIN = {
    "negative": ["delayed", "cancelled", "stranded", "lost", "overbooked"],
    "neutral": ["schedule", "gate", "terminal", "boarding", "baggage"],
    "positive": ["upgraded", "early", "smooth", "quick", "roomy"],
}
FILLER = ["the", "flight", "my", "today", "again", "at", "bag", "seat", "crew", "trip"]


def made_up_tweets(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Tweets whose label only their domain words give away (VADER scores most 0)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        label = rng.choice(LABELS)
        words = [*rng.sample(FILLER, 4), rng.choice(DOMAIN[label])]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def small_model() -> StackedSentimentModel:
    texts, labels = made_up_tweets(300, seed=1)
    return StackedSentimentModel(folds=3).fit(texts, labels)


def test_learns_labels_vader_cannot_see(small_model):
    texts, labels = made_up_tweets(200, seed=2)
    vader = [s.label for s in VaderSentimentModel().score_batch(texts)]
    predicted = small_model.predict(texts)
    assert f1_score(labels, vader, average="macro") < 0.5  # VADER calls almost all neutral
    assert f1_score(labels, predicted, average="macro") > 0.9


def test_vader_scores_are_untouched_and_probabilities_consistent(small_model):
    texts = ["GREAT flight!!! 😍", "my bag was lost, awful", "gate 5", "Not bad :)", ""]
    vader = VaderSentimentModel().score_batch(texts)
    scored = small_model.score_batch(texts)
    probabilities = small_model.predict_proba(texts)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    for plain, calibrated, row in zip(vader, scored, probabilities, strict=True):
        assert (calibrated.compound, calibrated.pos, calibrated.neu, calibrated.neg) == (
            plain.compound,
            plain.pos,
            plain.neu,
            plain.neg,
        )
        assert calibrated.label == plain.label
        assert calibrated.calibrated_label == LABELS[int(row.argmax())]
        assert calibrated.calibrated_probability == pytest.approx(row.max(), abs=1e-4)
    assert small_model.score_batch([]) == []


def test_tfidf_equals_scikit_learn():
    docs = [["good", "day", "good"], ["bad", "day"], ["day"], ["unseen", "day"], [], ["good"]]
    model = StackedSentimentModel(min_df=1)
    model._fit_vocabulary(docs)
    ours = model._tfidf(docs).toarray()
    reference = TfidfVectorizer(analyzer=list, sublinear_tf=True).fit(docs)
    expected = reference.transform(docs).toarray()
    assert sorted(model.vocabulary_) == sorted(reference.vocabulary_)
    columns = [reference.vocabulary_[word] for word in model.vocabulary_]
    np.testing.assert_allclose(ours, expected[:, columns])
    # Words outside the vocabulary are left out.
    assert model._tfidf([["never", "seen", "good"]]).nnz == 1


def test_a_repeated_word_does_not_outweigh_the_post(small_model):
    """Sublinear counts and l2-normalized rows: to the text model, a post that repeats one
    word a thousand times is the word alone, and a repeated word in a post weighs less
    than the same number of different words."""
    for word in ("delayed", "gate", "smooth"):
        once, spammed = small_model._text_logits([[word], [word] * 1000])
        np.testing.assert_allclose(spammed, once)
    x = small_model._tfidf([["delayed", "delayed", "delayed", "gate"]]).toarray()[0]
    delayed, gate = small_model.vocabulary_["delayed"], small_model.vocabulary_["gate"]
    ratio = (1 + np.log(3)) * small_model.idf_[delayed] / small_model.idf_[gate]
    assert x[delayed] / x[gate] == pytest.approx(ratio)


def test_text_logits_equal_the_tfidf_matrix_product(small_model):
    """Scoring sums each row's coefficients directly; it must give the matrix product."""
    texts = ["GREAT flight!!! 😍", "my bag was lost, awful", "gate 5", "", "lost lost bag bag"]
    _, words = small_model._vader(texts)
    expected = small_model._tfidf(words) @ small_model.text_coef_ + small_model.text_intercept_
    np.testing.assert_allclose(small_model._text_logits(words), expected, atol=1e-12)
    assert small_model._text_logits([]).shape == (0, len(LABELS))


def test_fit_refuses_unknown_labels_and_too_few_examples():
    with pytest.raises(ValueError, match="unknown sentiment labels"):
        StackedSentimentModel().fit(["a", "b"], ["happy", "negative"])
    texts, labels = made_up_tweets(30, seed=3)
    with pytest.raises(ValueError, match="at least"):
        StackedSentimentModel(folds=5).fit(texts[:6], labels[:6])


def test_the_text_models_penalty_is_chosen_out_of_fold_unless_given(small_model):
    assert small_model.C_ in C_CHOICES
    assert small_model.describe()["chosen_C"] == small_model.C_
    texts, labels = made_up_tweets(300, seed=1)
    fixed = StackedSentimentModel(C=0.05, folds=3).fit(texts, labels)
    assert fixed.C_ == 0.05 and fixed.describe()["params"]["C"] == 0.05
    # Out of fold, the chosen penalty predicts at least as well as one it was not offered.
    chosen = StackedSentimentModel(C=small_model.C_, folds=3).fit(texts, labels)
    held_texts, held_labels = made_up_tweets(200, seed=9)
    assert f1_score(held_labels, chosen.predict(held_texts), average="macro") >= f1_score(
        held_labels, fixed.predict(held_texts), average="macro"
    )


def test_fallback_is_vaders_label_with_the_measured_probability():
    texts = ["I love it", "gate 5", "this is terrible, I hate it", "ok"]
    scored = VaderFallbackSentimentModel().score_batch(texts)
    for sentiment in scored:
        assert sentiment.calibrated_label == sentiment.label
        _edge, probability = max(
            (row for row in FALLBACK_CALIBRATION if row[0] <= abs(sentiment.compound)),
            key=lambda row: row[0],
        )
        assert sentiment.calibrated_probability == probability
    assert np.allclose(VaderFallbackSentimentModel().predict_proba(texts).sum(axis=1), 1.0)


def test_saved_with_its_hash_and_loaded_back(small_model, bundle, tmp_path):
    texts, _ = made_up_tweets(20, seed=4)
    saved = ModelBundle(bundle.clusterer, bundle.engagement, sentiment=small_model)
    folder = save_bundle(saved, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["files"][SENTIMENT_FILE]) == 64
    loaded = load_bundle(tmp_path, saved.version)
    assert isinstance(loaded.sentiment, StackedSentimentModel)
    assert loaded.pipeline().sentiment.score_batch(texts) == small_model.score_batch(texts)

    (folder / SENTIMENT_FILE).write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        load_bundle(tmp_path, saved.version)


def test_a_version_without_a_sentiment_file_scores_with_the_fallback(bundle, tmp_path):
    save_bundle(ModelBundle(bundle.clusterer, bundle.engagement), tmp_path)
    loaded = load_bundle(tmp_path)
    assert loaded.sentiment is None
    [sentiment] = loaded.pipeline().sentiment.score_batch(["what a lovely day"])
    assert sentiment.calibrated_label == sentiment.label == "positive"


def test_sentiment_files_load_dedupe_and_split(tmp_path):
    texts, labels = made_up_tweets(120, seed=5)
    csv_path = tmp_path / "airline.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tweet_id", "airline_sentiment", "text"])
        for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
            writer.writerow([i, label.capitalize(), text])
        writer.writerow([0, "negative", "a repeated tweet id"])
    jsonl = tmp_path / "general.jsonl"
    jsonl.write_text(
        "".join(
            json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels, strict=True)
        )
    )
    data = load_sentiment_files([csv_path, jsonl])
    assert len(data.texts) == 240
    assert data.description["files"][0]["skipped"] == 1
    assert data.description["files"][0]["label_col"] == "airline_sentiment"
    held = holdout_split(data.labels, data.groups, 0.2, seed=0)
    for group in ("airline.csv", "general.jsonl"):
        rows = [i for i, g in enumerate(data.groups) if g == group]
        assert sum(held[i] for i in rows) == 24


def test_train_sentiment_reports_vader_and_the_model_on_held_out_rows(tmp_path):
    texts, labels = made_up_tweets(300, seed=6)
    path = tmp_path / "labelled.jsonl"
    path.write_text(
        "".join(
            json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels, strict=True)
        )
    )
    model, metrics = train_sentiment(load_sentiment_files([path]), params={"folds": 3})
    scores = metrics["labelled.jsonl"]
    assert scores["test_rows"] == 60 and scores["train_rows"] == 240
    assert scores["model"]["macro_f1"] > scores["vader"]["macro_f1"] + 0.3
    assert {"log_loss", "brier", "ece"} <= set(scores["model"])
    assert model.n_train_ == 300


def test_evaluate_sentiment_reports_vader_and_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIALPULSE_MODEL_DIR", str(tmp_path / "no-models"))
    texts, labels = made_up_tweets(90, seed=7)
    path = tmp_path / "labelled.jsonl"
    path.write_text(
        "".join(
            json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels, strict=True)
        )
    )
    args = ["evaluate", "sentiment", "--file", str(path), "--label-col", "label", "--json"]
    result = CliRunner().invoke(main, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    old_keys = {"file", "skipped_rows", "n", "accuracy", "macro_f1", "per_class", "confusion"}
    assert old_keys <= set(data)
    model = data["model"]
    assert {"accuracy", "macro_f1", "per_class", "confusion", "log_loss", "ece"} <= set(model)
    assert model["kind"] == "vader-fallback" and model["version"] is None
    assert model["macro_f1"] == pytest.approx(data["macro_f1"])  # the fallback is VADER's label

    result = CliRunner().invoke(main, [*args, "--cv", "3", "--no-progress"])
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)["model"]
    assert model["kind"] == "stacked" and model["cross_validated"] == 3
    assert model["macro_f1"] > data["macro_f1"] + 0.3


# -- on the shared labelled tweets ------------------------------------------------------------
def _tweets(shared: Path) -> tuple[list[str], list[str], list[str]]:
    data = load_sentiment_files(
        [
            shared / "twitter_airline_sentiment" / "Tweets.csv",
            shared / "tweeteval_sentiment_val" / "val.jsonl",
        ]
    )
    return data.texts, data.labels, data.groups


@pytest.mark.data
@pytest.mark.slow
def test_better_than_vader_on_held_out_tweets(shared_data):
    texts, labels, groups = _tweets(shared_data)
    held = holdout_split(labels, groups, 0.2, seed=0)
    train = np.flatnonzero(~held)
    model = StackedSentimentModel().fit(
        [texts[i] for i in train], [labels[i] for i in train], [groups[i] for i in train]
    )
    for group in ("Tweets.csv", "val.jsonl"):
        rows = [i for i in np.flatnonzero(held) if groups[i] == group]
        actual = [labels[i] for i in rows]
        scored = model.score_batch([texts[i] for i in rows])
        vader = f1_score(actual, [s.label for s in scored], average="macro")
        ours = f1_score(actual, [s.calibrated_label for s in scored], average="macro")
        assert ours > vader + 0.03, (group, vader, ours)


def test_train_fits_the_sentiment_model_when_given_labelled_files(tmp_path):
    from models.datasets import synthetic_dataset
    from models.experiments import ExperimentLog
    from models.sentiment_training import SentimentData
    from models.training import TrainingOptions, save_result, train

    texts, labels = made_up_tweets(200, seed=8)
    data = SentimentData(texts, labels, ["made-up.jsonl"] * 200, {"files": [], "rows": 200})
    options = TrainingOptions(search=False, n_clusters=4, author_window=0)
    stages: list[str] = []
    result = train(synthetic_dataset(600, seed=3), options, stages.append, sentiment_data=data)
    assert "sentiment model" in stages
    assert isinstance(result.bundle.sentiment, StackedSentimentModel)
    assert result.params["sentiment"]["kind"] == "stacked"
    holdout = result.metrics["sentiment_holdout"]["made-up.jsonl"]
    assert holdout["model"]["macro_f1"] > holdout["vader"]["macro_f1"]
    save_result(result, tmp_path)
    [run] = ExperimentLog(tmp_path).runs()
    assert run["sentiment"]["kind"] == "stacked"
    assert run["sentiment"]["holdout"]["made-up.jsonl"]["rows"] == holdout["test_rows"]

    plain = train(synthetic_dataset(600, seed=3), options)
    assert isinstance(plain.bundle.sentiment, VaderFallbackSentimentModel)
    assert plain.params["sentiment"]["kind"] == "vader-fallback"
    assert "sentiment_holdout" not in plain.metrics
