"""End to end: a burst produced into Kafka, scored by a worker, reaches a browser's alert
panel (and a toast) and a webhook receiver, signed; a receiver that hangs slows nothing."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from app.testing import KafkaScenario, running_server, wait_for
from app.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from tests.test_alerts import T0

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

SECRET = "webhook secret for the end-to-end test"


class Receiver:
    """A loopback webhook receiver; `hang` makes it hold every request until closed."""

    def __init__(self, hang: bool = False) -> None:
        self.received: list[tuple] = []
        self.release = threading.Event()
        if not hang:
            self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.release.wait(120)
                receiver.received.append((self.headers, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def raw_posts() -> list[dict]:
    """Two hours of calm posts, then #gatechange bursting out of nowhere."""
    posts = []
    for minute in range(130):
        at = T0 + timedelta(minutes=minute)
        for k in range(5):
            posts.append({"text": f"smooth flight {k} today #travel", "created_at": at})
        if minute >= 120:
            for k in range(5):
                text = f"gate changed again, nobody told us {k} #gatechange"
                posts.append({"text": text, "created_at": at + timedelta(seconds=k)})
    posts.append({"text": "hours later #travel", "created_at": T0 + timedelta(minutes=200)})
    return [
        {
            **p,
            "id": f"e2e-{i}",
            "author": f"user{i % 40}",
            "created_at": p["created_at"].isoformat(),
        }
        for i, p in enumerate(posts)
    ]


def test_a_burst_in_kafka_reaches_the_browser_and_a_webhook(
    kafka_bootstrap,
    bundle,
    model_dir,
    tmp_path,
    page,
):
    # One partition: a replay of old posts arrives in event-time order (see README, alerts).
    scenario = KafkaScenario(kafka_bootstrap, model_dir, tmp_path / "kafka", partitions=1)
    healthy, hanging = Receiver(), Receiver(hang=True)
    workdir = tmp_path / "web"
    workdir.mkdir()
    try:
        scenario.start_worker("w1")
        environ = scenario.env(
            SOCIALPULSE_EMIT_INTERVAL="0.2",
            SOCIALPULSE_WEBHOOK_URLS=f"{hanging.url},{healthy.url}",
            SOCIALPULSE_WEBHOOK_SECRET=SECRET,
        )
        with running_server(model_dir, workdir, **environ) as live:
            page.goto(live.url + "/")
            page.wait_for_selector("#alerts-empty", state="visible", timeout=20000)
            posts = raw_posts()
            values = [json.dumps(p).encode() for p in posts]
            scenario.produce(values, [p["author"].encode() for p in posts])
            wait_for(
                lambda: (
                    requests.get(live.url + "/healthz", timeout=5).json()["scored"] >= len(posts)
                ),
                90,
                "every post scored and shown",
            )
            page.wait_for_function(
                "() => [...document.querySelectorAll('#alerts-list .alert-item__text')]"
                ".some(e => e.textContent.startsWith('#gatechange: new, 50 posts in 10 min'))",
                timeout=30000,
            )
            toast = page.locator("#toasts .toast").first
            assert "gate" in toast.inner_text() or "new" in toast.inner_text()
            explore = page.locator("#alerts-list .alert-item__link")
            # Links to Explore only where the server has it.
            if page.get_attribute("#alerts-list", "data-explore") == "1":
                assert explore.first.get_attribute("href").startswith("/explore?")
            else:
                assert explore.count() == 0
            wait_for(lambda: healthy.received, 30, "the healthy receiver's webhook")
            # The hanging receiver holds its first delivery; the other got its copy anyway.
            assert not hanging.received
            subjects = set()
            for headers, body in healthy.received:
                assert verify_signature(
                    SECRET.encode(), headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER]
                )
                subjects.add(json.loads(body)["subject"])
            assert "#gatechange" in subjects
            api = requests.get(live.url + "/api/v1/alerts?subject=%23gatechange", timeout=5)
            assert [a["kind"] for a in api.json()["alerts"]] == ["emerging"]
            assert not page.problems, page.problems
    finally:
        healthy.close()
        hanging.close()
        scenario.stop_all()
