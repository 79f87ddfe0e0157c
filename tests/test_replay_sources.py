"""`socialpulse replay` and replays from the archive (both engines) and from Kafka by
timestamp (a real broker)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from app.cli import main
from app.replay import ReplayError, ReplaySession, ReplaySpec, open_input, parse_time
from app.testing import TEST_MODEL_KEY, run_config, run_manifest_key
from archive.store import ArchiveStore
from models.registry import load_bundle
from tests.test_replay import BASE, write_posts


@pytest.fixture
def env(model_dir, bundle, tmp_path) -> dict[str, str]:
    return {
        "SOCIALPULSE_MODEL_DIR": str(model_dir),
        "SOCIALPULSE_MODEL_KEY": TEST_MODEL_KEY,
        "SOCIALPULSE_INSTANCE_DIR": str(tmp_path / "instance"),
    }


def run_cli(env, *args):
    result = CliRunner().invoke(main, ["replay", "--no-progress", *args], env=env)
    return result


def test_the_command_prints_the_same_fingerprints_at_any_speed_and_batch(env, tmp_path):
    path = write_posts(tmp_path / "posts.jsonl", count=120, spread=3.0)
    fast = run_cli(env, "--file", str(path))
    assert fast.exit_code == 0, fast.output
    small = run_cli(env, "--file", str(path), "--batch", "9", "--speed", "10")
    assert small.exit_code == 0, small.output
    first, second = json.loads(fast.stdout), json.loads(small.stdout)
    assert first["scored"] == 120 and first["state"] == "finished"
    assert first["learning"] == "frozen"
    for key in ("scores_sha256", "aggregates_sha256"):
        assert first[key] == second[key]
    learning = ["--learning", "checkpoints", "--learn-every", "1"]
    learned = [
        json.loads(run_cli(env, "--file", str(path), *learning, *extra).stdout)
        for extra in ([], ["--batch", "5"])
    ]
    assert learned[0]["learning"] == "checkpoints" and learned[0]["checkpoints"] >= 1
    assert learned[0]["scores_sha256"] == learned[1]["scores_sha256"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--speed", "-2"], "speed"),
        (["--source", "archive", "--from", "yesterday", "--to", "1"], "not a time"),
        (["--source", "archive", "--from", "5", "--to", "1"], "end after"),
        (["--source", "kafka", "--from", "1", "--to", "5"], "Kafka"),
        (["--source", "ftp"], "ftp"),
        (["--file", "/nonexistent/posts.csv"], "no such file"),
    ],
)
def test_bad_arguments_are_usage_errors(env, args, message):
    result = run_cli(env, *args)
    assert result.exit_code == 2
    assert message in result.output


def test_times_parse_as_iso_or_epoch():
    assert parse_time("2015-02-17T09:00:00Z", "x") == BASE.timestamp()
    assert parse_time("2015-02-17T09:00:00", "x") == BASE.timestamp()  # UTC when bare
    assert parse_time(" 1424163600 ", "x") == 1424163600.0
    assert parse_time("", "x") is None
    for bad in ("nan", "-5", "1e40", "x" * 500, "2015-13-45"):
        with pytest.raises(ReplayError):
            parse_time(bad, "start")


def test_replay_from_the_archive_reads_the_range_in_event_time_order(
    archive_url, model_dir, bundle, tmp_path
):
    config = run_config(model_dir, tmp_path / "instance", archive_url=archive_url)
    pipeline = load_bundle(model_dir, bundle.version, run_manifest_key()).pipeline()
    from streaming.records import parse_post

    raw = [json.loads(line) for line in write_posts(tmp_path / "p.jsonl", 90, 90.0).open()]
    store = ArchiveStore(archive_url)
    store.migrate()
    posts = [parse_post(r) for r in raw]
    # Archived in pages smaller than the range, newest first: the replay still reads
    # them all, oldest first.
    store.write(pipeline.score_batch(sorted(posts, key=lambda p: p.created_at, reverse=True)))
    store.close()
    start = BASE.timestamp() + 10
    end = BASE.timestamp() + 70
    spec = ReplaySpec("archive", start=start, end=end).validated()
    from archive.replay import archive_input

    ordered = archive_input(ArchiveStore(archive_url), start, end, page_rows=7)
    times = [item.event_time for item in ordered.items]
    assert times == sorted(times) and len(times) == ordered.total == 60
    session = ReplaySession("a" * 16, spec, open_input(spec, config, 1000), pipeline, config)
    session.run()
    assert session.state == "finished" and session.digest.count == 60
    clock = datetime.fromtimestamp(session.source.replay_clock, UTC)
    assert BASE.timestamp() + 69 <= clock.timestamp() < end


def test_to_archive_stores_a_replay_only_when_asked(env, tmp_path):
    url = f"sqlite:///{tmp_path / 'archive.sqlite3'}"
    env = {**env, "SOCIALPULSE_ARCHIVE_URL": url}
    path = write_posts(tmp_path / "posts.jsonl", count=30)
    assert run_cli(env, "--file", str(path)).exit_code == 0
    store = ArchiveStore(url)
    store.migrate()
    assert store.post_ids() == []  # kept apart by default
    result = run_cli(env, "--file", str(path), "--to-archive")
    assert result.exit_code == 0, result.output
    assert len(store.post_ids()) == 30
    store.close()


@pytest.mark.kafka
def test_replay_from_kafka_by_timestamp(kafka_bootstrap, model_dir, bundle, tmp_path):
    """Messages produced in three bursts: a replay of the middle burst's time range gets
    that burst only, found with offsets_for_times."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"replay-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    raw = [json.loads(line) for line in write_posts(tmp_path / "p.jsonl", 60, 60.0).open()]
    marks = []
    for burst in range(3):
        marks.append(time.time())
        for post in raw[burst * 20 : (burst + 1) * 20]:
            producer.produce(topic, json.dumps(post).encode(), key=post["id"].encode())
        producer.produce(topic, b"{broken", key=b"x")  # a dead letter in each burst
        producer.flush(30)
        time.sleep(1.2)  # message timestamps apart by more than a second
    marks.append(time.time())
    config = run_config(
        model_dir, tmp_path / "instance", kafka_bootstrap=kafka_bootstrap, archive_url="off"
    )
    spec = ReplaySpec("kafka", start=marks[1], end=marks[2], topic=topic).validated()
    ordered = open_input(spec, config, 1000)
    assert ordered.total == 21
    pipeline = load_bundle(model_dir, bundle.version, run_manifest_key()).pipeline()
    session = ReplaySession("b" * 16, spec, ordered, pipeline, config)
    session.run()
    assert session.state == "finished", session.error
    assert session.digest.count == 20 and session.letters.count == 1
    ids = {p["id"] for p in raw[20:40]}
    shown = {s["id"] for s in session.aggregates.take_update()["posts"]}
    assert shown and shown <= ids
    assert session.letters.recent[0]["position"]["topic"] == topic
    with pytest.raises(ReplayError, match="does not exist"):
        open_input(ReplaySpec("kafka", start=1.0, end=2.0, topic="no-such-topic"), config, 10)


def test_ctrl_z_pauses_the_command_and_fg_resumes_it(env, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import threading

    from app.testing import wait_for

    path = write_posts(tmp_path / "posts.jsonl", count=40, spread=40.0)
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "replay", "--file", str(path), "--speed", "8"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A group of its own with its parent outside it, as a shell's job is: the kernel
        # ignores Ctrl+Z's stop in an orphaned group (this test's may be, under CI).
        process_group=0,
    )

    def state() -> str:
        return open(f"/proc/{process.pid}/stat").read().rsplit(")", 1)[1].split()[0]

    err = bytearray()

    def read_stderr() -> None:
        for chunk in iter(lambda: process.stderr.read1(4096), b""):
            err.extend(chunk)

    reader = threading.Thread(target=read_stderr)
    reader.start()
    try:
        wait_for(lambda: b"posts" in err, 60, "the replay's progress line")
        process.send_signal(signal.SIGTSTP)
        wait_for(lambda: state() == "T", 10, "the process to stop")  # suspended, as Ctrl+Z does
        process.send_signal(signal.SIGCONT)
        out = process.stdout.read()
        process.wait(60)
    finally:
        process.kill()
        reader.join(10)
    summary = json.loads(out)
    assert summary["state"] == "finished" and summary["scored"] == 40
