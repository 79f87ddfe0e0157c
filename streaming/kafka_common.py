"""What both Kafka clients share: the sources' offset bookkeeping, message encodings, and the
scored and dead-letter sinks.

The sinks need only a producer with `send(topic, value=, key=, headers=)` returning a future
(`get` raises the send's error), `flush` and `close`: kafka-python's `KafkaProducer` is one,
`streaming.confluent_io.ConfluentProducer` adapts librdkafka's to it.
"""

from __future__ import annotations

import json
import logging
import socket
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import orjson

from streaming.metrics import StreamMetrics
from streaming.records import ScoredPost
from streaming.sinks import DeadLetter, Sink
from streaming.sources import Source, SourceRecord

log = logging.getLogger(__name__)

Partition = tuple[str, int]  # (topic, partition)


class KafkaSourceBase(Source):
    """A consumer-group source's bookkeeping, whichever client reads: what a commit
    acknowledges, and where a rewind starts again.

    Values stay bytes here: decoding happens in the runner, so one bad record is a dead
    letter instead of an exception inside the client that would wedge its partition.
    Subclasses read, and commit, seek and list partitions with their client.
    """

    name = "kafka"
    # The client's errors that mean "not committed": the batch is read again.
    commit_errors: tuple[type[Exception], ...] = ()

    def __init__(self, metrics: StreamMetrics | None = None) -> None:
        self.metrics = metrics
        self._uncommitted: dict[Partition, int] = {}  # next offset to commit
        self._batch_start: dict[Partition, int] = {}  # first offset since last commit

    @abstractmethod
    def _commit_offsets(self, offsets: dict[Partition, int]) -> None:
        """Commit these next offsets, synchronously; raise the client's error on failure."""

    @abstractmethod
    def _seek(self, partition: Partition, offset: int) -> None:
        """Read `partition` again from `offset`."""

    @abstractmethod
    def assignment(self) -> list[Partition]:
        """The partitions this consumer holds now."""

    def _track(self, partition: Partition, first: int, last: int) -> None:
        """Offsets `first`..`last` of `partition` were handed out (in offset order)."""
        self._batch_start.setdefault(partition, first)
        self._uncommitted[partition] = last + 1

    @staticmethod
    def _record(
        topic: str,
        partition: int,
        offset: int,
        value,
        key,
        timestamp_ms: int,
        now: float,
        headers=None,
    ) -> SourceRecord:
        # The producer's timestamp, so end-to-end latency counts time spent in Kafka.
        received = timestamp_ms / 1000.0 if timestamp_ms > 0 else now
        return SourceRecord(
            value=value,
            received_at=min(received, now),
            position={"topic": topic, "partition": partition, "offset": offset},
            default_id=f"{topic}-{partition}-{offset}",
            key=key,
            headers=headers,
        )

    def checkpoint(self) -> dict[Partition, int]:
        return dict(self._uncommitted)

    def commit(self, checkpoint: object = None) -> bool:
        marks = self._uncommitted if checkpoint is None else cast(dict[Partition, int], checkpoint)
        # Not the partitions lost in a rebalance since: their new owner reads them again.
        offsets = {p: offset for p, offset in marks.items() if p in self._uncommitted}
        if not offsets:
            return True
        try:
            self._commit_offsets(offsets)
        except self.commit_errors as exc:
            # Typically a rebalance or a restarting broker: the posts will be delivered
            # again, to this worker or another one. Duplicates, never losses.
            if self.metrics is not None:
                self.metrics.commit_failures.inc()
            log.warning("commit failed (%s); rewinding to the last committed offsets", exc)
            self.rewind()
            return False
        for partition, offset in offsets.items():
            if self._uncommitted[partition] == offset:  # nothing newer read from it
                del self._uncommitted[partition]
                self._batch_start.pop(partition, None)
            else:
                self._batch_start[partition] = offset
        return True

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Drop uncommitted offsets of `partitions` (this consumer no longer owns them)."""
        for partition in partitions:
            self._uncommitted.pop(partition, None)
            self._batch_start.pop(partition, None)

    def rewind(self) -> None:
        """Read everything since the last commit again."""
        assigned = set(self.assignment())
        for partition, offset in self._batch_start.items():
            if partition in assigned:
                self._seek(partition, offset)
        self._uncommitted.clear()
        self._batch_start.clear()


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


class KafkaScoredSink(_ProducingSink):
    """Scored posts to `posts.scored`, keyed by author like the raw topic."""

    def write(self, scored: Sequence[ScoredPost]) -> None:
        for item in scored:
            self._send(item.to_json(), item.post.author.encode())


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


def broker_unreachable(bootstrap: str, timeout: float = 1.0) -> str | None:
    """Why no broker of `bootstrap` accepts a connection, or None if one does.

    A plain TCP connect, the same for both clients: they reconnect quietly by themselves,
    so their reads alone cannot tell an outage from a quiet topic.
    """
    errors = []
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
            return None
        except (OSError, ValueError) as exc:
            errors.append(f"{address.strip()}: {exc}")
    return "no Kafka broker reachable (" + "; ".join(errors) + ")"
