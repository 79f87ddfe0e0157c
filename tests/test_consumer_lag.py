"""The workers' consumer lag on a real broker: measured from a web node, it builds while the
worker is stopped, the pipeline-health alert fires, and resolves once the backlog drains."""

from __future__ import annotations

import json
import time

import pytest

from app import create_app
from app.alerting import AlertFilter
from app.services import services
from app.testing import KafkaScenario, free_port, run_config, wait_for
from insights.health import PipelineHealth
from streaming.group_lag import GroupLagProbe

pytestmark = pytest.mark.kafka


def values(n: int, start: int = 0) -> list[bytes]:
    return [
        json.dumps({"id": f"lag-{i}", "text": f"post {i} #travel", "author": f"u{i % 9}"}).encode()
        for i in range(start, start + n)
    ]


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_the_probe_measures_what_the_group_has_not_consumed(
    kafka_bootstrap, model_dir, tmp_path, client
):
    scenario = KafkaScenario(kafka_bootstrap, model_dir, tmp_path / "logs", partitions=3)
    probe = GroupLagProbe(kafka_bootstrap, scenario.group, scenario.topics.posts, client)
    try:
        assert probe.measure() == 0
        scenario.produce(values(40))
        assert probe.measure() == 40  # a group that never committed: everything is behind
    finally:
        probe.close()
    away = GroupLagProbe(f"127.0.0.1:{free_port()}", "g", "t", client, timeout=1.0)
    assert away.measure() is None  # unknown, never a reassuring 0


def test_lag_builds_while_the_worker_is_stopped_then_the_alert_fires_and_resolves(
    kafka_bootstrap, bundle, model_dir, tmp_path
):
    scenario = KafkaScenario(kafka_bootstrap, model_dir, tmp_path / "logs", partitions=2)
    topics = scenario.topics
    config = run_config(
        model_dir,
        tmp_path / "instance",
        kafka_bootstrap=kafka_bootstrap,
        consumer_group=scenario.group,
        topic_posts=topics.posts,
        topic_scored=topics.scored,
        topic_dlq=topics.dlq,
        topic_socketio=topics.socketio,
        archive_url="off",
    )
    node = create_app(config)
    with node.app_context():
        alerts = services().hub.alerts
        # Minutes shortened to a second so the test takes seconds; the rules are the same.
        alerts.health = PipelineHealth(window_seconds=1.0, warmup_windows=2, min_lag=200)

        def lag_alert() -> dict | None:
            services()._measure_lag(True)
            found = alerts.recent(AlertFilter(subject="pipeline:consumer_lag"))
            return found[0] if found else None

        def measure_for(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                assert lag_alert() is None
                time.sleep(0.2)

        try:
            scenario.start_worker("w1")
            scenario.wait_until_sharing(["w1"])
            scenario.produce(values(50))
            wait_for(
                lambda: GroupLagProbe(kafka_bootstrap, scenario.group, topics.posts).measure() == 0,
                60,
                "the worker to consume",
            )
            measure_for(3.5)  # a healthy pipeline: windows close, nothing fires

            scenario.stop_all()  # the worker stops; posts keep coming
            scenario.produce(values(1500, start=50))
            wait_for(
                lambda: (a := lag_alert()) is not None and a["status"] == "open",
                30,
                "the consumer-lag alert",
            )
            fired = lag_alert()
            assert fired["observed"] >= 1500 and fired["kind"] == "pipeline_health"
            assert "the workers are 1,5" in fired["explanation"]

            scenario.start_worker("w2")  # back: the backlog drains
            wait_for(lambda: lag_alert()["status"] == "resolved", 120, "the lag alert to resolve")
            (resolved,) = alerts.recent(AlertFilter(subject="pipeline:consumer_lag"))
            assert resolved["id"] == fired["id"]
        finally:
            scenario.stop_all()
            services().stop()
