"""Replays: event-time order, pacing with pause/resume/stop, frozen learning, determinism
at any speed and micro-batch size, broken rows, and sessions kept apart from the live ones."""

from __future__ import annotations

import csv
import json
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from app.aggregates import fit_windows
from app.replay import (
    ReplayError,
    ReplayManager,
    ReplaySession,
    ReplaySpec,
    open_input,
)
from app.testing import run_config, run_manifest_key
from models.registry import load_bundle
from streaming.replay import ReplayItem, ReplaySource, file_items, in_event_order
from streaming.sources import ColumnMapping
from streaming.synthetic import SyntheticPostGenerator, strip_private

BASE = datetime(2015, 2, 17, 9, 0, tzinfo=UTC)


def write_posts(path: Path, count: int = 240, spread: float = 2.0, seed: int = 5) -> Path:
    """A JSONL file of synthetic posts over `spread` seconds, shuffled out of time order."""
    posts = [strip_private(p) for p in SyntheticPostGenerator(seed=seed).take(count)]
    for i, post in enumerate(posts):
        post["id"] = f"p{i}"
        post["created_at"] = (BASE + timedelta(seconds=spread * i / count)).isoformat()
    random.Random(seed).shuffle(posts)
    path.write_text("".join(json.dumps(p) + "\n" for p in posts))
    return path


@pytest.fixture
def replay_config(model_dir, tmp_path, bundle):
    return run_config(model_dir, tmp_path / "instance", archive_url="off")


@pytest.fixture
def load_pipeline(model_dir, bundle):
    def load(version=None):
        return load_bundle(model_dir, version or bundle.version, run_manifest_key()).pipeline()

    return load


def replay(config, load_pipeline, path: Path, speed=None, batch=None, **learning) -> ReplaySession:
    """One whole replay of `path`, run in this thread."""
    spec = ReplaySpec("file", str(path), speed=speed, batch_max_posts=batch, **learning)
    spec = spec.validated()
    session = ReplaySession(
        "0" * 16, spec, open_input(spec, config, 10_000), load_pipeline(), config
    )
    session.run()
    assert session.state == "finished", session.error
    return session


def test_a_shuffled_file_is_replayed_in_event_time_order(tmp_path):
    path = write_posts(tmp_path / "posts.jsonl", count=50)
    ordered = in_event_order(file_items(path), bound=1000)
    times = [item.event_time for item in ordered.items]
    assert times == sorted(times) and len(times) == 50
    assert ordered.total == 50 and ordered.sorted_fully
    assert ordered.span == pytest.approx(2.0 * 49 / 50)


def test_a_longer_input_is_ordered_within_the_buffer_bound():
    # Each item at most 3 places from where it belongs: a buffer of 5 puts all in order.
    rng = random.Random(1)
    times = list(range(100))
    for i in range(0, 100, 4):
        chunk = times[i : i + 4]
        rng.shuffle(chunk)
        times[i : i + 4] = chunk
    items = [ReplayItem(float(t), {"text": str(t)}) for t in times]
    ordered = in_event_order(items, bound=5)
    assert not ordered.sorted_fully and ordered.total is None
    assert [item.event_time for item in ordered.items] == sorted(float(t) for t in times)


def paced(manual_clock, speed, count=11):
    items = [ReplayItem(1000.0 + i, {"text": f"post {i}"}, {"line": i}) for i in range(count)]
    return ReplaySource(in_event_order(items), speed, clock=manual_clock)


def test_pacing_follows_event_time_at_x_n(manual_clock):
    source = paced(manual_clock, speed=10)
    start = manual_clock.monotonic()
    got = []
    while not source.exhausted:
        got += source.read_batch(100, 0.5)
    assert len(got) == 11
    # 10 s of event time at ×10: one second of wall time.
    assert manual_clock.monotonic() - start == pytest.approx(1.0, abs=0.06)
    assert source.progress()["fraction"] == 1.0 and source.replay_clock == 1010.0


def test_pause_resume_and_stop(manual_clock):
    source = paced(manual_clock, speed=1)
    assert len(source.read_batch(100, 2.5)) == 3  # events 0, 1 and 2 are due
    source.pause()
    assert source.read_batch(100, 30.0) == []  # nothing while paused, however long
    assert source.progress()["paused"]
    source.resume()
    # The pause is not replayed time: the next post is still half a second away.
    assert source.read_batch(100, 0.25) == []
    assert len(source.read_batch(100, 0.5)) == 1
    source.stop()
    assert source.read_batch(100, 5.0) == [] and source.exhausted
    assert source.handed_out == 4


def test_full_speed_never_sleeps(manual_clock):
    source = paced(manual_clock, speed=None)
    assert len(source.read_batch(100, 0.1)) == 11 and not manual_clock.slept


@pytest.mark.parametrize("speed", [-1.0, float("nan"), float("inf"), 1e9])
def test_bad_speeds_are_refused(speed):
    with pytest.raises(ReplayError, match="speed"):
        ReplaySpec("file", "x.csv", speed=speed).validated()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ReplaySpec("ftp"), "unknown source"),
        (ReplaySpec("file"), "needs a file"),
        (ReplaySpec("archive", start=10.0), "time range"),
        (ReplaySpec("archive", start=10.0, end=5.0), "end after"),
        (ReplaySpec("kafka", start=0.0, end=1e12), "366 days"),
        (ReplaySpec("archive", start=float("nan"), end=5.0), "finite"),
        (ReplaySpec("file", "x.csv", batch_max_posts=0), "batch_max_posts"),
        (ReplaySpec("file", "x.csv", learning="sometimes"), "learning"),
        (ReplaySpec("file", "x.csv", learning="checkpoints", learn_every=0.0), "learn_every"),
    ],
)
def test_malformed_specs_get_clear_errors(spec, message):
    with pytest.raises(ReplayError, match=message):
        spec.validated()


def test_windows_follow_the_span_shown():
    assert fit_windows(300.0, 10, 60) == (10, 60)  # a short replay looks like live
    window, kept = fit_windows(8 * 86400.0, 10, 60)
    assert window == 7200 and kept * window >= 8 * 86400  # eight days of two-hour bars
    assert fit_windows(None, 10, 60) == (10, 60)


def test_replays_are_identical_at_any_speed_and_batch_size(tmp_path, replay_config, load_pipeline):
    """The determinism guarantee: scores and event-time aggregates at full speed, ×10 and
    ×1, with micro-batches of 500 and of 7, and twice over, all hash alike."""
    path = write_posts(tmp_path / "posts.jsonl", count=240, spread=2.0)
    runs = [
        replay(replay_config, load_pipeline, path),
        replay(replay_config, load_pipeline, path),
        replay(replay_config, load_pipeline, path, batch=7),
        replay(replay_config, load_pipeline, path, speed=10.0, batch=13),
        replay(replay_config, load_pipeline, path, speed=1.0),
    ]
    digests = [run.digests() for run in runs]
    assert all(d == digests[0] for d in digests), digests
    assert runs[0].digest.count == 240
    assert runs[0].aggregates.total == 240
    # A different input gives a different fingerprint: the digests do measure something.
    other = write_posts(tmp_path / "other.jsonl", count=240, spread=2.0, seed=6)
    assert replay(replay_config, load_pipeline, other).digests() != digests[0]


def test_learning_at_event_time_checkpoints_is_deterministic_too(
    tmp_path, replay_config, load_pipeline
):
    """With learning at checkpoints (every second of event time here), the clusterer learns
    during the replay, and still every run gives the same results whatever the speed and
    the micro-batches."""
    path = write_posts(tmp_path / "posts.jsonl", count=600, spread=3.0)
    learning = {"learning": "checkpoints", "learn_every": 1.0}
    runs = [
        replay(replay_config, load_pipeline, path, **learning),
        replay(replay_config, load_pipeline, path, batch=11, **learning),
        replay(replay_config, load_pipeline, path, speed=5.0, batch=64, **learning),
    ]
    assert all(run.digests() == runs[0].digests() for run in runs)
    assert runs[0].status()["checkpoints"] == 2  # before second 1, and before second 2
    frozen = replay(replay_config, load_pipeline, path)
    learned = runs[0].runner.scorer.pipeline.clusterer.state_
    assert frozen.status()["checkpoints"] == 0
    initial = load_pipeline().clusterer.state_
    # The topics moved (merged, were born, or their centres shifted) as the replay went.
    assert learned.cluster_ids != initial.cluster_ids or not np.array_equal(
        learned.kmeans.cluster_centers_, initial.kmeans.cluster_centers_
    )


def test_a_replay_never_learns(tmp_path, replay_config, load_pipeline):
    pipeline = load_pipeline()
    before = (pipeline.clusterer.cluster_ids_, len(pipeline.clusterer.lineage_))
    spec = ReplaySpec("file", str(write_posts(tmp_path / "p.jsonl", 300))).validated()
    session = ReplaySession(
        "1" * 16, spec, open_input(spec, replay_config, 1000), pipeline, replay_config
    )
    session.run()
    assert (pipeline.clusterer.cluster_ids_, len(pipeline.clusterer.lineage_)) == before
    assert session.status()["learning"] == "frozen"


def test_broken_rows_go_to_the_dead_letters_with_their_line(tmp_path, replay_config, load_pipeline):
    path = tmp_path / "broken.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "created_at"])
        writer.writerow(["a", "good morning #coffee", "2015-02-17T09:00:00+00:00"])
        writer.writerow(["b", "", "2015-02-17T09:00:01+00:00"])  # line 3: no text
        writer.writerow(["c", "what a time", "not a time"])  # line 4: unreadable time
        writer.writerow(["d", "still going #coffee", "2015-02-17T09:00:02+00:00"])
    session = replay(replay_config, load_pipeline, path)
    assert session.digest.count == 2  # the good rows around the broken ones
    assert session.letters.count == 2
    assert sorted(letter["position"]["line"] for letter in session.letters.recent) == [3, 4]
    assert all(letter["reason"] for letter in session.letters.recent)


def test_manager_caps_sessions_and_controls_them(tmp_path, replay_config, load_pipeline):
    path = write_posts(tmp_path / "posts.jsonl", count=100, spread=50.0)
    manager = ReplayManager(replay_config, load_pipeline)
    first = manager.start(ReplaySpec("file", str(path), speed=1.0))
    second = manager.start(ReplaySpec("file", str(path), speed=1.0))
    with pytest.raises(ReplayError, match="replays are running") as refused:
        manager.start(ReplaySpec("file", str(path), speed=1.0))
    assert refused.value.status == 429
    first.pause()
    assert manager.get(first.id).status()["state"] == "paused"
    first.resume()
    assert first.state == "running"
    first.stop()
    second.stop()
    for session in (first, second):
        waited = threading.Event()
        while session.active and not waited.wait(0.05):
            pass
    assert first.state == "stopped" and second.state == "stopped"
    assert first.source.handed_out < 100  # stopped before the end
    # Ended sessions make room for new ones.
    third = manager.start(ReplaySpec("file", str(path)))
    assert third.id not in (first.id, second.id)
    with pytest.raises(ReplayError) as unknown:
        manager.get("../../etc")
    assert unknown.value.status == 404
    manager.close()


def test_a_paused_replay_left_alone_is_stopped_and_ended_ones_expire(
    tmp_path, replay_config, load_pipeline
):
    config = replay_config.with_overrides(replay_idle=1.0, replay_keep=1.0)
    path = write_posts(tmp_path / "posts.jsonl", count=50, spread=100.0)
    manager = ReplayManager(config, load_pipeline)
    session = manager.start(ReplaySpec("file", str(path), speed=1.0))
    session.pause()
    manager.expire(now=session.touched + 5.0)
    waited = threading.Event()
    while session.active and not waited.wait(0.05):
        pass
    assert session.state == "stopped"
    session.ended_at -= 10.0
    manager.expire()
    with pytest.raises(ReplayError):
        manager.get(session.id)
    manager.close()


def test_unknown_file_and_missing_archive_are_clear_errors(replay_config, tmp_path):
    with pytest.raises(ReplayError, match="no such file") as missing:
        open_input(ReplaySpec("file", str(tmp_path / "nope.csv")), replay_config, 10)
    assert missing.value.status == 404
    spec = ReplaySpec("archive", start=0.0, end=10.0)
    with pytest.raises(ReplayError, match="no archive"):
        open_input(spec, replay_config, 10)
    with pytest.raises(ReplayError, match="no Kafka"):
        open_input(ReplaySpec("kafka", start=0.0, end=10.0), replay_config, 10)
    (tmp_path / "x.exe").write_text("")
    with pytest.raises(ReplayError, match="unsupported"):
        open_input(ReplaySpec("file", str(tmp_path / "x.exe")), replay_config, 10)


def test_file_items_use_the_column_mapping(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("tweet_id,name,tweet_created,text\n9,ann,2015-02-24 11:35:52 -0800,hello #a\n")
    mapping = ColumnMapping(id="tweet_id", author="name", created_at="tweet_created")
    (item,) = list(file_items(path, mapping))
    assert item.value["id"] == "9" and item.value["author"] == "ann"
    assert item.event_time == datetime(2015, 2, 24, 19, 35, 52, tzinfo=UTC).timestamp()
    assert item.position == {"file": "t.csv", "line": 2}


def test_a_jsonl_line_that_is_not_a_post_is_a_dead_letter(tmp_path, replay_config, load_pipeline):
    path = write_posts(tmp_path / "posts.jsonl", count=20)
    lines = path.read_text().splitlines()
    lines.insert(5, '{"text": "unterminated')
    lines.insert(9, "[1, 2, 3]")
    path.write_text("\n".join(lines) + "\n")
    session = replay(replay_config, load_pipeline, path)
    assert session.digest.count == 20 and session.letters.count == 2
    assert sorted(letter["position"]["line"] for letter in session.letters.recent) == [6, 10]
