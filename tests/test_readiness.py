"""Honest health: liveness apart from readiness, 503 with the reasons, the degraded banner."""

from __future__ import annotations

import json
import math
import os
import threading

import pytest
import requests

from app import create_app
from app.readiness import Readiness
from app.testing import free_port, running_server, wait_for
from streaming.metrics import StreamMetrics
from streaming.sources import ListSource


def test_a_problem_keeps_its_start_until_its_part_recovers():
    readiness = Readiness()
    readiness.fail("kafka", "broker down", now=100.0)
    readiness.fail("kafka", "still down", now=160.0)
    (problem,) = readiness.problems()
    assert (problem.reason, problem.since) == ("still down", 100.0)
    readiness.ok("kafka")
    assert readiness.problems() == []


def test_live_and_ready_when_nothing_fails(client):
    assert client.get("/livez").get_json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["status"] == "ok" and ready.get_json()["problems"] == []


class Breakable:
    """The pipeline, failing every batch while `broken` is set."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        self.model_version = pipeline.model_version
        self.broken = threading.Event()

    def score_batch(self, posts, learn=False, received_at=None):
        if self.broken.is_set():
            raise RuntimeError("the model broke")
        return self.pipeline.score_batch(posts, learn=learn, received_at=received_at)

    def __getattr__(self, name):
        return getattr(self.pipeline, name)


def ready(client) -> tuple[int, dict]:
    response = client.get("/readyz")
    return response.status_code, response.get_json()


def test_scoring_that_fails_every_batch_is_not_ready_until_it_recovers(app, client, raw_posts):
    services = app.extensions["socialpulse"]
    scorer = Breakable(services.pipeline)
    scorer.broken.set()
    services.pipeline = scorer
    services.start_stream(ListSource(raw_posts[:50]))
    try:
        wait_for(lambda: ready(client)[0] == 503, 10, "readiness to fail")
        _, body = ready(client)
        (problem,) = body["problems"]
        assert problem["component"] == "scoring"
        assert "the model broke" in problem["reason"]
        assert body["status"] == "degraded"
        assert client.get("/livez").status_code == 200  # alive: do not restart it for this
        scorer.broken.clear()
        wait_for(lambda: ready(client)[0] == 200, 10, "readiness to recover")
        wait_for(lambda: services.aggregates.total == 50, 10, "every post scored")
    finally:
        services.stop()


def test_a_stalled_stream_is_not_ready(config, raw_posts):
    app = create_app(config.with_overrides(stall_after=0.3))
    services = app.extensions["socialpulse"]
    release = threading.Event()

    class Stuck(ListSource):
        def read_batch(self, batch_max_posts, batch_max_wait):
            release.wait(30)
            return super().read_batch(batch_max_posts, batch_max_wait)

    services.start_stream(Stuck(raw_posts[:5]))
    client = app.test_client()
    try:
        wait_for(lambda: ready(client)[0] == 503, 10, "the stall to show")
        (problem,) = ready(client)[1]["problems"]
        assert problem["component"] == "stream" and "no batch finished" in problem["reason"]
        release.set()
        wait_for(lambda: ready(client)[0] == 200, 10, "the stream to turn again")
    finally:
        release.set()
        services.stop()


def test_a_kafka_node_without_a_broker_is_not_ready(config):
    app = create_app(config)
    services = app.extensions["socialpulse"]
    closed = f"127.0.0.1:{free_port()}"
    services.start_kafka_feed(closed)
    client = app.test_client()
    try:
        wait_for(lambda: ready(client)[0] == 503, 15, "the outage to show")
        problems = {p["component"]: p["reason"] for p in ready(client)[1]["problems"]}
        assert "no Kafka broker reachable" in problems["kafka"] and closed in problems["kafka"]
        metrics = client.get("/metrics").get_data(as_text=True)
        assert 'socialpulse_broker_reachable{role="web"} 0.0' in metrics
    finally:
        services.stop()


@pytest.mark.kafka
def test_a_kafka_node_with_its_broker_is_ready(config, kafka_bootstrap):
    app = create_app(config)
    services = app.extensions["socialpulse"]
    services.start_kafka_feed(kafka_bootstrap)
    client = app.test_client()
    try:
        wait_for(lambda: ready(client)[0] == 200, 15, "readiness")
        assert "kafka" not in {p["component"] for p in ready(client)[1]["problems"]}
    finally:
        services.stop()


def test_the_lag_is_unknown_not_zero_until_measured():
    metrics = StreamMetrics("worker")
    text = metrics.render().decode()
    (line,) = [x for x in text.splitlines() if x.startswith("socialpulse_consumer_lag{")]
    assert math.isnan(float(line.split()[-1]))


def test_a_problem_reaches_the_dashboard_without_new_posts(app, socketio_client):
    services = app.extensions["socialpulse"]
    hub = services.hub
    hub.emit_once()
    socketio_client.get_received("/live")
    services.readiness.fail("kafka", "no Kafka broker reachable (test)")
    assert hub.emit_once() is True
    (update,) = [e for e in socketio_client.get_received("/live") if e["name"] == "update"]
    assert update["args"][0]["problems"][0]["component"] == "kafka"
    assert hub.emit_once() is False  # nothing new since
    services.readiness.ok("kafka")
    assert hub.emit_once() is True
    (update,) = [e for e in socketio_client.get_received("/live") if e["name"] == "update"]
    assert update["args"][0]["problems"] == []


@pytest.mark.browser
def test_the_dashboard_shows_a_stall_and_clears_it_on_recovery(
    bundle,
    model_dir,
    tmp_path,
    page,
):
    # A named pipe with no writer: the replay blocks on it, as a source stuck on a dead
    # mount or socket would, until posts are written to it.
    pipe = tmp_path / "stream.jsonl"
    os.mkfifo(pipe)
    with running_server(
        model_dir,
        tmp_path,
        "--source",
        "file",
        "--file",
        str(pipe),
        "--file-speed",
        "0",
        SOCIALPULSE_STALL_AFTER="1",
        SOCIALPULSE_EMIT_INTERVAL="0.2",
    ) as live:
        page.goto(live.url + "/")
        page.wait_for_selector("#degraded:not([hidden])", timeout=20000)
        assert "no batch finished" in page.inner_text("#degraded")
        assert requests.get(live.url + "/readyz", timeout=5).status_code == 503
        with pipe.open("w") as writer:
            for i in range(20):
                writer.write(json.dumps({"id": f"p{i}", "text": f"back again #{i} :)"}) + "\n")
        # The writer closed: the replay ends, which is quiet, not stalled.
        page.wait_for_selector("#degraded", state="hidden", timeout=20000)
        wait_for(
            lambda: requests.get(live.url + "/readyz", timeout=5).status_code == 200, 10, "ready"
        )
        page.wait_for_function("() => document.querySelectorAll('#feed .post').length >= 20")
        assert page.problems == []
