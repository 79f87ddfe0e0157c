"""Alerts delivered to webhooks: signed JSON POSTs, retried with backoff, never waited on.

Each receiver has its own queue and delivery thread (a greenlet under the gevent server),
so a slow or failing receiver delays nobody else, and `send` only enqueues: the stream
never waits on a webhook. A delivery that keeps failing, or that finds its receiver's
queue full, is appended to a dead-letter file (JSON lines) with its last error.

Every request carries:
- `X-SocialPulse-Event` (e.g. `alert`) and `X-SocialPulse-Delivery` (a unique id, the same
  on every retry, so a receiver can drop repeats);
- `X-SocialPulse-Timestamp` (Unix seconds) and `X-SocialPulse-Signature`:
  `sha256=` + hex HMAC-SHA256 of `<timestamp>.<body>` with the shared secret.
  `verify_signature` checks one, refusing stale timestamps (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-SocialPulse-Signature"
TIMESTAMP_HEADER = "X-SocialPulse-Timestamp"
DELIVERY_HEADER = "X-SocialPulse-Delivery"
EVENT_HEADER = "X-SocialPulse-Event"
# Answers worth another try; any other 4xx means the receiver refuses this payload.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return "sha256=" + digest


def verify_signature(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        sent = float(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a webhook URL must be http(s)://host/…, not {url!r}")
    return url


@dataclass(frozen=True)
class Delivery:
    id: str
    event: str
    body: bytes


class WebhookSender:
    """Delivers events to every receiver in `urls`.

    Args:
        urls: receivers; each gets every event.
        secret: the HMAC key shared with the receivers.
        dead_letters: JSON-lines file of the deliveries given up on.
        attempts: tries per delivery before it is given up on.
        backoff: seconds before the first retry; doubled each time (with jitter), at most
            `max_backoff`.
        timeout: seconds one request may take.
        queue_size: deliveries waiting per receiver; more are dead-lettered at once.
    """

    def __init__(
        self,
        urls: Sequence[str],
        secret: bytes,
        dead_letters: Path,
        *,
        attempts: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        timeout: float = 5.0,
        queue_size: int = 1000,
    ) -> None:
        if not secret:
            raise ValueError("webhooks need a signing secret")
        self.urls = [check_url(u) for u in urls]
        self.secret = secret
        self.dead_letters = Path(dead_letters)
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.counts: Counter[str] = Counter()  # delivered, retried, dead_lettered
        self._queues = {url: queue.Queue(maxsize=queue_size) for url in self.urls}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._file_lock = threading.Lock()

    def start(self) -> WebhookSender:
        for url in self.urls:
            thread = threading.Thread(
                target=self._deliver_forever, args=(url,), name="webhook", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the requests in flight; what is still queued is dead-lettered."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        for url, waiting in self._queues.items():
            while True:
                try:
                    delivery = waiting.get_nowait()
                except queue.Empty:
                    break
                self._give_up(url, delivery, 0, "not delivered before the server stopped")

    def send(self, event: str, payload: dict[str, Any]) -> None:
        """Queue `payload` for every receiver; returns at once."""
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        delivery = Delivery(str(uuid.uuid4()), event, body)
        for url, waiting in self._queues.items():
            try:
                waiting.put_nowait(delivery)
            except queue.Full:
                self._give_up(url, delivery, 0, "the receiver's queue is full")

    # -- delivery ---------------------------------------------------------------------------

    def _deliver_forever(self, url: str) -> None:
        waiting = self._queues[url]
        while not self._stop.is_set():
            try:
                delivery = waiting.get(timeout=0.2)
            except queue.Empty:
                continue
            self._deliver(url, delivery)

    def _deliver(self, url: str, delivery: Delivery) -> None:
        error = ""
        for attempt in range(1, self.attempts + 1):
            retry, error = self._post(url, delivery)
            if not error:
                self.counts["delivered"] += 1
                return
            if not retry or attempt == self.attempts:
                break
            self.counts["retried"] += 1
            pause = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
            if self._stop.wait(pause * random.uniform(0.8, 1.2)):
                break
        self._give_up(url, delivery, attempt, error)

    def _post(self, url: str, delivery: Delivery) -> tuple[bool, str]:
        """(worth retrying, error); no error means delivered."""
        timestamp = str(int(time.time()))
        request = urllib.request.Request(
            url,
            data=delivery.body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "SocialPulse-Webhook",
                EVENT_HEADER: delivery.event,
                DELIVERY_HEADER: delivery.id,
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(self.secret, timestamp, delivery.body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read(65536)
            return False, ""
        except urllib.error.HTTPError as exc:
            return exc.code in RETRY_STATUSES, f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:  # refused, reset, timed out, bad answer
            return True, f"{type(exc).__name__}: {exc}"

    def _give_up(self, url: str, delivery: Delivery, attempts: int, error: str) -> None:
        self.counts["dead_lettered"] += 1
        log.warning("webhook %s: gave up on delivery %s: %s", url, delivery.id, error)
        record = {
            "url": url,
            "delivery": delivery.id,
            "event": delivery.event,
            "attempts": attempts,
            "error": error,
            "failed_at": time.time(),
            "payload": json.loads(delivery.body),
        }
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._file_lock:
            self.dead_letters.parent.mkdir(parents=True, exist_ok=True)
            with self.dead_letters.open("a", encoding="utf-8") as handle:
                handle.write(line)
