"""Several web nodes on one Kafka stream: the same numbers and posts on every node, and
Socket.IO messages shared between nodes through the Kafka message queue."""

from __future__ import annotations

import threading
from contextlib import ExitStack

import pytest
import requests
import socketio

from app.accounts import AccountStore
from app.testing import KafkaScenario, csrf_from, running_server, synthetic_values, wait_for

PASSWORD = "correct horse battery staple"

pytestmark = pytest.mark.kafka


class Viewer:
    """A dashboard client: the post ids and latest totals its updates carried."""

    def __init__(self, url: str) -> None:
        self.ids: set[str] = set()
        self.total = 0
        self.lock = threading.Lock()
        self.client = socketio.Client(reconnection=False)
        self.client.on("update", self._on_update, namespace="/live")
        self.client.connect(url, namespaces=["/live"], transports=["websocket"], wait_timeout=10)

    def _on_update(self, data: dict) -> None:
        with self.lock:
            self.ids |= {post["id"] for post in data.get("posts") or []}
            self.total = data["stats"]["total"]


@pytest.fixture
def scenario(kafka_bootstrap, bundle, model_dir, tmp_path):
    case = KafkaScenario(kafka_bootstrap, model_dir, tmp_path, partitions=2)
    yield case
    case.stop_all()


def test_two_nodes_show_the_same_updates_and_totals(scenario, model_dir, tmp_path):
    environ = scenario.env(SOCIALPULSE_EMIT_INTERVAL="0.2")
    scenario.start_worker("w1")
    with ExitStack() as stack:
        first = stack.enter_context(running_server(model_dir, node_dir(tmp_path, "a"), **environ))
        _, values, keys = synthetic_values(150, seed=61)
        scenario.produce(values, keys)
        wait_for(lambda: health(first)["scored"] >= 150, 60, "the first node's posts")
        # The second node starts later, yet rebuilds the same history from the stream.
        second = stack.enter_context(running_server(model_dir, node_dir(tmp_path, "b"), **environ))
        wait_for(lambda: health(second)["scored"] >= 150, 60, "the second node's history")
        viewers = [Viewer(first.url), Viewer(second.url)]
        stack.callback(lambda: [viewer.client.disconnect() for viewer in viewers])

        # Fewer posts per update than the feed holds, so every post reaches every viewer.
        late_ids, values, keys = synthetic_values(200, seed=62)
        scenario.produce(values, keys, rate=100)
        for viewer in viewers:
            wait_for(lambda v=viewer: set(late_ids) <= v.ids, 60, "every new post on each node")
            wait_for(lambda v=viewer: v.total == 350, 30, "the same total on each node")
        first_health, second_health = health(first), health(second)
        assert first_health["scored"] == second_health["scored"] == 350
        # A new viewer on either node gets the same charts: windows, clusters, trends.
        charts = [_snapshot(live.url) for live in (first, second)]
        for name in ("sentiment_series", "clusters", "trending"):
            assert charts[0][name] == charts[1][name], name
        assert charts[0]["stats"]["total"] == charts[1]["stats"]["total"] == 350


def node_dir(tmp_path, name: str):
    (tmp_path / name).mkdir()
    return tmp_path / name


def health(live) -> dict:
    return requests.get(live.url + "/healthz", timeout=5).json()


def _snapshot(url: str) -> dict:
    """The state a viewer gets on connecting."""
    snapshots: list[dict] = []
    client = socketio.Client(reconnection=False)
    client.on("update", snapshots.append, namespace="/live")
    client.connect(url, namespaces=["/live"], transports=["websocket"], wait_timeout=10)
    try:
        wait_for(lambda: snapshots, 10, "the snapshot")
    finally:
        client.disconnect()
    return snapshots[0]


def test_logging_out_on_one_node_signs_out_the_tabs_on_another(scenario, model_dir, tmp_path):
    """The Socket.IO message queue at work: a logout on the first node reaches the same
    login's dashboard on the second node."""
    instance = tmp_path / "shared-instance"  # accounts and session key, shared by the nodes
    instance.mkdir()
    AccountStore(instance / "accounts.sqlite3").add_user("vera", PASSWORD)
    environ = scenario.env(SOCIALPULSE_INSTANCE_DIR=str(instance))
    with ExitStack() as stack:
        first = stack.enter_context(running_server(model_dir, node_dir(tmp_path, "a"), **environ))
        second = stack.enter_context(running_server(model_dir, node_dir(tmp_path, "b"), **environ))
        browser = requests.Session()
        login = browser.get(first.url + "/login", timeout=5)
        form = {"csrf_token": csrf_from(login.text), "name": "vera", "password": PASSWORD}
        assert browser.post(first.url + "/login", data=form, timeout=10).ok
        cookie = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())

        signed_out = threading.Event()
        tab = socketio.Client(reconnection=False)
        tab.on("signed_out", lambda data: signed_out.set(), namespace="/live")
        tab.connect(
            second.url,
            headers={"Cookie": cookie},
            namespaces=["/live"],
            transports=["websocket"],
            wait_timeout=10,
        )
        stack.callback(tab.disconnect)
        stranger = socketio.Client(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            stranger.connect(second.url, namespaces=["/live"], transports=["websocket"])

        csrf = csrf_from(browser.get(first.url + "/", timeout=5).text)
        assert browser.post(first.url + "/logout", data={"csrf_token": csrf}, timeout=5).ok
        assert signed_out.wait(10), "the logout did not reach the other node"
