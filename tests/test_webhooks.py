"""Webhook delivery against real HTTP receivers on loopback: signatures, retries, dead
letters, and a stream that never waits."""

from __future__ import annotations

import json
import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.testing import wait_for
from app.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    verify_signature,
)

SECRET = b"shared webhook secret"


class Receiver:
    """A loopback HTTP server answering POSTs with the statuses it is told, in order."""

    def __init__(self, statuses: list[int] | None = None, default: int = 200) -> None:
        self.statuses = list(statuses or [])
        self.default = default
        self.requests: list[tuple[Message, bytes]] = []
        self.release = threading.Event()
        self.release.set()
        self.blocked = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not receiver.release.is_set():
                    receiver.blocked.set()
                    receiver.release.wait(30)
                receiver.requests.append((self.headers, body))
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.default
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(*args, **kwargs) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def sender(tmp_path: Path, *urls: str, **options) -> WebhookSender:
    options = {"backoff": 0.01, "max_backoff": 0.05, "timeout": 5.0, **options}
    return WebhookSender(urls, SECRET, tmp_path / "dead.jsonl", **options).start()


def dead_letters(tmp_path: Path) -> list[dict]:
    path = tmp_path / "dead.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_an_alert_arrives_signed(receivers, tmp_path):
    receiver = receivers()
    hooks = sender(tmp_path, receiver.url)
    hooks.send("alert", {"id": "a1", "explanation": "#delayed: 400 posts in 10 min"})
    wait_for(lambda: receiver.requests, 10, "the delivery")
    hooks.stop()
    headers, body = receiver.requests[0]
    assert json.loads(body) == {"explanation": "#delayed: 400 posts in 10 min", "id": "a1"}
    assert headers["Content-Type"] == "application/json"
    assert headers["X-SocialPulse-Event"] == "alert"
    timestamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert verify_signature(SECRET, timestamp, body, signature)
    assert not verify_signature(SECRET, timestamp, body + b" ", signature)
    assert not verify_signature(b"another secret", timestamp, body, signature)
    assert not verify_signature(SECRET, timestamp, body, signature, now=float(timestamp) + 301)
    assert not verify_signature(SECRET, "not a time", body, signature)
    assert hooks.counts["delivered"] == 1 and dead_letters(tmp_path) == []


def test_failures_are_retried_with_the_same_delivery_id(receivers, tmp_path):
    receiver = receivers([503, 429])
    hooks = sender(tmp_path, receiver.url)
    hooks.send("alert", {"id": "a2"})
    wait_for(lambda: len(receiver.requests) == 3, 10, "two retries")
    hooks.stop()
    assert len({headers[DELIVERY_HEADER] for headers, _ in receiver.requests}) == 1
    assert hooks.counts == {"retried": 2, "delivered": 1}


def test_a_receiver_that_keeps_failing_ends_in_the_dead_letters(receivers, tmp_path):
    failing = receivers(default=500)
    refusing = receivers(default=400)
    hooks = sender(tmp_path, failing.url, refusing.url, attempts=3)
    hooks.send("alert", {"id": "a3"})
    wait_for(lambda: len(dead_letters(tmp_path)) == 2, 10, "two dead letters")
    hooks.stop()
    letters = {letter["url"]: letter for letter in dead_letters(tmp_path)}
    assert letters[failing.url]["attempts"] == 3 and letters[failing.url]["error"] == "HTTP 500"
    assert letters[refusing.url]["attempts"] == 1  # a 400 is not worth another try
    assert letters[failing.url]["payload"] == {"id": "a3"}
    assert len(failing.requests) == 3 and len(refusing.requests) == 1


def test_a_hanging_receiver_delays_neither_the_stream_nor_the_other_receivers(receivers, tmp_path):
    hanging, healthy = receivers(), receivers()
    hanging.release.clear()
    hooks = sender(tmp_path, hanging.url, healthy.url, queue_size=2)
    for number in range(5):
        hooks.send("alert", {"id": number})  # returns while the first receiver hangs
        wait_for(lambda n=number: len(healthy.requests) > n, 10, "a healthy delivery")
        wait_for(hanging.blocked.is_set, 10, "the first delivery to hang")
    assert hanging.blocked.is_set() and not hanging.requests
    # One in flight, two queued: the other two found the hanging receiver's queue full.
    assert [letter["payload"]["id"] for letter in dead_letters(tmp_path)] == [3, 4]
    hanging.release.set()
    wait_for(lambda: len(hanging.requests) == 3, 10, "the hanging receiver's backlog")
    hooks.stop()


def test_stopping_dead_letters_what_is_still_queued(receivers, tmp_path):
    hanging = receivers()
    hanging.release.clear()
    hooks = sender(tmp_path, hanging.url, timeout=0.5, attempts=1)
    for number in range(3):
        hooks.send("alert", {"id": number})
    wait_for(hanging.blocked.is_set, 10, "the first delivery")
    hooks.stop(timeout=5)
    ids = sorted(letter["payload"]["id"] for letter in dead_letters(tmp_path))
    assert ids == [0, 1, 2]  # the first timed out, the others were never sent


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="http"):
        WebhookSender(["file:///etc/passwd"], SECRET, tmp_path / "d")
    with pytest.raises(ValueError, match="http"):
        WebhookSender(["javascript:alert(1)"], SECRET, tmp_path / "d")
    with pytest.raises(ValueError, match="secret"):
        WebhookSender(["http://127.0.0.1:9/x"], b"", tmp_path / "d")
