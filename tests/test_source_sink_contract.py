"""The contract every source and every sink keeps, checked the same way for each.

Sources: batches in order and capped, commit and rewind (what was not committed comes again,
what was committed never does), empty input, and exhaustion of finite sources. Sinks: empty
batches are harmless, everything written is there after `flush`, in order, and `close`
flushes. Kafka's source and sinks run against the real broker that `make test` starts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select

from app.aggregates import LiveAggregates
from app.live import DashboardSink
from app.testing import read_topic, wait_for
from archive.schema import dead_letters, posts
from archive.sink import ArchiveKeeper, ArchiveSink
from archive.store import ArchiveStore
from streaming.kafka_clients import KAFKA_CLIENTS, kafka_client
from streaming.kafka_common import KafkaDeadLetterSink, KafkaScoredSink
from streaming.records import ScoredPost
from streaming.sinks import DeadLetter, ListSink, LogDeadLetterSink, Sink
from streaming.sources import FileSource, ListSource, Source, SourceRecord, SyntheticSource
from streaming.topics import Topics

N_POSTS = 25
BATCH = 7


# -- sources ------------------------------------------------------------------------------------
@dataclass
class SourceCase:
    """A source holding known posts, and the texts it must deliver, in order."""

    source: Source
    expected: list[str]
    finite: bool = True


def raw_values(n: int) -> list[dict[str, Any]]:
    return [{"id": f"p{i}", "text": f"post number {i}", "author": f"a{i % 3}"} for i in range(n)]


def list_case(request, n: int) -> SourceCase:
    values = raw_values(n)
    return SourceCase(ListSource(values), [v["text"] for v in values])


def synthetic_case(request, n: int) -> SourceCase:
    expected = SyntheticSource(rate=0, seed=5, limit=n).read_batch(n + 1, 1.0)
    return SourceCase(SyntheticSource(rate=0, seed=5, limit=n), [r.value["text"] for r in expected])


def file_case(request, n: int) -> SourceCase:
    path = request.getfixturevalue("tmp_path") / "posts.jsonl"
    values = raw_values(n)
    path.write_text("".join(json.dumps(v) + "\n" for v in values))
    return SourceCase(FileSource(path, speed=0), [v["text"] for v in values])


def kafka_case(request, n: int, client_name: str) -> SourceCase:
    client = kafka_client(client_name)
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    prefix = "c" + uuid.uuid4().hex[:10]
    topics = Topics(f"{prefix}.posts", f"{prefix}.scored", f"{prefix}.dlq", 1)  # one order
    client.ensure_topics(bootstrap, topics)
    values = raw_values(n)
    producer = client.producer(bootstrap, "contract-test")
    for value in values:
        producer.send(topics.posts, value=json.dumps(value).encode(), key=b"k")
    producer.flush()
    producer.close()
    source = client.source(bootstrap, topics.posts, f"{prefix}-group", batch_max_posts=BATCH)
    request.addfinalizer(source.close)
    return SourceCase(source, [v["text"] for v in values], finite=False)


SOURCES: dict[str, Callable[[Any, int], SourceCase]] = {
    "list": list_case,
    "synthetic": synthetic_case,
    "file": file_case,
}
SOURCE_PARAMS = [
    *SOURCES,
    *(pytest.param(f"kafka:{c}", marks=pytest.mark.kafka) for c in KAFKA_CLIENTS),
]


def make_source(name: str, request, n: int = N_POSTS) -> SourceCase:
    if name.startswith("kafka:"):
        return kafka_case(request, n, name.split(":", 1)[1])
    return SOURCES[name](request, n)


def text_of(record: SourceRecord) -> str:
    value = record.value
    if isinstance(value, (bytes, str)):
        value = json.loads(value)
    return value["text"]


def read_texts(source: Source, count: int, timeout: float = 60.0) -> list[str]:
    """`count` records' texts in batches of at most BATCH (a broker may need a few polls)."""
    texts: list[str] = []
    deadline = time.monotonic() + timeout
    while len(texts) < count and time.monotonic() < deadline:
        batch = source.read_batch(min(BATCH, count - len(texts)), 0.2)
        assert len(batch) <= BATCH, "a batch never exceeds batch_max_posts"
        texts += [text_of(r) for r in batch]
        if not batch and source.exhausted:
            break
    return texts


@pytest.mark.parametrize("name", SOURCE_PARAMS)
def test_source_delivers_every_post_in_order_in_capped_batches(name, request):
    case = make_source(name, request)
    got: list[str] = []
    while len(got) < len(case.expected):
        batch = read_texts(case.source, min(BATCH, len(case.expected) - len(got)))
        assert batch, f"the source stopped after {len(got)} of {len(case.expected)} posts"
        got += batch
        case.source.commit()
    assert got == case.expected
    if case.finite:
        assert case.source.read_batch(BATCH, 0.05) == []
        assert case.source.exhausted


@pytest.mark.parametrize("name", SOURCE_PARAMS)
def test_source_rewind_delivers_what_was_not_committed_and_nothing_else(name, request):
    case = make_source(name, request)
    first = read_texts(case.source, BATCH)
    case.source.commit()
    second = read_texts(case.source, BATCH)
    assert first + second == case.expected[: 2 * BATCH]
    case.source.rewind()
    assert read_texts(case.source, BATCH) == second, "the uncommitted batch comes again"
    case.source.commit()
    rest = read_texts(case.source, len(case.expected) - 2 * BATCH)
    assert first + second + rest == case.expected, "a committed batch never comes again"


@pytest.mark.parametrize("name", SOURCE_PARAMS)
def test_source_commits_up_to_a_checkpoint_taken_before_the_next_read(name, request):
    # How the runner overlaps: batch 1 is committed while batch 2 is already read.
    case = make_source(name, request)
    first = read_texts(case.source, BATCH)
    after_first = case.source.checkpoint()
    second = read_texts(case.source, BATCH)
    assert case.source.commit(after_first) is True
    case.source.rewind()
    assert read_texts(case.source, BATCH) == second, "only the batch after the mark comes again"
    after_second = case.source.checkpoint()
    third = read_texts(case.source, BATCH)
    case.source.commit(after_second)
    case.source.commit(after_second)  # committing the same mark twice changes nothing
    case.source.rewind()
    assert read_texts(case.source, BATCH) == third
    case.source.commit()
    rest = read_texts(case.source, len(case.expected) - 3 * BATCH)
    assert first + second + third + rest == case.expected


@pytest.mark.parametrize("name", SOURCE_PARAMS)
def test_source_commit_and_rewind_before_reading_are_harmless(name, request):
    case = make_source(name, request)
    case.source.commit()
    case.source.rewind()
    case.source.rewind()
    assert read_texts(case.source, len(case.expected)) == case.expected


@pytest.mark.parametrize("name", SOURCE_PARAMS)
def test_source_with_no_posts_gives_empty_batches(name, request):
    case = make_source(name, request, n=0)
    assert case.source.read_batch(BATCH, 0.2) == []
    case.source.commit()
    case.source.rewind()
    assert case.source.read_batch(BATCH, 0.2) == []
    assert case.source.exhausted == case.finite


@pytest.mark.parametrize("name", SOURCES)  # Kafka topics never end
def test_finite_source_is_exhausted_only_when_nothing_is_left_to_deliver(name, request):
    case = make_source(name, request, n=BATCH)
    assert not case.source.exhausted
    assert read_texts(case.source, BATCH) == case.expected
    # A lazy source (a file, a generator) knows it is done once a read finds nothing more.
    assert case.source.read_batch(BATCH, 0.05) == []
    assert case.source.exhausted
    case.source.rewind()
    assert not case.source.exhausted, "a rewound batch is still to be delivered"
    assert read_texts(case.source, BATCH) == case.expected
    case.source.commit()
    assert case.source.exhausted


# -- sinks --------------------------------------------------------------------------------------
@dataclass
class SinkCase:
    """A sink, what kinds of records it takes, and how to see what it received."""

    sink: Sink
    takes_scored: bool
    takes_letters: bool
    observe: Callable[[], tuple[list[str], list[str]]]  # (scored ids, dead-letter reasons)


def list_sink(request) -> SinkCase:
    sink = ListSink()
    return SinkCase(
        sink,
        True,
        True,
        lambda: ([s.post.id for s in sink.scored], [d.reason for d in sink.dead_letters]),
    )


def log_sink(request) -> SinkCase:
    caplog = request.getfixturevalue("caplog")
    caplog.set_level(logging.WARNING, logger="streaming.sinks")

    def observe():
        reasons = [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records]
        return [], reasons

    return SinkCase(LogDeadLetterSink(), False, True, observe)


def dashboard_sink(request) -> SinkCase:
    aggregates = LiveAggregates()
    shown: list[str] = []

    def observe():  # the dashboard keeps how many dead letters there were, not why
        update = aggregates.take_update()
        shown.extend(p["id"] for p in reversed(update["posts"]))  # the feed is newest first
        assert update["stats"]["total"] == len(shown)
        return list(shown), [f"letter {i}" for i in range(aggregates.dead_lettered)]

    return SinkCase(DashboardSink(aggregates), True, True, observe)


def archive_sink(request) -> SinkCase:
    """The archive writes behind the stream: `flush` does not wait for the database (the
    stream must not stall with it), so what it received is read once the writer drained."""
    store = ArchiveStore(f"sqlite:///{request.getfixturevalue('tmp_path') / 'archive.sqlite3'}")
    sink = ArchiveSink(ArchiveKeeper(store))
    writer = threading.Thread(target=sink.run, daemon=True)
    writer.start()
    request.addfinalizer(store.close)
    request.addfinalizer(sink.close)

    def observe():
        wait_for(lambda: sink.keeper.ready, 10, "the archive's schema")
        assert sink.drain(10)
        with store.engine.connect() as connection:
            ids = connection.execute(select(posts.c.id).order_by(posts.c.first_seen_at)).scalars()
            reasons = connection.execute(
                select(dead_letters.c.reason).order_by(dead_letters.c.first_seen_at)
            ).scalars()
            return list(ids), list(reasons)

    return SinkCase(sink, True, True, observe)


def kafka_topics(request, client_name: str) -> tuple[str, Topics, Any]:
    client = kafka_client(client_name)
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    prefix = "s" + uuid.uuid4().hex[:10]
    topics = Topics(f"{prefix}.posts", f"{prefix}.scored", f"{prefix}.dlq", 1)
    client.ensure_topics(bootstrap, topics)
    producer = client.producer(bootstrap, "contract-test")
    request.addfinalizer(producer.close)
    return bootstrap, topics, producer


def kafka_scored_sink(request, client_name: str) -> SinkCase:
    bootstrap, topics, producer = kafka_topics(request, client_name)

    def observe():
        messages = read_topic(bootstrap, topics.scored, lambda m: False, timeout=2.0)
        return [json.loads(m.value)["id"] for m in messages], []

    return SinkCase(KafkaScoredSink(producer, topics.scored), True, False, observe)


def kafka_dead_letter_sink(request, client_name: str) -> SinkCase:
    bootstrap, topics, producer = kafka_topics(request, client_name)

    def observe():
        messages = read_topic(bootstrap, topics.dlq, lambda m: False, timeout=2.0)
        return [], [dict(m.headers)["reason"].decode() for m in messages]

    return SinkCase(KafkaDeadLetterSink(producer, topics.dlq), False, True, observe)


SINKS: dict[str, Callable[[Any], SinkCase]] = {
    "list": list_sink,
    "log-dead-letters": log_sink,
    "dashboard": dashboard_sink,
    "archive": archive_sink,
    **{
        f"kafka-{kind}:{client}": partial(make, client_name=client)
        for kind, make in (("scored", kafka_scored_sink), ("dead-letters", kafka_dead_letter_sink))
        for client in KAFKA_CLIENTS
    },
}
SINK_PARAMS = [
    name if not name.startswith("kafka") else pytest.param(name, marks=pytest.mark.kafka)
    for name in SINKS
]


@pytest.fixture
def scored(pipeline, sample_posts) -> list[ScoredPost]:
    return pipeline.score_batch(sample_posts[:12])


def letters(n: int) -> list[DeadLetter]:
    return [DeadLetter(b"not json", f"letter {i}", "test", {"offset": i}) for i in range(n)]


def expected(case: SinkCase, scored: list[ScoredPost], n_letters: int):
    return (
        [s.post.id for s in scored] if case.takes_scored else [],
        [d.reason for d in letters(n_letters)] if case.takes_letters else [],
    )


@pytest.mark.parametrize("name", SINK_PARAMS)
def test_sink_keeps_everything_written_in_order_once_flushed(name, request, scored):
    case = SINKS[name](request)
    case.sink.write(scored[:5])
    case.sink.reject(letters(2))
    case.sink.write(scored[5:])
    case.sink.reject(letters(3)[2:])
    case.sink.flush()
    assert case.observe() == expected(case, scored, 3)


@pytest.mark.parametrize("name", SINK_PARAMS)
def test_sink_takes_empty_batches_and_empty_flushes(name, request):
    case = SINKS[name](request)
    case.sink.write([])
    case.sink.reject([])
    case.sink.flush()
    case.sink.flush()
    assert case.observe() == ([], [])


@pytest.mark.parametrize("name", SINK_PARAMS)
def test_sink_close_flushes_what_was_written(name, request, scored):
    case = SINKS[name](request)
    case.sink.write(scored)
    case.sink.reject(letters(2))
    case.sink.close()
    assert case.observe() == expected(case, scored, 2)


@pytest.mark.kafka
def test_both_clients_place_an_author_on_the_same_partition(kafka_bootstrap):
    """Keyed by author, a post lands where the other client would put it (murmur2)."""
    prefix = "k" + uuid.uuid4().hex[:10]
    topics = Topics(f"{prefix}.posts", f"{prefix}.scored", f"{prefix}.dlq", 6)
    kafka_client().ensure_topics(kafka_bootstrap, topics)
    keys = [f"author{i}".encode() for i in range(60)]
    placed: dict[str, dict[bytes, int]] = {}
    for name in KAFKA_CLIENTS:
        client = kafka_client(name)
        producer = client.producer(kafka_bootstrap, "placement-test")
        for key in keys:
            producer.send(topics.posts, value=name.encode(), key=key)
        producer.flush()
        producer.close()
    messages = read_topic(kafka_bootstrap, topics.posts, lambda ms: len(ms) >= 120, 30)
    for m in messages:
        placed.setdefault(m.value.decode(), {})[m.key] = m.partition
    assert placed["confluent"] == placed["kafka-python"]
    assert len(set(placed["confluent"].values())) == 6
