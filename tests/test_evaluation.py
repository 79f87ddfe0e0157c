"""Evaluation of the live clustering and sentiment paths: metrics, the streaming run, the CLI."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from app.cli import main
from models.clustering import StreamingTopicClusterer, topic_document
from models.evaluation import (
    SENTIMENT_LABELS,
    choose_k,
    clustering_scores,
    elbow_k,
    evaluate_sentiment_labels,
    evaluate_sentiment_ratings,
    evaluate_streaming_clustering,
    score_micro_batch,
    silhouette,
    topic_documents,
)
from models.pipeline import ScoringPipeline
from streaming.records import parse_post
from streaming.synthetic import TOPICS, SyntheticPostGenerator, strip_private
from tests.test_training import write_csv


def synthetic(n: int, seed: int = 3) -> tuple[list[str], list[str]]:
    """Texts of generated posts and the topic the generator wrote each one about."""
    generator = SyntheticPostGenerator(seed=seed)
    raws = [generator.next_post() for _ in range(n)]
    return [r["text"] for r in raws], [r["_topic"] for r in raws]


def vader_label(compound: float) -> str:
    """VADER's published rule, written out here so the test does not trust our code."""
    return "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"


# -- clustering metrics --------------------------------------------------------------------------
def test_a_perfect_clustering_scores_one():
    truth = ["a", "a", "b", "b", "c", "c"]
    scores = clustering_scores(truth, [0, 0, 1, 1, 2, 2])
    assert scores.nmi == pytest.approx(1.0)
    assert scores.ari == pytest.approx(1.0)
    assert scores.v_measure == pytest.approx(1.0)
    assert scores.n_clusters == 3


def test_renaming_the_clusters_changes_nothing():
    truth = ["a", "a", "b", "b", "c", "c"]
    scores = clustering_scores(truth, [7, 7, 0, 0, 3, 3])
    assert (scores.nmi, scores.ari, scores.v_measure) == pytest.approx((1.0, 1.0, 1.0))


def test_everything_in_one_cluster_scores_zero():
    truth = ["a", "a", "b", "b", "c", "c"]
    scores = clustering_scores(truth, [0] * 6, features=np.eye(6))
    assert scores.nmi == pytest.approx(0.0)
    assert scores.ari == pytest.approx(0.0)
    assert scores.v_measure == pytest.approx(0.0)
    assert scores.silhouette is None  # undefined for a single cluster


def test_a_partly_wrong_clustering_scores_between():
    scores = clustering_scores(["a", "a", "a", "b", "b", "b"], [0, 0, 1, 1, 1, 1])
    assert 0.0 < scores.nmi < 1.0
    assert 0.0 < scores.ari < 1.0


def test_silhouette_is_cosine_and_high_for_separated_groups():
    features = np.array([[1.0, 0.0], [5.0, 0.1], [0.0, 1.0], [0.1, 7.0]])
    # Far apart in Euclidean terms but the same direction: cosine sees two tight groups.
    assert silhouette(features, [0, 0, 1, 1]) > 0.9
    assert silhouette(features, [0, 1, 0, 1]) < 0


def test_silhouette_samples_large_inputs():
    rng = np.random.default_rng(0)
    features = np.vstack([rng.normal(10, 1, (2500, 2)), rng.normal(-10, 1, (2500, 2))])
    labels = [0] * 2500 + [1] * 2500
    assert silhouette(features, labels, sample_size=300) > 0.9


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="3 labels but 2"):
        clustering_scores(["a", "b", "c"], [0, 1])


# -- choosing k ----------------------------------------------------------------------------------
def test_elbow_is_the_point_farthest_from_the_chord():
    assert elbow_k([1, 2, 3, 4, 5, 6, 7, 8], [100, 50, 20, 18, 16, 14, 12, 10]) == 3
    assert elbow_k([10, 20, 30], [5.0, 5.0, 5.0]) == 10  # a flat curve has no knee


def test_choose_k_reports_every_candidate_and_both_picks():
    texts, _ = synthetic(800)
    docs, _ = topic_documents(texts)
    choice = choose_k(docs, [14, 2, 6, 10], n_init=2)
    assert [s.k for s in choice.scores] == [2, 6, 10, 14]
    inertias = [s.inertia for s in choice.scores]
    assert inertias == sorted(inertias, reverse=True)  # more clusters, closer centres
    assert choice.elbow_k in (6, 10)
    assert choice.silhouette_k == max(choice.scores, key=lambda s: s.silhouette).k
    # The generator writes about ten topics: k = 10 separates them better than 2 does.
    by_k = {s.k: s.silhouette for s in choice.scores}
    assert by_k[10] > by_k[2]
    with pytest.raises(ValueError, match="at least three"):
        choose_k(docs, [2, 4])
    with pytest.raises(ValueError, match="between 2 and"):
        choose_k(docs[:20], [2, 10, 20])


# -- streaming clustering ------------------------------------------------------------------------
def test_parse_post_keeps_text_for_topic_documents():
    """Evaluation texts become posts the way live input does (hashtags found in the text)."""
    post = parse_post(strip_private(SyntheticPostGenerator(seed=1).next_post()))
    docs, kept = topic_documents([post.text])
    assert kept == [0]
    assert docs[0] == topic_document(post)


def test_evaluation_streams_exactly_as_the_pipeline(bundle, sample_posts):
    """The same posts through ScoringPipeline and through the evaluation: same ids, same model."""
    live = ScoringPipeline(copy.deepcopy(bundle.clusterer), bundle.engagement, bundle.version)
    evaluated = copy.deepcopy(bundle.clusterer)
    evaluated.learn_batch_size = live.clusterer.learn_batch_size = 50  # make learning show
    for start in range(0, len(sample_posts), 40):
        posts = sample_posts[start : start + 40]
        scored = live.score_batch(posts, learn=True)
        ids = score_micro_batch(evaluated, [topic_document(p) for p in posts])
        assert ids.tolist() == [s.cluster.id for s in scored]
    assert np.array_equal(
        evaluated.state_.kmeans.cluster_centers_, live.clusterer.state_.kmeans.cluster_centers_
    )
    assert list(evaluated.window_) == list(live.clusterer.window_)


def test_learning_after_a_background_refit_with_a_new_vocabulary():
    """A refit that lands between transform and learn must not pool features of two vocabularies."""
    texts, _ = synthetic(1200, seed=21)
    docs = [f"{d} word{i % 150}" for i, d in enumerate(topic_documents(texts)[0])]
    clusterer = StreamingTopicClusterer(
        n_clusters=6, window_size=2000, refit_every=0, learn_batch_size=100, warmup_growth=0
    ).fit(docs[:300])
    clusterer.partial_fit(docs[300:700])
    clusterer.start_refit()
    clusterer.wait_for_refit()  # done, not yet in use: it takes over at the next learn
    old = clusterer.state_
    batch = docs[700:760]
    ids = score_micro_batch(clusterer, batch)
    assert clusterer.state_ is not old
    assert clusterer.state_.fast.n_features != old.fast.n_features
    assert len(ids) == len(batch)
    for start in range(760, 1200, 60):
        score_micro_batch(clusterer, docs[start : start + 60])
    clusterer.flush()
    assert clusterer.pending_ == []


def test_a_young_clusterer_refits_as_its_window_fills():
    texts, _ = synthetic(1500, seed=5)
    docs, _ = topic_documents(texts)
    clusterer = StreamingTopicClusterer(n_clusters=10, window_size=5000).fit(docs[:200])
    for start in range(200, 1500, 100):
        score_micro_batch(clusterer, docs[start : start + 100])
        clusterer.wait_for_refit()
    clusterer.wait_for_refit(swap=True)
    # A refit each time the window has grown by a fifth; each takes over at the next learn.
    # 200 → 300 → 400 → 500 → 600 → 800 → 1000 → 1200 → 1500
    assert clusterer.n_refits_ == 8
    assert clusterer.state_.n_docs == 1500
    for label in clusterer.labels_:
        assert label.startswith("#"), label  # topics are still named by their hashtags

    # Once the window is full, only the periodic refits remain.
    full = StreamingTopicClusterer(n_clusters=10, window_size=300, refit_every=0).fit(docs[:300])
    for start in range(300, 1500, 100):
        score_micro_batch(full, docs[start : start + 100])
        full.wait_for_refit()
    assert full.n_refits_ == 0


def test_streaming_clusters_recover_the_synthetic_topics():
    texts, topics = synthetic(1500)
    report = evaluate_streaming_clustering(texts, topics, k=len(TOPICS), batch_size=200)
    assert report.streaming.n_docs == 1500
    assert report.streaming.nmi > 0.7
    assert report.streaming.ari > 0.4
    assert report.streaming.silhouette is not None
    assert report.on_arrival.nmi > 0.5
    assert report.refits >= 2
    assert report.batch_kmeans is not None and report.naive_minibatch is not None
    assert all(label.startswith("#") for label in report.cluster_labels)


def test_streaming_evaluation_leaves_out_what_the_live_path_rejects():
    texts, topics = synthetic(300)
    texts[5] = "   "
    texts[9] = "x" * 6000  # longer than a post may be
    report = evaluate_streaming_clustering(texts, topics, k=4, batch_size=100, baselines=False)
    assert report.skipped == 2
    assert report.streaming.n_docs == 298
    assert report.batch_kmeans is None
    with pytest.raises(ValueError, match="too few"):
        evaluate_streaming_clustering(texts[:3], topics[:3], k=4)


# -- sentiment -----------------------------------------------------------------------------------
HAND_MADE = [
    ("I love this airline, the crew was great!", "Positive"),  # VADER: positive
    ("Worst flight ever. I hate this airline.", "NEGATIVE"),  # VADER: negative
    ("The flight leaves at 5pm from gate 12.", "neutral"),  # VADER: neutral
    ("Great, another delay. I just love waiting.", "negative"),  # sarcasm: VADER says positive
]


def test_sentiment_confusion_on_hand_made_posts():
    report = evaluate_sentiment_labels([t for t, _ in HAND_MADE], [lab for _, lab in HAND_MADE])
    assert report.labels == SENTIMENT_LABELS == ("negative", "neutral", "positive")
    # Rows: actual negative, neutral, positive; columns: predicted in the same order.
    assert report.confusion == [[1, 0, 1], [0, 1, 0], [0, 0, 1]]
    assert report.accuracy == pytest.approx(0.75)
    assert report.per_class["negative"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert report.per_class["positive"]["precision"] == pytest.approx(0.5)
    assert report.macro_f1 == pytest.approx((2 / 3 + 1.0 + 2 / 3) / 3)
    assert report.predicted == ("positive", "negative", "neutral", "positive")


def test_sentiment_labels_are_raw_vaders_on_the_untouched_text():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    texts = ["GREAT service!!! 😍", "great service", "Terrible :(", "not bad at all", "ok"]
    # Capitals, "!!!" and emoji change VADER's score: nothing may strip them first.
    analyzer = SentimentIntensityAnalyzer()
    raw = [vader_label(analyzer.polarity_scores(t)["compound"]) for t in texts]
    report = evaluate_sentiment_labels(texts, ["positive"] * len(texts))
    assert list(report.predicted) == raw
    assert (
        analyzer.polarity_scores(texts[0])["compound"]
        > analyzer.polarity_scores(texts[1])["compound"]
    )


def test_sentiment_against_ratings():
    texts = ["Terrible, I hate it", "Bad", "It is a phone", "Good", "Great, I love it!!!"]
    report = evaluate_sentiment_ratings(texts, [1, 2, 3, 4, 5])
    assert report.n == 5
    assert report.pearson > 0.9
    assert report.spearman == pytest.approx(1.0)
    with pytest.raises(ValueError, match="ratings are the same"):
        evaluate_sentiment_ratings(texts, [3] * 5)


def test_unknown_sentiment_labels_are_refused():
    with pytest.raises(ValueError, match="'mixed'"):
        evaluate_sentiment_labels(["fine"], ["mixed"])


# -- the command ---------------------------------------------------------------------------------
def run(*args: str):
    result = CliRunner().invoke(main, ["evaluate", *args, "--no-progress"])
    return result


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def topics_file(tmp_path_factory) -> Path:
    texts, topics = synthetic(600, seed=9)
    path = tmp_path_factory.mktemp("eval") / "posts.jsonl"
    return write_jsonl(path, [{"text": t, "topic": c} for t, c in zip(texts, topics, strict=True)])


@pytest.fixture
def sentiment_file(tmp_path) -> Path:
    rows = [{"id": str(i), "text": t, "label": lab} for i, (t, lab) in enumerate(HAND_MADE)]
    return write_csv(tmp_path / "labelled.csv", rows)


def test_every_evaluate_command_has_help():
    for args in ([], ["clustering"], ["choose-k"], ["sentiment"]):
        result = CliRunner().invoke(main, ["evaluate", *args, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output


def test_cli_clustering_json(topics_file):
    result = run(
        "clustering", "--file", str(topics_file), "--k", "10", "--label-col", "topic",
        "--batch-size", "150", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["k"] == 10
    for key in ("streaming", "on_arrival", "batch_kmeans", "naive_minibatch"):
        assert set(data[key]) >= {"nmi", "ari", "v_measure", "silhouette"}
    assert data["streaming"]["n_docs"] == 600
    assert data["streaming"]["nmi"] > 0.5
    assert len(data["cluster_labels"]) == 10


def test_cli_clustering_auto_json_and_table(topics_file):
    result = run(
        "clustering", "--file", str(topics_file), "--k", "auto", "--label-col", "topic",
        "--batch-size", "150", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["k"] == "auto"
    for key in ("streaming", "on_arrival", "batch_kmeans", "naive_minibatch"):
        assert set(data[key]) >= {"nmi", "ari", "v_measure", "silhouette"}
    assert data["true_k"] == 10
    assert data["batch_kmeans"]["n_clusters"] == 10  # the baselines get the true number
    assert data["on_arrival"]["nmi"] > 0.5
    assert len(data["cluster_labels"]) == data["live_clusters"] >= 5
    for key in ("warm_start_topics", "births", "retirements", "merges"):
        assert isinstance(data[key], int)
    table = run("clustering", "--file", str(topics_file), "--k", "AUTO", "--label-col", "topic")
    assert table.exit_code == 0, table.output
    assert "live at the end (the labels have 10)" in table.stdout


@pytest.mark.parametrize("k", ["1", "many"])
def test_cli_clustering_refuses_a_bad_k(topics_file, k):
    result = run("clustering", "--file", str(topics_file), "--k", k, "--label-col", "topic")
    assert result.exit_code == 2
    assert "auto" in result.output


def test_cli_clustering_table(topics_file):
    result = run("clustering", "--file", str(topics_file), "--k", "10", "--label-col", "topic")
    assert result.exit_code == 0, result.output
    for row in ("end of stream", "ids on arrival", "batch TF-IDF + KMeans", "MiniBatchKMeans"):
        assert row in result.stdout
    assert "NMI" in result.stdout and "silhouette" in result.stdout


def test_cli_choose_k_json(topics_file):
    result = run(
        "choose-k", "--file", str(topics_file), "--k-min", "4", "--k-max", "12", "--step", "4",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [row["k"] for row in data["scores"]] == [4, 8, 12]
    assert data["elbow_k"] in (4, 8, 12)
    assert data["silhouette_k"] in (4, 8, 12)


def test_cli_sentiment_labels_json_and_table(sentiment_file):
    result = run("sentiment", "--file", str(sentiment_file), "--label-col", "label", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["confusion"] == [[1, 0, 1], [0, 1, 0], [0, 0, 1]]
    assert data["accuracy"] == pytest.approx(0.75)
    table = run("sentiment", "--file", str(sentiment_file), "--label-col", "label")
    assert table.exit_code == 0, table.output
    assert "accuracy 0.750" in table.stdout
    assert "rows: actual, columns: predicted" in table.stdout


def test_cli_sentiment_ratings_from_tsv(tmp_path):
    texts = ["Terrible, I hate it", "Bad", "It is a phone", "Good", "Great, I love it!!!"]
    rows = [{"body": t, "stars": str(i + 1)} for i, t in enumerate(texts)]
    path = write_csv(tmp_path / "reviews.tsv", rows, delimiter="\t")
    result = run(
        "sentiment", "--file", str(path), "--text-col", "body", "--rating-col", "stars", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n"] == 5 and data["spearman"] == pytest.approx(1.0)


def test_cli_names_a_missing_column_and_lists_the_others(sentiment_file, topics_file):
    result = run("sentiment", "--file", str(sentiment_file), "--label-col", "sentiment")
    assert result.exit_code == 2
    assert "'sentiment'" in result.output and "--label-col" in result.output
    assert "id, label, text" in result.output
    result = run("clustering", "--file", str(topics_file), "--k", "5")  # no 'cluster' column
    assert result.exit_code == 2
    assert "column 'cluster'" in result.output
    result = run("choose-k", "--file", str(topics_file), "--text-col", "body")
    assert result.exit_code == 2
    assert "column 'body' (--text-col)" in result.output


def test_cli_refuses_empty_files_bad_k_and_bad_values(tmp_path, topics_file, sentiment_file):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    result = run("clustering", "--file", str(empty), "--k", "5")
    assert result.exit_code == 1
    assert "has no rows" in result.output

    result = run("clustering", "--file", str(topics_file), "--k", "1", "--label-col", "topic")
    assert result.exit_code == 2 and "--k" in result.output
    result = run("clustering", "--file", str(topics_file), "--k", "600", "--label-col", "topic")
    assert result.exit_code == 2 and "needs more than 600 posts" in result.output
    result = run("choose-k", "--file", str(topics_file), "--k-min", "9", "--k-max", "3")
    assert result.exit_code == 2 and "below --k-min" in result.output

    result = run("sentiment", "--file", str(sentiment_file))
    assert result.exit_code == 2 and "exactly one of --label-col or --rating-col" in result.output
    result = run("sentiment", "--file", str(sentiment_file), "--rating-col", "label")
    assert result.exit_code == 1 and "line 2" in result.output and "not a number" in result.output
    mixed = write_csv(tmp_path / "mixed.csv", [{"text": "fine", "label": "mixed"}])
    result = run("sentiment", "--file", str(mixed), "--label-col", "label")
    assert result.exit_code == 1 and "'mixed'" in result.output

    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\xe9 is great,positive\n".encode("latin-1"))
    result = run("sentiment", "--file", str(latin), "--label-col", "label")
    assert result.exit_code == 1 and "--encoding" in result.output
    result = run("sentiment", "--file", str(latin), "--label-col", "label", "--encoding", "latin-1")
    assert result.exit_code == 0, result.output

    odd = tmp_path / "posts.xml"
    odd.write_text("<posts/>", encoding="utf-8")
    result = run("sentiment", "--file", str(odd), "--label-col", "label")
    assert result.exit_code == 2 and "unsupported file type" in result.output


# -- the real data sets (../shared/data) ---------------------------------------------------------
@pytest.mark.data
def test_streaming_clusters_on_real_tweets_match_batch_kmeans(shared_data):
    rows = [
        json.loads(line)
        for line in (shared_data / "gsdmm_tweet" / "Tweet.jsonl").read_text().splitlines()
    ]
    report = evaluate_streaming_clustering(
        [r["text"] for r in rows], [r["cluster"] for r in rows], k=89, batch_size=500
    )
    assert report.streaming.n_docs == 2472
    assert report.streaming.nmi >= 0.78
    assert report.streaming.nmi > report.naive_minibatch.nmi
    assert report.streaming.nmi >= report.batch_kmeans.nmi - 0.01


@pytest.mark.data
def test_airline_sentiment_equals_raw_vader(shared_data):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    path = shared_data / "twitter_airline_sentiment" / "Tweets.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    texts = [r["text"] for r in rows]
    labels = [r["airline_sentiment"] for r in rows]
    report = evaluate_sentiment_labels(texts, labels)
    analyzer = SentimentIntensityAnalyzer()
    raw = [vader_label(analyzer.polarity_scores(t)["compound"]) for t in texts]
    assert list(report.predicted) == raw
    raw_accuracy = np.mean([p == a for p, a in zip(raw, labels, strict=True)])
    assert report.accuracy == pytest.approx(raw_accuracy)
    assert report.accuracy >= 0.48
    assert report.macro_f1 >= 0.45
    assert sum(map(sum, report.confusion)) == report.n == len(rows)
