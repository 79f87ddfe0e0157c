"""Against the real Kafka broker that `make test` starts: delivery, faults, dead letters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest
import socketio

from app.testing import (
    ROOT,
    KafkaScenario,
    free_port,
    read_topic,
    running_server,
    scored_ids,
    synthetic_values,
    wait_for,
    wait_for_count,
)
from streaming.kafka_clients import KAFKA_CLIENTS, kafka_client

# Every test runs with each Kafka client library: both must keep the same promises.
pytestmark = pytest.mark.kafka


@pytest.fixture(params=KAFKA_CLIENTS)
def client_name(request) -> str:
    return request.param


@pytest.fixture
def scenario(kafka_bootstrap, bundle, model_dir, tmp_path, client_name):
    case = KafkaScenario(kafka_bootstrap, model_dir, tmp_path, client=client_name)
    yield case
    case.stop_all()


def read_all_scored(case: KafkaScenario, expected: set[str], timeout: float) -> list[str]:
    messages = read_topic(
        case.bootstrap,
        case.topics.scored,
        lambda ms: expected <= set(scored_ids(ms)),
        timeout=timeout,
    )
    return scored_ids(messages)


def test_worker_scores_into_scored_topic_and_dashboard_receives(scenario, model_dir, tmp_path):
    import requests

    client = socketio.Client()
    received: list[dict] = []
    client.on("update", lambda data: received.extend(data.get("posts") or []), namespace="/live")
    environ = scenario.env(SOCIALPULSE_EMIT_INTERVAL="0.2")
    with running_server(model_dir, tmp_path, **environ) as live:
        try:
            health = requests.get(live.url + "/healthz", timeout=5).json()
            assert health["source"] == "kafka" and health["streaming"] is True
            client.connect(live.url, namespaces=["/live"], wait_timeout=10)
            scenario.start_worker("w1")
            ids, values, keys = synthetic_values(300, seed=41)
            scenario.produce(values, keys)

            scored = read_all_scored(scenario, set(ids), timeout=60)
            assert set(ids) <= set(scored)
            wait_for(
                lambda: len({p["id"] for p in received} & set(ids)) >= 50,
                30,
                "scored posts on the dashboard",
            )
            post = next(p for p in received if p["id"] in set(ids))
            assert post["sentiment"]["label"] in {"positive", "neutral", "negative"}
            assert post["model_version"] and post["cluster"]["label"]
            metrics = requests.get(live.url + "/metrics", timeout=5).text
            assert 'socialpulse_scored_total{role="web"}' in metrics
            # Health counts what this node received from the workers, as in embedded mode.
            health = requests.get(live.url + "/healthz", timeout=5).json()
            assert health["scored"] >= 50
        finally:
            client.disconnect()


def test_sigkill_midway_through_20000_posts_loses_nothing(scenario):
    ids, values, keys = synthetic_values(20_000, seed=42)
    scenario.produce(values, keys)
    worker = scenario.start_worker("victim")
    wait_for_count(scenario.bootstrap, scenario.topics.scored, 3000, timeout=90)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    scored_before = len(
        read_topic(scenario.bootstrap, scenario.topics.scored, lambda ms: False, timeout=3)
    )
    assert scored_before < 20_000, "the worker finished before it was killed"

    scenario.start_worker("restarted")
    scored = read_all_scored(scenario, set(ids), timeout=180)
    missing = set(ids) - set(scored)
    assert not missing, f"{len(missing)} posts lost, e.g. {sorted(missing)[:5]}"
    assert len(scored) >= 20_000  # redelivered posts kept their ids (duplicates allowed)


def test_sigterm_finishes_the_batch_commits_and_leaves(scenario):
    ids, values, keys = synthetic_values(2000, seed=43)
    scenario.produce(values, keys)
    worker = scenario.start_worker("graceful")
    read_all_scored(scenario, set(ids), timeout=60)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    messages = [e["msg"] for e in scenario.worker_log("graceful")]
    assert any("stopped after" in m for m in messages)

    # Everything was committed: a new worker of the group scores only new posts.
    scenario.start_worker("next")
    new_ids, new_values, new_keys = synthetic_values(100, seed=44)
    scenario.produce(new_values, new_keys)
    read_all_scored(scenario, set(ids) | set(new_ids), timeout=60)
    time.sleep(2)
    scored = scored_ids(
        read_topic(scenario.bootstrap, scenario.topics.scored, lambda ms: False, timeout=3)
    )
    assert len(scored) == len(set(scored)) == 2100


def test_poison_messages_go_to_the_dead_letter_topic_exactly_once(scenario):
    good_ids, good_values, good_keys = synthetic_values(50, seed=45)
    poison = {
        b"undecodable": b"\xff\xfe\xfa not utf-8",
        b"not-json": b"hello, this is not JSON",
        b"no-text": json.dumps({"id": "p1", "author": "x"}).encode(),
        b"wrong-types": json.dumps({"id": "p2", "text": 12345}).encode(),
        b"oversize": json.dumps({"id": "p3", "text": "spam " * 2000}).encode(),
        b"empty": b"",
        b"tombstone": None,
    }
    values = good_values[:25] + list(poison.values()) + good_values[25:]
    keys = good_keys[:25] + list(poison) + good_keys[25:]
    scenario.start_worker("w1")
    scenario.produce(values, keys)

    scored = read_all_scored(scenario, set(good_ids), timeout=60)
    wait_for_count(scenario.bootstrap, scenario.topics.dlq, len(poison), timeout=30)
    time.sleep(2)  # give duplicates, if any, the time to show up
    dead = read_topic(scenario.bootstrap, scenario.topics.dlq, lambda ms: False, timeout=3)
    assert sorted(scored) == sorted(good_ids)
    assert len(dead) == len(poison)
    by_value = {m.value: dict(m.headers) for m in dead}
    assert set(by_value) == set(poison.values())
    for headers in by_value.values():
        assert headers["reason"]
        assert headers["source.topic"].decode() == scenario.topics.posts
        assert int(headers["source.partition"]) >= 0 and int(headers["source.offset"]) >= 0
    assert b"UTF-8" in by_value[poison[b"undecodable"]]["reason"]
    assert b"text" in by_value[poison[b"no-text"]]["reason"]
    assert b"tombstone" in by_value[None]["reason"]


def test_two_workers_share_partitions_and_lose_nothing(scenario):
    ids, values, keys = synthetic_values(10_000, seed=46)
    ports = [free_port(), free_port()]
    scenario.start_worker("a", "--metrics-port", str(ports[0]))
    scenario.start_worker("b", "--metrics-port", str(ports[1]), "--metrics-host", "127.0.0.1")
    scenario.wait_until_sharing(["a", "b"])
    scenario.produce(values, keys)
    scored = read_all_scored(scenario, set(ids), timeout=120)
    assert set(ids) <= set(scored)
    import requests

    totals = []
    for port in ports:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        line = next(ln for ln in text.splitlines() if ln.startswith("socialpulse_scored_total"))
        totals.append(float(line.rsplit(" ", 1)[1]))
    history = {n: [e["msg"] for e in scenario.worker_log(n)] for n in "ab"}
    assert all(t > 0 for t in totals), f"one worker scored nothing: {totals}; logs: {history}"
    assert sum(totals) >= 10_000


def test_consumer_takes_added_partitions_even_when_polls_time_out_mid_rebalance(
    kafka_bootstrap, model_dir, tmp_path, client_name
):
    """Adding partitions makes the group leader rebalance on its own. With 1 ms polls the
    poll times out during that rebalance nearly every time, which used to leave the
    consumer outside the group for good."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewPartitions

    scenario = KafkaScenario(kafka_bootstrap, model_dir, tmp_path, partitions=2)
    source = kafka_client(client_name).source(
        kafka_bootstrap, scenario.topics.posts, scenario.group
    )
    try:

        def held_after_polling(count: int) -> bool:
            source.read_batch(500, 0.001)
            return len(source.assignment()) == count

        wait_for(lambda: held_after_polling(2), 30, "the first assignment", interval=0)
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        admin.create_partitions({scenario.topics.posts: NewPartitions(total_count=4)})
        admin.close()
        wait_for(lambda: held_after_polling(4), 60, "the added partitions", interval=0)

        ids, values, keys = synthetic_values(200, seed=48)
        scenario.produce(values, keys)
        seen: set[str] = set()
        partitions: set[int] = set()

        def read_all() -> bool:
            for record in source.read_batch(500, 0.001):
                seen.add(json.loads(record.value)["id"])
                partitions.add(record.position["partition"])
            return seen >= set(ids)

        wait_for(read_all, 60, "the posts of every partition", interval=0)
        assert partitions == {0, 1, 2, 3}
    finally:
        source.close()


@pytest.mark.slow
def test_broker_restart_mid_stream_loses_nothing(bundle, model_dir, tmp_path, client_name):
    port = free_port()
    env = dict(os.environ, KAFKA_PORT=str(port), KAFKA_CONTROLLER_PORT=str(free_port()))
    broker = ["bash", str(ROOT / "kafka" / "kafka.sh")]
    subprocess.run([*broker, "up"], env=env, check=True, cwd=ROOT)
    scenario = KafkaScenario(f"127.0.0.1:{port}", model_dir, tmp_path, client=client_name)
    try:
        ids, values, keys = synthetic_values(8000, seed=47)
        scenario.produce(values[:4000], keys[:4000])
        scenario.start_worker("survivor")
        wait_for_count(scenario.bootstrap, scenario.topics.scored, 1000, timeout=60)
        subprocess.run([*broker, "down"], env=env, check=True, cwd=ROOT)
        time.sleep(3)
        subprocess.run([*broker, "up"], env=env, check=True, cwd=ROOT)
        thread = threading.Thread(target=scenario.produce, args=(values[4000:], keys[4000:]))
        thread.start()
        thread.join(timeout=120)
        scored = read_all_scored(scenario, set(ids), timeout=180)
        assert set(ids) <= set(scored), f"{len(set(ids) - set(scored))} posts lost"
        assert scenario.workers[0].poll() is None, "the worker died with the broker"
    finally:
        scenario.stop_all()
        subprocess.run([*broker, "down", "--clean"], env=env, cwd=ROOT)


def test_a_confluent_consumer_out_of_its_group_too_long_rejoins_from_the_commits(
    kafka_bootstrap, model_dir, tmp_path, monkeypatch
):
    """librdkafka can stay outside its group after a broker restart, timing out every
    coordinator request: the source replaces such a consumer and resumes from the last
    commit, so nothing committed is read again and nothing uncommitted is lost."""
    from streaming import confluent_io

    scenario = KafkaScenario(kafka_bootstrap, model_dir, tmp_path, partitions=2)
    source = kafka_client("confluent").source(
        kafka_bootstrap, scenario.topics.posts, scenario.group
    )
    first_ids, values, keys = synthetic_values(100, seed=51)
    scenario.produce(values, keys)

    def read_into(seen: list[str], wanted: set[str]):
        def read() -> bool:
            seen.extend(json.loads(r.value)["id"] for r in source.read_batch(500, 0.05))
            return wanted <= set(seen)

        return read

    try:
        seen: list[str] = []
        wait_for(read_into(seen, set(first_ids)), 60, "the first posts", interval=0)
        assert source.commit()
        later_ids, values, keys = synthetic_values(50, seed=52)
        scenario.produce(values, keys)
        wedged = source.consumer
        # The group has been down for longer than the limit, as a wedged client reports.
        source._group_seen_up -= confluent_io.GROUP_STALL_SECONDS + 1
        after: list[str] = []
        wait_for(read_into(after, set(later_ids)), 60, "the posts after rejoining", interval=0)
        assert source.consumer is not wedged
        assert set(after) == set(later_ids), "committed posts were read again or lost"
        assert source.commit()
    finally:
        source.close()
