"""The real server on a free port, with a python-socketio client on /live."""

from __future__ import annotations

import threading

import pytest
import requests
import socketio

from app.testing import running_server


@pytest.fixture(scope="module")
def server(bundle, model_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("live")
    with running_server(
        model_dir, workdir, "--rate", "200", SOCIALPULSE_EMIT_INTERVAL="0.25"
    ) as live:
        yield live.url


def test_socketio_client_receives_batched_scored_posts(server):
    client = socketio.Client()
    updates: list[dict] = []
    enough = threading.Event()

    @client.on("update", namespace="/live")
    def on_update(data):
        updates.append(data)
        if sum(len(u["posts"]) for u in updates) >= 100:
            enough.set()

    client.connect(server, namespaces=["/live"], wait_timeout=10)
    try:
        assert enough.wait(20), f"only {sum(len(u['posts']) for u in updates)} posts arrived"
    finally:
        client.disconnect()
    posts = [p for u in updates for p in u["posts"]]
    # Batches on a timer, never one event per post.
    assert len(posts) / len(updates) > 5
    post = posts[0]
    assert post["sentiment"]["label"] in {"positive", "neutral", "negative"}
    assert post["cluster"]["label"] and post["engagement"]["band"] in {"low", "medium", "high"}
    assert post["model_version"] and post["latency_ms"] >= 0 and post["e2e_ms"] >= 0
    last = updates[-1]
    assert last["stats"]["total"] >= len(posts)
    assert last["sentiment_series"] and last["clusters"] and last["trending"]
    assert len({p["id"] for p in posts}) == len(posts)


def test_socketio_refuses_a_foreign_origin(server):
    client = socketio.Client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(
            server,
            namespaces=["/live"],
            headers={"Origin": "http://evil.example"},
            transports=["polling"],
            wait_timeout=5,
        )


def test_health_and_metrics_of_the_running_server(server):
    health = requests.get(server + "/healthz", timeout=5).json()
    assert health["status"] == "ok" and health["streaming"] and health["scored"] > 0
    metrics = requests.get(server + "/metrics", timeout=5)
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert 'socialpulse_scored_total{role="web"}' in metrics.text
    assert "socialpulse_batch_latency_seconds_bucket" in metrics.text
