"""Training: the `train` command end to end, time order, metrics, leakage, the network, 538 data."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import importlib.util
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from app.cli import main
from app.testing import run_config, run_manifest_key
from models import registry
from models.datasets import DatasetError, load_dataset, split_index, synthetic_dataset
from models.engagement import EngagementModel
from models.experiments import ExperimentLog
from models.features import (
    AUTHOR_FEATURES,
    FEATURE_NAMES,
    AuthorPrior,
    author_key,
    posting_time_features,
)
from models.featurize import featurize
from models.metrics import band_metrics, regression_metrics
from models.registry import (
    EVALUATION_FILE,
    MANIFEST,
    NEURAL_FILE,
    REPORT_FILE,
    ArtifactError,
    list_versions,
    load_bundle,
    load_evaluation,
    read_manifest,
)
from models.sentiment import VaderSentimentModel
from models.signing import SIGNATURE_FILE
from models.training import AuthorColumns, TrainingOptions, save_result, train
from streaming.records import parse_post
from streaming.sources import ColumnMapping
from tests.test_engagement import OUTCOME_WORDS, UntouchableCounts

SMALL = ["--posts", "600", "--k", "4", "--cv-splits", "2", "--no-progress"]
METRIC_KEYS = {"mae", "rmse", "r2", "spearman", "band_accuracy", "band_macro_f1"}


@pytest.fixture
def model_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv("SOCIALPULSE_MODEL_DIR", str(root))
    monkeypatch.delenv("SOCIALPULSE_MODEL_VERSION", raising=False)
    return root


def run_cli(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def need_tensorflow() -> None:
    """Skip without TensorFlow, except in CI (which installs it): there it must run."""
    if importlib.util.find_spec("tensorflow") is None:
        if os.environ.get("CI"):
            pytest.fail("TensorFlow is not installed, but CI must run the neural tests")
        pytest.skip("TensorFlow is not installed (make setup-nn)")


def write_csv(path: Path, rows: list[dict], encoding: str = "utf-8", delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def tweet_rows(n: int, seed: int, start: datetime) -> list[dict]:
    """Rows shaped like the FiveThirtyEight files: two accounts, favorites as the outcome."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        user = "alpha" if i % 3 else "beta"
        rt = rng.random() < 0.15
        words = int(rng.integers(3, 25))
        chosen = [f"topic{j}" for j in rng.integers(0, 60, words)]
        text = ("RT @someone: " if rt else "") + " ".join(chosen) + " café"
        level = (9.0 if user == "alpha" else 6.0) + 0.05 * words - (1.5 if rt else 0.0)
        when = start + timedelta(hours=7 * i)
        rows.append(
            {
                "created_at": when.strftime("%m/%d/%y %H:%M"),
                "text": text,
                "user": user,
                "favorites": int(np.expm1(level + rng.normal(0, 0.3))),
                "retweets": int(rng.integers(0, 50)),
            }
        )
    rng.shuffle(rows)  # files are not always in time order
    return rows


# -- the command, end to end ----------------------------------------------------------------------
def test_train_writes_a_version_the_server_loads(model_root, tmp_path):
    result = run_cli("train", *SMALL, "--seed", "5")
    assert result.exit_code == 0, result.output
    versions = list_versions(model_root)
    assert len(versions) == 1
    folder = model_root / versions[0]
    manifest = json.loads((folder / MANIFEST).read_text())

    # The manifest is signed with the run's key ...
    signature = (folder / SIGNATURE_FILE).read_text()
    assert run_manifest_key().verify((folder / MANIFEST).read_bytes(), signature)
    # ... and lists every file of the version with its sha256.
    on_disk = {p.name for p in folder.iterdir()} - {MANIFEST, SIGNATURE_FILE}
    assert set(manifest["files"]) == on_disk
    assert {"clusterer.joblib", "engagement.joblib", EVALUATION_FILE, REPORT_FILE} <= on_disk
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert datetime.fromisoformat(manifest["created_at"]).tzinfo is not None
    assert manifest["data"]["source"] == "synthetic"
    assert manifest["data"]["fingerprint"] == "synthetic:seed=5:posts=600"
    assert manifest["params"]["n_clusters"] == 4
    assert manifest["params"]["engagement"]["n_estimators"] == 30
    assert manifest["params"]["search"]["cv"] == "TimeSeriesSplit(n_splits=2)"
    assert set(manifest["metrics"]["engagement_holdout"]) >= METRIC_KEYS
    assert manifest["libraries"]["scikit-learn"] == registry.library_versions()["scikit-learn"]
    assert str(folder) in result.output and "R²" in result.output
    assert "forest band rates (low / medium / high): predicted" in result.output

    # The run is in the experiment log ...
    runs = ExperimentLog(model_root).runs()
    assert [r["run"] for r in runs] == [folder.name]
    assert runs[0]["data"]["fingerprint"] == "synthetic:seed=5:posts=600"
    assert runs[0]["metrics"]["rf"]["r2"] == manifest["metrics"]["engagement_holdout"]["r2"]

    # ... and the server scores with it.
    from app import create_app
    from app.services import services

    config = run_config(model_root, tmp_path / "instance")  # trusts what `train` signed
    app = create_app(config)
    with app.app_context():
        assert services().pipeline.model_version == folder.name
    page = app.test_client().get("/models")
    assert page.status_code == 200
    assert folder.name in page.get_data(as_text=True)


def test_a_second_run_is_the_newest_version_and_history_lists_both(model_root):
    assert run_cli("train", *SMALL, "--no-search", "--no-report").exit_code == 0
    assert run_cli("train", *SMALL, "--no-search", "--no-report", "--seed", "3").exit_code == 0
    first, second = list_versions(model_root)
    assert load_bundle(model_root).version == second
    table = run_cli("train", "--history").output
    assert first in table and second in table
    runs = json.loads(run_cli("train", "--history", "--json").output)
    assert [r["run"] for r in runs] == [first, second]
    assert runs[1]["data"]["fingerprint"] == "synthetic:seed=3:posts=600"


def test_json_prints_the_held_out_metrics(model_root):
    result = CliRunner().invoke(main, ["train", *SMALL, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # nothing but JSON on standard output
    assert set(summary["metrics"]) == {"rf"}
    assert set(summary["metrics"]["rf"]) >= METRIC_KEYS
    assert summary["version"] == list_versions(model_root)[0]
    assert summary["split"]["train_rows"] + summary["split"]["test_rows"] == 600
    manifest = read_manifest(model_root, summary["version"])
    assert summary["metrics"]["rf"] == manifest["metrics"]["engagement_holdout"]
    rates = summary["metrics"]["rf"]["band_rates"]
    assert sum(rates["predicted"]) == pytest.approx(1.0)
    assert sum(rates["observed"]) == pytest.approx(1.0)


def test_train_on_files_with_mapping_flags_and_summed_targets(model_root, tmp_path):
    start = datetime(2017, 1, 1, tzinfo=UTC)
    a = write_csv(tmp_path / "a.csv", tweet_rows(300, 1, start), encoding="latin-1")
    b = write_csv(tmp_path / "b.csv", tweet_rows(300, 2, start + timedelta(days=3)), "latin-1")
    with b.open("a", encoding="latin-1") as handle:  # unusable rows are skipped, and counted
        handle.write("not a date,some text,alpha,10,1\n10/01/17 10:00,more text,alpha,many,1\n")
    result = run_cli(
        "train",
        "--file", str(a),
        "--file", str(b),
        "--encoding", "latin-1",
        "--author-col", "user",
        "--time-format", "%m/%d/%y %H:%M",
        "--target-col", "favorites+retweets",
        "--k", "4", "--cv-splits", "2", "--no-progress", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    manifest = read_manifest(model_root, summary["version"])
    data = manifest["data"]
    assert [f["sha256"] for f in data["files"]] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b)
    ]
    assert (
        data["fingerprint"]
        == hashlib.sha256("".join(f["sha256"] for f in data["files"]).encode()).hexdigest()
    )
    assert data["rows"] == 600
    assert data["skipped"] == {"time missing or unreadable": 1, "target missing or not a number": 1}
    assert data["target"] == "log(1 + favorites + retweets)"
    assert data["encoding"] == "latin-1"
    # The two accounts differ a lot: the forest finds it on the later rows.
    assert summary["metrics"]["rf"]["r2"] > 0.5


def test_jsonl_and_tsv_files_train_alike(tmp_path):
    rows = tweet_rows(200, 4, datetime(2017, 1, 1, tzinfo=UTC))
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    tsv = write_csv(tmp_path / "t.tsv", rows, delimiter="\t")
    mapping = ColumnMapping(author="user", time_format="%m/%d/%y %H:%M")
    from_jsonl = load_dataset([jsonl], mapping, ["favorites", "retweets"])
    from_tsv = load_dataset([tsv], mapping, ["favorites", "retweets"])
    assert from_jsonl.description["skipped"] == {"not a JSON object": 1}
    np.testing.assert_allclose(from_jsonl.log_targets, from_tsv.log_targets)
    assert [p.text for p in from_jsonl.posts] == [p.text for p in from_tsv.posts]


def test_file_errors_say_what_to_do(model_root, tmp_path):
    path = write_csv(tmp_path / "t.csv", tweet_rows(80, 1, datetime(2017, 1, 1, tzinfo=UTC)))
    common = ["train", "--file", str(path), "--author-col", "user", "--no-progress"]
    missing = run_cli(*common)
    assert missing.exit_code != 0 and "--target-col" in missing.output
    wrong = run_cli(*common, "--target-col", "likes")
    assert wrong.exit_code != 0 and "no column(s) 'likes'" in wrong.output
    assert "favorites" in wrong.output  # lists the columns it has
    latin = tmp_path / "latin.csv"
    latin.write_bytes(path.read_bytes().replace(b"caf\xc3\xa9", b"caf\xe9"))
    encoding = run_cli("train", "--file", str(latin), "--author-col", "user", "--target-col",
                       "favorites", "--time-format", "%m/%d/%y %H:%M", "--no-progress")  # fmt: skip
    assert encoding.exit_code != 0 and "--encoding latin-1" in encoding.output
    assert list_versions(model_root) == []


def test_neural_model_without_tensorflow_fails_clearly(model_root, monkeypatch):
    from models import neural

    def missing():
        raise neural.NeuralUnavailable(
            f"the neural model needs TensorFlow, which is not installed: {neural.INSTALL_HINT}"
        )

    monkeypatch.setattr(neural, "require_tensorflow", missing)
    result = run_cli("train", *SMALL, "--model", "nn")
    assert result.exit_code != 0
    assert "TensorFlow" in result.output and "make setup-nn" in result.output
    assert list_versions(model_root) == []


# -- time order -----------------------------------------------------------------------------------
def test_files_are_sorted_by_time_and_the_split_holds_out_the_later_rows(tmp_path):
    rows = tweet_rows(200, 3, datetime(2016, 5, 1, tzinfo=UTC))
    path = write_csv(tmp_path / "shuffled.csv", rows)
    mapping = ColumnMapping(author="user", time_format="%m/%d/%y %H:%M")
    dataset = load_dataset([path], mapping, ["favorites"])
    times = [p.created_at for p in dataset.posts]
    assert times == sorted(times)
    assert times != [p.created_at for p in load_unsorted(rows, mapping)]
    split = split_index(len(times))
    assert split == 160
    assert max(times[:split]) <= min(times[split:])
    # Targets travel with their rows.
    by_time = {r["created_at"]: np.log1p(r["favorites"]) for r in rows}
    assert all(
        by_time[p.created_at.strftime("%m/%d/%y %H:%M")] == pytest.approx(t)
        for p, t in zip(dataset.posts, dataset.log_targets, strict=True)
    )


def load_unsorted(rows, mapping):
    from streaming.sources import row_to_raw_post

    return [parse_post(row_to_raw_post(r, mapping)) for r in rows]


def test_training_refuses_rows_out_of_time_order():
    dataset = synthetic_dataset(300, seed=1)
    dataset.posts.reverse()
    with pytest.raises(ValueError, match="sorted by created_at"):
        train(dataset, TrainingOptions(n_clusters=3, search=False))


def test_metrics_are_measured_on_the_later_rows_only():
    dataset = synthetic_dataset(500, seed=4)
    result = train(dataset, TrainingOptions(n_clusters=3, search=False))
    split = result.metrics["split"]
    assert (split["train_rows"], split["test_rows"]) == (400, 100)
    assert split["train_until"] <= split["test_from"]
    assert split["test_from"] == dataset.posts[400].created_at.isoformat()
    np.testing.assert_allclose(result.evaluation["test_actual"], dataset.log_targets[400:], 1e-6)


def test_grid_search_folds_validate_on_later_rows_with_frozen_author_levels():
    # Fitting rows see running levels (earlier rows only); validation rows see the level at
    # the end of the fitting rows, as a held-out or live post would.
    authors = np.array([[0.0, 1], [0.0, 1], [0.0, 2], [0.0, 1], [0.0, 2], [0.0, 1]])
    y = np.array([1.0, 3.0, 5.0, 100.0, 100.0, 100.0])
    step = AuthorColumns(window=2, smoothing=0.0)
    fitted = step.fit_transform(authors[:3], y[:3])
    assert fitted[0, 1:].tolist() == [0.0, 0.0, 0.0]  # nothing known before the first post
    assert fitted[1, 1] == pytest.approx(1.0 - 3.0)  # author 1's first post, minus the mean
    later = step.transform(authors[3:])
    assert later[:, 1].tolist() == pytest.approx([2.0 - 3.0, 5.0 - 3.0, 2.0 - 3.0])


# -- metrics with known answers -------------------------------------------------------------------
def test_band_metrics_on_a_tiny_input():
    edges = (1.0, 2.0)
    actual = np.array([0.5, 1.5, 2.5, 0.2])  # low, medium, high, low
    predicted = np.array([0.4, 2.2, 2.6, 1.1])  # low, high, high, medium
    metrics = band_metrics(actual, predicted, edges)
    assert metrics["band_accuracy"] == pytest.approx(0.5)
    assert metrics["band_confusion"] == [[1, 1, 0], [0, 0, 1], [0, 0, 1]]
    # F1: low 2/3 (precision 1, recall 1/2), medium 0, high 2/3 (precision 1/2, recall 1).
    assert metrics["band_macro_f1"] == pytest.approx((2 / 3 + 0 + 2 / 3) / 3)
    # Calibration: how often each band was predicted next to how often it happened.
    assert metrics["band_rates"] == {"predicted": [0.25, 0.25, 0.5], "observed": [0.5, 0.25, 0.25]}


def test_band_edges_belong_to_the_upper_band_and_absent_bands_do_not_count():
    edges = (1.0, 2.0)
    on_the_edges = band_metrics(np.array([1.0, 2.0]), np.array([1.0, 2.0]), edges)
    assert on_the_edges["band_confusion"] == [[0, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert on_the_edges["band_accuracy"] == 1.0
    assert on_the_edges["band_macro_f1"] == 1.0  # "low" appears nowhere: not a zero in the mean


def test_regression_metrics_on_a_tiny_input():
    metrics = regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 5.0]))
    assert metrics["mae"] == pytest.approx(0.25)
    assert metrics["rmse"] == pytest.approx(0.5)
    assert metrics["r2"] == pytest.approx(1 - 1 / 5)
    assert metrics["spearman"] == pytest.approx(1.0)


# -- leakage: outcomes are never inputs -----------------------------------------------------------
def test_no_new_feature_is_an_outcome():
    assert not [name for name in FEATURE_NAMES if OUTCOME_WORDS.search(name)]
    assert set(AUTHOR_FEATURES) <= set(FEATURE_NAMES)


def test_outcome_columns_of_a_file_never_reach_the_posts(tmp_path, bundle):
    rows = tweet_rows(120, 6, datetime(2017, 2, 1, tzinfo=UTC))
    mapping = ColumnMapping(author="user", time_format="%m/%d/%y %H:%M")
    quiet = load_dataset([write_csv(tmp_path / "q.csv", rows)], mapping, ["favorites"])
    viral_rows = [dict(r, favorites=r["favorites"] * 1000 + 7, retweets=10**6) for r in rows]
    viral = load_dataset([write_csv(tmp_path / "v.csv", viral_rows)], mapping, ["favorites"])
    assert all(p.engagement is None for p in quiet.posts)
    assert [dataclasses.replace(p, id="") for p in quiet.posts] == [
        dataclasses.replace(p, id="") for p in viral.posts
    ]
    assert np.array_equal(
        featurize(quiet.posts, bundle.clusterer).matrix,
        featurize(viral.posts, bundle.clusterer).matrix,
    )
    assert not np.allclose(quiet.log_targets, viral.log_targets)


def test_a_training_row_knows_only_the_outcomes_of_earlier_rows():
    authors = ["a", "b", "a", "a", "b", "a", "a"]
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    prior = AuthorPrior(window=3).fit(authors, y)
    before = prior.running(authors, y)
    changed = y.copy()
    changed[3] = 50.0  # a later outcome of author a
    after = AuthorPrior(window=3).fit(authors, y).running(authors, changed)
    assert np.array_equal(before[:4], after[:4])  # rows up to and including row 3 unchanged
    assert not np.array_equal(before[5], after[5])  # a's next post sees it
    assert np.array_equal(before[4], after[4])  # b's posts never do
    assert before[0].tolist() == [0.0, 0.0, 0.0]


def test_author_levels_are_kept_per_kind_of_post():
    """An account's reshares draw fewer likes than its own posts: each kind has its level,
    and a live post is looked up under its own kind."""
    start = datetime(2017, 1, 1, tzinfo=UTC)
    texts = ["our own news today", "RT @other: their news", ".@someone thanks for the news"]
    history = [
        parse_post({"text": texts[i % 2], "author": "a", "created_at": start + timedelta(hours=i)})
        for i in range(40)
    ]
    y = np.array([12.0 if i % 2 == 0 else 9.0 for i in range(40)])
    keys = [author_key(p, True) for p in history]
    assert set(keys) == {("a", "own"), ("a", "reshare")}
    prior = AuthorPrior(window=10, by_kind=True).fit(keys, y)
    later = [
        parse_post({"text": text, "author": "a", "created_at": start + timedelta(days=9)})
        for text in texts
    ]
    sentiments = VaderSentimentModel().score_batch(texts)
    authors = posting_time_features(later, sentiments, [0, 0, 0], prior)[:, -3:]
    np.testing.assert_array_equal(authors, prior.lookup([author_key(p, True) for p in later]))
    own, reshare = authors[:2, 0]
    assert own > 0 > reshare  # above and below the overall mean
    assert authors[2].tolist() == [0.0, 0.0, 0.0]  # no reply seen yet: an unseen kind
    # A prior keyed by the author alone (as pickled before kinds existed) mixes them.
    plain = AuthorPrior(window=10).fit([p.author for p in history], y)
    mixed = posting_time_features(later, sentiments, [0, 0, 0], plain)[:, -3]
    assert mixed[0] == mixed[1] == mixed[2]
    del plain.by_kind  # as unpickled from a version saved before kinds existed
    np.testing.assert_array_equal(
        posting_time_features(later, sentiments, [0, 0, 0], plain)[:, -3], mixed
    )


def test_live_author_features_never_read_the_posts_own_outcome(tmp_path):
    rows = tweet_rows(300, 8, datetime(2017, 3, 1, tzinfo=UTC))
    mapping = ColumnMapping(author="user", time_format="%m/%d/%y %H:%M")
    dataset = load_dataset([write_csv(tmp_path / "t.csv", rows)], mapping, ["favorites"])
    result = train(dataset, TrainingOptions(n_clusters=3, search=False, author_window=20))
    from models.pipeline import ScoringPipeline

    pipeline = ScoringPipeline(result.bundle.clusterer, result.bundle.engagement, "v")
    base = {"text": "a new post", "author": "alpha", "created_at": "2017-09-01T12:00:00Z"}
    unseen = pipeline.score_batch([parse_post(dict(base, author="nobody"))])[0]
    known = pipeline.score_batch([parse_post(base)])[0]
    assert known.engagement != unseen.engagement  # the author's history counts ...
    twins = [
        dataclasses.replace(parse_post(base), engagement=counts)
        for counts in (None, {"likes": 10**9}, UntouchableCounts())
    ]
    scored = pipeline.score_batch(twins)
    assert len({s.engagement for s in scored}) == 1  # ... the post's own outcome never does
    assert pipeline.explain(known, top=len(FEATURE_NAMES)).engagement_contributions


# -- the neural network ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def neural_run(tmp_path_factory):
    need_tensorflow()
    dataset = synthetic_dataset(700, seed=9)
    options = TrainingOptions(model="both", n_clusters=4, cv_splits=2, neural={"epochs": 6})
    result = train(dataset, options)
    root = tmp_path_factory.mktemp("nn-models")
    folder = save_result(result, root)
    return dataset, result, root, folder


def test_the_network_is_trained_compared_and_saved_hashed(neural_run):
    dataset, result, root, folder = neural_run
    nn, rf = result.metrics["neural_holdout"], result.metrics["engagement_holdout"]
    assert set(nn) >= METRIC_KEYS and set(rf) >= METRIC_KEYS
    assert nn["spearman"] > 0.3  # it learned something on the later rows
    manifest = read_manifest(root, folder.name)
    assert NEURAL_FILE in manifest["files"]
    content = (folder / NEURAL_FILE).read_bytes()
    assert content[:2] == b"PK"  # Keras' native .keras format is a zip archive
    assert hashlib.sha256(content).hexdigest() == manifest["files"][NEURAL_FILE]
    assert {"tensorflow", "keras"} <= set(manifest["libraries"])
    assert manifest["params"]["neural"]["epochs_used"] >= 1
    evaluation = load_evaluation(root, folder.name)
    assert evaluation["test_nn"].shape == evaluation["test_rf"].shape

    loaded = registry.load_neural(root, folder.name)
    posts = dataset.posts[:50]
    x = featurize(posts, result.bundle.clusterer, result.bundle.engagement.author_prior_).matrix
    texts = [p.text for p in posts]
    np.testing.assert_allclose(
        loaded.predict_log(texts, x), result.neural.predict_log(texts, x), atol=1e-5
    )


def test_a_flipped_byte_in_the_keras_file_is_refused_before_loading(neural_run, monkeypatch):
    _, _, root, folder = neural_run
    import keras

    calls = []
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: calls.append(a))
    path = folder / NEURAL_FILE
    original = path.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    try:
        with pytest.raises(ArtifactError, match="does not match its manifest"):
            registry.load_neural(root, folder.name)
        assert calls == [], "nothing may be loaded from a file that failed its check"
    finally:
        path.write_bytes(original)
    registry.load_neural(root, folder.name)  # the intact file does reach Keras
    assert len(calls) == 1


def test_train_command_with_the_network(model_root):
    need_tensorflow()
    result = CliRunner().invoke(
        main, ["train", *SMALL, "--model", "nn", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary["metrics"]) == {"rf", "nn"}
    manifest = read_manifest(model_root, summary["version"])
    assert manifest["params"]["model"] == "nn"
    assert "search" not in manifest["params"]  # nn alone: the forest keeps its defaults
    assert NEURAL_FILE in manifest["files"]
    assert (
        ExperimentLog(model_root).runs()[-1]["metrics"]["nn"]["r2"]
        == summary["metrics"]["nn"]["r2"]
    )


# -- the real data (../shared/data) ---------------------------------------------------------------
@pytest.mark.data
def test_beats_the_reference_forest_on_fivethirtyeight_tweets(shared_data, model_root):
    folder = shared_data / "fivethirtyeight_twitter_ratio"
    args = [
        "train",
        "--file", str(folder / "BarackObama.csv"),
        "--file", str(folder / "realDonaldTrump.csv"),
        "--encoding", "latin-1",
        "--author-col", "user",
        "--time-format", "%m/%d/%y %H:%M",
        "--target-col", "favorites",
        "--no-report", "--no-progress", "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    rf = summary["metrics"]["rf"]
    # The reference: a plain forest on simple posting-time features, Spearman 0.62, R² 0.54.
    assert rf["spearman"] > 0.62
    assert rf["r2"] > 0.54
    # Author levels per kind of post rank better than one level per author (0.642).
    assert rf["spearman"] > 0.65
    # The band calibration: nearly every held-out tweet is "high", and so is the forecast.
    assert rf["band_rates"]["observed"][2] > 0.95
    assert rf["band_rates"]["predicted"][2] > 0.95
    assert summary["data"]["rows"] == 3207 + 3232
    assert summary["split"]["test_rows"] == 1288


def test_too_little_data_is_refused_with_a_message(tmp_path):
    rows = tweet_rows(30, 1, datetime(2017, 1, 1, tzinfo=UTC))
    mapping = ColumnMapping(author="user", time_format="%m/%d/%y %H:%M")
    with pytest.raises(DatasetError, match="at least 50"):
        load_dataset([write_csv(tmp_path / "t.csv", rows)], mapping, ["favorites"])


# -- the forest ------------------------------------------------------------------------------------
def test_author_baseline_carries_the_level_and_explanations_still_add_up():
    rng = np.random.default_rng(0)
    level = FEATURE_NAMES.index("author_recent_lift")
    x = rng.normal(size=(400, len(FEATURE_NAMES)))
    y = 5.0 + x[:, level] + 0.3 * x[:, 0]
    model = EngagementModel(n_estimators=10, baseline="author", max_features=None).fit(x, y)
    x_new = rng.normal(size=(60, len(FEATURE_NAMES)))
    expected = model.intercept_ + x_new[:, level] + model.forest_.predict(x_new)
    np.testing.assert_allclose(model.predict_log(x_new), expected, atol=1e-9)
    bias, contributions = model.contributions(x_new)
    np.testing.assert_allclose(
        bias + contributions.sum(axis=1), model.predict_log(x_new), atol=1e-9
    )
    # An author far above anything seen in training: the prediction follows the level,
    # which a forest alone cannot do.
    far = x_new.copy()
    far[:, level] += 10.0
    shift = model.predict_log(far) - model.predict_log(x_new)
    assert shift.min() > 9.0
    direct = EngagementModel(n_estimators=10, max_features=None).fit(x, y)
    assert (direct.predict_log(far) - direct.predict_log(x_new)).max() < 5.0


def test_forest_size_tradeoff_measures_quality_cost_and_size():
    from models.experiments import forest_size_tradeoff

    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 5))
    y = x[:, 0] + rng.normal(scale=0.1, size=600)
    rows = forest_size_tradeoff(x[:450], y[:450], x[450:], y[450:], [(5, 4), (40, None)])
    assert [(r["n_estimators"], r["max_depth"]) for r in rows] == [(5, 4), (40, None)]
    small, large = rows
    assert large["size_kb"] > 5 * small["size_kb"]
    assert large["us_per_post"] > small["us_per_post"]
    assert large["r2"] > small["r2"] > 0.5
