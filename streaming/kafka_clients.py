"""The two Kafka clients SocialPulse speaks through, chosen with one setting.

`confluent` (confluent-kafka, on librdkafka; the default) and `kafka-python` give the same
source, producer, topic creation and scored-topic reader; the sinks and the worker work with
either. Each client's library is imported only when it is chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KAFKA_CLIENTS = ("confluent", "kafka-python")
DEFAULT_KAFKA_CLIENT = "confluent"


@dataclass(frozen=True)
class KafkaClient:
    """What one client library provides, behind the same call signatures.

    Attributes:
        name: `confluent` or `kafka-python`.
        ensure_topics: `(bootstrap, topics, timeout=60.0)`: create missing topics.
        source: `(bootstrap, topic or topics, group, client_id=, batch_max_posts=, metrics=,
            headers=False)` → a `Source` in a consumer group, with `lag()`, `assignment()`
            and `forget()`; with `headers`, its records carry the message headers.
        producer: `(bootstrap, client_id, linger_ms=5)` → an idempotent producer with
            `send(topic, value=, key=, headers=)` returning a future, `flush()`, `close()`.
        reader: `(bootstrap, scored_topic, dlq_topic)` → `poll(timeout)` of scored posts
            and dead letters from every partition, for web nodes.
        error: the library's exception base class (a failed batch is retried on it).
        blocks_in_c: its calls wait inside C, out of reach of an event loop like gevent's.
    """

    name: str
    ensure_topics: Callable[..., None]
    source: Callable[..., Any]
    producer: Callable[..., Any]
    reader: Callable[..., Any]
    error: type[Exception]
    blocks_in_c: bool = False


def kafka_client(name: str = DEFAULT_KAFKA_CLIENT) -> KafkaClient:
    """The client called `name` (one of `KAFKA_CLIENTS`)."""
    if name == "confluent":
        from confluent_kafka import KafkaException

        from streaming import confluent_io

        return KafkaClient(
            name,
            confluent_io.ensure_topics,
            confluent_io.ConfluentKafkaSource,
            confluent_io.ConfluentProducer,
            confluent_io.ConfluentScoredTopicReader,
            KafkaException,
            blocks_in_c=True,
        )
    if name == "kafka-python":
        from kafka.errors import KafkaError

        from streaming import kafka_io

        return KafkaClient(
            name,
            kafka_io.ensure_topics,
            kafka_io.KafkaSource,
            kafka_io.make_producer,
            kafka_io.ScoredTopicReader,
            KafkaError,
        )
    raise ValueError(f"unknown Kafka client {name!r}: use one of {', '.join(KAFKA_CLIENTS)}")
