"""What both Kafka clients share: message encodings and the scored and dead-letter sinks.

The sinks need only a producer with `send(topic, value=, key=, headers=)` returning a future
(`get` raises the send's error), `flush` and `close`: kafka-python's `KafkaProducer` is one,
`streaming.confluent_io.ConfluentProducer` adapts librdkafka's to it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from streaming.records import ScoredPost
from streaming.sinks import DeadLetter, Sink

log = logging.getLogger(__name__)


class _ProducingSink(Sink):
    """Sends to one Kafka topic; `flush` raises if any send since the last flush failed."""

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self._futures: list = []

    def _send(self, value: bytes | None, key: bytes | None, headers=None) -> None:
        self._futures.append(self.producer.send(self.topic, value=value, key=key, headers=headers))

    def flush(self) -> None:
        futures, self._futures = self._futures, []
        self.producer.flush()
        for future in futures:
            future.get(timeout=0)  # raises the send's KafkaError, so the batch is not committed

    def close(self) -> None:
        self.flush()


def encode_scored(scored: ScoredPost) -> bytes:
    return orjson.dumps(scored.to_dict())


class KafkaScoredSink(_ProducingSink):
    """Scored posts to `posts.scored`, keyed by author like the raw topic."""

    def write(self, scored: Sequence[ScoredPost]) -> None:
        for item in scored:
            self._send(encode_scored(item), item.post.author.encode())


class KafkaDeadLetterSink(_ProducingSink):
    """Rejected input to `posts.dlq`, byte for byte, with the reason and origin in headers."""

    def reject(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            headers = [("reason", letter.reason.encode()), ("source", letter.source.encode())]
            headers += [(f"source.{k}", str(v).encode()) for k, v in letter.position.items()]
            value = encode_value(letter.value)
            # Kafka needs a key or a value: a keyless tombstone gets its origin as key.
            key = letter.key if letter.key is not None or value is not None else b"tombstone"
            self._send(value, key, headers)


def dead_letter_from(
    value: bytes | None, key: bytes | None, headers, timestamp_ms: int
) -> DeadLetter:
    """A dead-letter message back as the `DeadLetter` a worker wrote (see `reject`)."""
    fields = {name: raw.decode("utf-8", "replace") for name, raw in headers or ()}
    position = {k[len("source.") :]: v for k, v in fields.items() if k.startswith("source.")}
    return DeadLetter(
        value,
        fields.get("reason", ""),
        fields.get("source", "kafka"),
        position,
        timestamp_ms / 1000.0,
        key,
    )


def read_scored(value: bytes | None, where: tuple[str, int, int], out: list[ScoredPost]) -> None:
    """Append the scored post `value` holds to `out`; log and skip one that cannot be read."""
    try:
        out.append(ScoredPost.from_dict(orjson.loads(value)))
    except (ValueError, TypeError) as exc:
        log.warning("skipping unreadable scored post at %s-%d@%d: %s", *where, exc)


def encode_value(value: Mapping[str, Any] | bytes | str | None) -> bytes | None:
    """A message value as bytes: bytes and tombstones (None) as they are, text as UTF-8
    (even if it is not a post: workers dead-letter it), anything else as compact JSON."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()
