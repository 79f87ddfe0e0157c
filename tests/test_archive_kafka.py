"""`socialpulse archive` against the real broker: a SIGKILL mid-stream and a restart leave
exactly the rows that were published, once each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from app.config import PROJECT_ROOT
from app.testing import KafkaScenario, free_port, wait_for
from archive.store import ArchiveStore
from streaming.records import parse_post
from streaming.synthetic import SyntheticPostGenerator, strip_private

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N_POSTS = 20_000
N_LETTERS = 40


@pytest.fixture
def scenario(kafka_bootstrap, model_dir, bundle, tmp_path):
    scenario = KafkaScenario(kafka_bootstrap, model_dir, tmp_path / "kafka", partitions=3)
    yield scenario
    scenario.stop_all()


def publish_results(
    scenario: KafkaScenario, pipeline, n_posts: int = N_POSTS
) -> tuple[set[str], int]:
    """Scored posts and dead letters on their topics, as scoring workers publish them."""
    from confluent_kafka import Producer

    raws = [strip_private(p) for p in SyntheticPostGenerator(seed=77).take(n_posts)]
    scored = pipeline.score_batch([parse_post(r) for r in raws])
    producer = Producer({"bootstrap.servers": scenario.bootstrap, "linger.ms": 20})
    for item in scored:
        while True:
            try:
                producer.produce(
                    scenario.topics.scored, value=item.to_json(), key=item.post.author.encode()
                )
                break
            except BufferError:
                producer.poll(0.05)
    for offset in range(N_LETTERS):
        headers = [
            ("reason", b"'text' must be a string"),
            ("source", b"kafka"),
            ("source.topic", scenario.topics.posts.encode()),
            ("source.partition", b"0"),
            ("source.offset", str(offset).encode()),
        ]
        producer.produce(scenario.topics.dlq, value=b'{"text": 1}', headers=headers)
    # A message on the scored topic that is no scored post: archived as a dead letter.
    producer.produce(scenario.topics.scored, value=b"\x00 not json")
    assert producer.flush(60) == 0
    return {s.post.id for s in scored}, N_LETTERS + 1


def start_archiver(scenario: KafkaScenario, url: str, name: str) -> subprocess.Popen:
    log = (scenario.log_dir / f"{name}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "archive", "--consumer-id", name],
        cwd=PROJECT_ROOT,
        # Small transactions, so a kill lands between two of them.
        env=scenario.env(SOCIALPULSE_ARCHIVE_URL=url, SOCIALPULSE_BATCH_MAX_POSTS="50"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    scenario.workers.append(process)  # stopped with the scenario
    return process


def counts(store: ArchiveStore) -> tuple[int, int]:
    try:
        return store.counts()
    except Exception:  # the schema is not there before the archiver's first start
        return (0, 0)


def test_sigkill_mid_stream_then_restart_archives_everything_once(scenario, archive_url, pipeline):
    ids, n_letters = publish_results(scenario, pipeline)
    store = ArchiveStore(archive_url)
    try:
        victim = start_archiver(scenario, archive_url, "victim")
        wait_for(lambda: counts(store)[0] >= 300, 90, "the archiver to start storing", 0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        stored_before = counts(store)[0]
        assert stored_before < len(ids), "the archiver finished before it was killed"
        early = {post_id: store.get(post_id)[1] for post_id in store.post_ids()[:50]}

        start_archiver(scenario, archive_url, "restarted")
        wait_for(
            lambda: counts(store) == (len(ids), n_letters),
            180,
            f"{len(ids)} posts and {n_letters} dead letters in the archive",
            0.5,
        )
        assert set(store.post_ids()) == ids
        # Posts stored before the kill were delivered again (their offsets were not
        # committed yet) and kept the time they were first archived.
        assert {post_id: store.get(post_id)[1] for post_id in early} == early
        reasons = [row.reason for row in store.dead_letter_rows()]
        assert sum(r.startswith("unreadable scored post") for r in reasons) == 1
    finally:
        store.close()


def test_a_database_restart_under_the_archiver_loses_and_duplicates_nothing(
    scenario, pipeline, proxied_postgres
):
    """PostgreSQL goes away mid-stream (connections reset, new ones refused) and comes
    back: the archiver stays up, commits nothing meanwhile, and then stores every row once."""
    proxy, through = proxied_postgres.proxy, proxied_postgres.through
    direct = ArchiveStore(proxied_postgres.direct)
    try:
        ids, n_letters = publish_results(scenario, pipeline)
        archiver = start_archiver(scenario, through, "patient")
        wait_for(lambda: counts(direct)[0] >= 300, 90, "the archiver to start storing", 0.02)
        proxy.stop()
        time.sleep(4)
        during = counts(direct)
        assert during[0] < len(ids), "the archiver finished before the database went away"
        time.sleep(2)
        assert counts(direct) == during, "rows were stored while the database was away"
        assert archiver.poll() is None, "the archiver died with the database"
        proxy.start()
        wait_for(
            lambda: counts(direct) == (len(ids), n_letters),
            180,
            f"{len(ids)} posts and {n_letters} dead letters in the archive",
            0.5,
        )
        assert set(direct.post_ids()) == ids
        log = (scenario.log_dir / "patient.log").read_text()
        assert "cannot write to the archive" in log
    finally:
        scenario.stop_all()
        direct.close()


def test_a_broker_restart_under_the_archiver_loses_and_duplicates_nothing(
    bundle, model_dir, tmp_path, pipeline
):
    port = free_port()
    env = dict(os.environ, KAFKA_PORT=str(port), KAFKA_CONTROLLER_PORT=str(free_port()))
    broker = ["bash", str(PROJECT_ROOT / "kafka" / "kafka.sh")]
    subprocess.run([*broker, "up"], env=env, check=True, cwd=PROJECT_ROOT)
    scenario = KafkaScenario(f"127.0.0.1:{port}", model_dir, tmp_path / "kafka", partitions=3)
    url = f"sqlite:///{tmp_path / 'archive.sqlite3'}"
    store = ArchiveStore(url)
    try:
        ids, n_letters = publish_results(scenario, pipeline)
        archiver = start_archiver(scenario, url, "survivor")
        wait_for(lambda: counts(store)[0] >= 300, 90, "the archiver to start storing", 0.02)
        subprocess.run([*broker, "down"], env=env, check=True, cwd=PROJECT_ROOT)
        assert counts(store)[0] < len(ids), "the archiver finished before the broker went"
        time.sleep(3)
        subprocess.run([*broker, "up"], env=env, check=True, cwd=PROJECT_ROOT)
        wait_for(
            lambda: counts(store) == (len(ids), n_letters),
            180,
            f"{len(ids)} posts and {n_letters} dead letters in the archive",
            0.5,
        )
        assert set(store.post_ids()) == ids
        assert archiver.poll() is None, "the archiver died with the broker"
    finally:
        scenario.stop_all()
        store.close()
        subprocess.run([*broker, "down", "--clean"], env=env, cwd=PROJECT_ROOT)


def test_web_nodes_started_on_one_archive_show_the_same_dashboard(
    scenario, pipeline, model_dir, tmp_path
):
    """Two Kafka-mode web nodes, one archive (filled by `socialpulse archive`): each starts
    from the archive, reads the scored topic after it, and counts every post once."""
    import requests
    import socketio

    from app.testing import running_server

    url = f"sqlite:///{tmp_path / 'shared-archive.sqlite3'}"
    store = ArchiveStore(url)
    try:
        ids, n_letters = publish_results(scenario, pipeline, n_posts=3000)
        start_archiver(scenario, url, "archiver")
        wait_for(lambda: counts(store) == (len(ids), n_letters), 120, "the archive to fill", 0.5)
    finally:
        store.close()

    def state(node_url: str) -> dict:
        updates: list[dict] = []
        client = socketio.Client(reconnection=False)
        client.on("update", updates.append, namespace="/live")
        client.connect(node_url, namespaces=["/live"], transports=["websocket"], wait_timeout=10)
        try:
            wait_for(lambda: updates, 10, "the state")
        finally:
            client.disconnect()
        return updates[0]

    env = scenario.env(SOCIALPULSE_ARCHIVE_URL=url)
    seen = []
    for name in ("a", "b"):
        workdir = tmp_path / name
        workdir.mkdir()
        with running_server(model_dir, workdir, **env) as node:
            wait_for(
                lambda node=node: (
                    requests.get(node.url + "/healthz", timeout=5).json()["duplicates_dropped"] > 0
                ),
                60,
                "the node to read the scored topic past the archive",
            )
            seen.append(state(node.url))
    first, second = seen
    assert first["stats"]["total"] == second["stats"]["total"] == len(ids)
    assert first["stats"]["dead_lettered"] == second["stats"]["dead_lettered"] == n_letters
    for key in ("sentiment_series", "clusters", "trending"):
        assert first[key] == second[key], key
    assert {p["id"] for p in first["posts"]} == {p["id"] for p in second["posts"]}
