"""The micro-batching loop: source -> validation -> pipeline -> sinks -> commit."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from streaming.records import ScoredPost
from streaming.runner import StreamRunner
from streaming.sinks import DeadLetter, ListSink, Sink
from streaming.sources import ListSource, Source, SourceRecord


class TickingClock:
    """Wall time that starts at 1000 s and moves one second each time it is read."""

    def __init__(self) -> None:
        self.now = 999.0

    def time(self) -> float:
        self.now += 1.0
        return self.now

    monotonic = time

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class RecordingSource(ListSource):
    """The package's list source, counting what the runner asks of it."""

    def __init__(self, values: Sequence[Any], events: list[str] | None = None) -> None:
        super().__init__(values, clock=TickingClock())
        self.events = events if events is not None else []
        self.asked: list[int] = []
        self.commits = 0
        self.rewinds = 0

    def read_batch(self, batch_max_posts: int, batch_max_wait: float) -> list[SourceRecord]:
        self.asked.append(batch_max_posts)
        return super().read_batch(batch_max_posts, batch_max_wait)

    def commit(self, checkpoint: object = None) -> bool:
        self.commits += 1
        self.events.append("commit")
        return super().commit(checkpoint)

    def rewind(self) -> None:
        self.rewinds += 1
        super().rewind()


class RecordingSink(ListSink):
    """A ListSink that logs what happened, in order, and can fail on demand."""

    def __init__(self, events: list[str], fail_on: str | None = None) -> None:
        super().__init__()
        self.events = events
        self.fail_on = fail_on
        self.batch_sizes: list[int] = []

    def write(self, scored: Sequence[ScoredPost]) -> None:
        if self.fail_on == "write":
            raise OSError("disk full")
        self.events.append("write")
        self.batch_sizes.append(len(scored))
        super().write(scored)

    def reject(self, letters: Sequence[DeadLetter]) -> None:
        self.events.append("reject")
        super().reject(letters)

    def flush(self) -> None:
        if self.fail_on == "flush":
            raise OSError("broker unavailable")
        self.events.append("flush")


def make_runner(source: Source, pipeline, sinks: Sequence[Sink], **kwargs) -> StreamRunner:
    return StreamRunner(source, pipeline, sinks, batch_max_wait=0.01, learn=False, **kwargs)


def test_every_good_post_is_scored_once_in_order(pipeline, raw_posts):
    source = RecordingSource(raw_posts[:30])
    sink = ListSink()
    stats = make_runner(source, pipeline, [sink], batch_max_posts=7).run()
    assert [s.post.id for s in sink.scored] == [raw["id"] for raw in raw_posts[:30]]
    assert [s.post.text for s in sink.scored] == [raw["text"] for raw in raw_posts[:30]]
    assert sink.dead_letters == []
    assert stats.scored == 30
    assert stats.batches == 5
    assert source.commits == 5


def test_scored_posts_keep_when_they_were_received(pipeline, raw_posts):
    source = RecordingSource(raw_posts[:3])
    sink = ListSink()
    make_runner(source, pipeline, [sink]).run()
    assert [s.received_at for s in sink.scored] == [1000.0, 1001.0, 1002.0]
    assert all(s.model_version == pipeline.model_version for s in sink.scored)


def test_post_without_id_or_source_gets_the_record_defaults(pipeline):
    source = RecordingSource([{"text": "no id here"}])
    sink = ListSink()
    make_runner(source, pipeline, [sink]).run()
    (scored,) = sink.scored
    assert scored.post.id == "list-0"
    assert scored.post.source == "list"


def test_every_sink_gets_every_post(pipeline, raw_posts):
    sinks = [ListSink(), ListSink()]
    make_runner(RecordingSource(raw_posts[:5]), pipeline, sinks).run()
    assert [s.post.id for s in sinks[0].scored] == [s.post.id for s in sinks[1].scored]
    assert len(sinks[1].scored) == 5


def test_bad_records_become_dead_letters_with_reason_and_position(pipeline, raw_posts):
    values = [
        raw_posts[0],
        b"{not json",
        {"text": ""},
        raw_posts[1],
        {"text": "hi", "likes": 3},
        b"\xff\xfe",
        None,
        {"text": "hi", "author_followers": "12"},
        raw_posts[2],
    ]
    source = RecordingSource(values)
    sink = ListSink()
    stats = make_runner(source, pipeline, [sink]).run()
    assert [s.post.id for s in sink.scored] == [r["id"] for r in raw_posts[:3]]
    letters = sink.dead_letters
    assert [letter.position for letter in letters] == [{"index": i} for i in (1, 2, 4, 5, 6, 7)]
    reasons = [letter.reason for letter in letters]
    for reason, expected in zip(
        reasons,
        [
            "not valid JSON",
            "'text' is empty",
            "unknown field(s) 'likes'",
            "not valid UTF-8",
            "no value",
            "'author_followers' must be a whole number",
        ],
        strict=True,
    ):
        assert expected in reason
    assert letters[0].value == b"{not json"
    assert all(letter.source == "list" for letter in letters)
    assert letters[0].received_at == 1001.0
    assert (stats.scored, stats.dead_lettered) == (3, 6)
    assert source.commits == 1  # dead letters do not stop the batch from being acknowledged


def test_a_batch_of_only_bad_records_is_still_committed(pipeline):
    source = RecordingSource([b"", b"[]"])
    sink = ListSink()
    make_runner(source, pipeline, [sink]).run()
    assert sink.scored == []
    assert len(sink.dead_letters) == 2
    assert source.commits == 1


def test_micro_batches_are_capped_by_max_batch(pipeline, raw_posts):
    events: list[str] = []
    source = RecordingSource(raw_posts[:10], events)
    sink = RecordingSink(events)
    make_runner(source, pipeline, [sink], batch_max_posts=4).run()
    assert sink.batch_sizes == [4, 4, 2]
    assert set(source.asked) == {4}


def test_commit_comes_after_every_sink_wrote_and_flushed(pipeline, raw_posts):
    events: list[str] = []
    source = RecordingSource([*raw_posts[:3], b"bad"], events)
    sinks = [RecordingSink(events), RecordingSink(events)]
    make_runner(source, pipeline, sinks, batch_max_posts=2).run()
    assert events == [
        "write", "write",
        # The next batch is read and scored before the first one is flushed and committed.
        "flush", "flush", "commit", "write", "reject", "write", "reject",
        "flush", "flush", "commit",  # the source ran dry: the last batch is settled
    ]  # fmt: skip


def test_the_next_batch_is_read_before_the_last_one_is_committed(pipeline, raw_posts):
    events: list[str] = []
    source = RecordingSource(raw_posts[:4], events)
    original_read = source.read_batch

    def read_batch(batch_max_posts: int, batch_max_wait: float):
        events.append("read")
        return original_read(batch_max_posts, batch_max_wait)

    source.read_batch = read_batch
    runner = make_runner(source, pipeline, [RecordingSink(events)], batch_max_posts=2)
    runner.run_once()
    runner.run_once()
    assert events == ["read", "write", "read", "flush", "commit", "write"]
    assert len(source._uncommitted) == 2  # the second batch waits for the next settle
    runner.settle()
    assert events[-2:] == ["flush", "commit"]
    assert len(source._uncommitted) == 0


def test_a_failing_write_means_no_commit_and_the_batch_comes_again(pipeline, raw_posts):
    events: list[str] = []
    source = RecordingSource(raw_posts[:3], events)
    runner = make_runner(source, pipeline, [RecordingSink(events), RecordingSink(events, "write")])
    with pytest.raises(OSError):
        runner.run_once()
    assert (source.commits, source.rewinds, runner.stats.scored) == (0, 1, 0)
    assert [r.value for r in source.read_batch(10, 0.0)] == raw_posts[:3]


def test_a_failing_flush_means_no_commit_and_the_batch_comes_again(pipeline, raw_posts):
    events: list[str] = []
    source = RecordingSource(raw_posts[:3], events)
    runner = make_runner(source, pipeline, [RecordingSink(events), RecordingSink(events, "flush")])
    runner.run_once()  # written; the flush comes with the next batch or when settling
    with pytest.raises(OSError):
        runner.settle()
    assert (source.commits, source.rewinds) == (0, 1)
    assert "commit" not in events
    assert [r.value for r in source.read_batch(10, 0.0)] == raw_posts[:3]


class FailingOnce:
    """A scorer whose `fail_on`-th call raises, like a model that breaks on one batch."""

    def __init__(self, pipeline, fail_on: int) -> None:
        self.pipeline, self.fail_on, self.calls = pipeline, fail_on, 0
        self.model_version = pipeline.model_version

    def score_batch(self, posts, learn=False, received_at=None):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("model broke")
        return self.pipeline.score_batch(posts, learn=learn, received_at=received_at)


def test_a_failing_batch_keeps_the_one_written_before_it(pipeline, raw_posts):
    source = RecordingSource(raw_posts[:4])
    sink = ListSink()
    runner = make_runner(source, FailingOnce(pipeline, 2), [sink], batch_max_posts=2)
    runner.run_once()
    with pytest.raises(RuntimeError):
        runner.run_once()
    assert (source.commits, source.rewinds) == (1, 1)  # batch 1 committed, batch 2 rewound
    runner.run()
    # Every post written exactly once: nothing before the failure is written again.
    assert [s.post.id for s in sink.scored] == [r["id"] for r in raw_posts[:4]]


def test_run_stops_when_the_source_is_exhausted(pipeline, raw_posts):
    source = RecordingSource(raw_posts[:12])
    sink = ListSink()
    done = threading.Event()

    def run() -> None:
        make_runner(source, pipeline, [sink], batch_max_posts=5).run()
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert done.wait(10.0), "run() did not return after the source ran out"
    assert len(sink.scored) == 12
    assert source.exhausted


def test_run_stops_when_asked(pipeline, raw_posts):
    stop = threading.Event()
    stop.set()
    source = RecordingSource(raw_posts[:5])
    sink = ListSink()
    stats = make_runner(source, pipeline, [sink]).run(stop)
    assert stats.batches == 0
    assert sink.scored == []


def test_run_once_on_an_empty_read_does_nothing(pipeline):
    source = RecordingSource([])
    runner = make_runner(source, pipeline, [ListSink()])
    assert runner.run_once() == 0
    assert source.commits == 0  # nothing was written, so nothing to settle


def test_posts_dated_far_ahead_of_the_clock_are_dead_letters(pipeline):
    from datetime import UTC, datetime, timedelta

    soon = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    values = [
        {"id": "future", "text": "from 2099", "created_at": "2099-01-01T00:00:00Z"},
        {"id": "soon", "text": "a minute ahead: clocks differ", "created_at": soon},
        {"id": "old", "text": "a replayed post", "created_at": "2015-02-16T10:00:00Z"},
    ]
    sink = ListSink()
    make_runner(RecordingSource(values), pipeline, [sink], max_clock_skew=300).run()
    assert [s.post.id for s in sink.scored] == ["soon", "old"]
    (letter,) = sink.dead_letters
    assert "ahead of the clock" in letter.reason and "2099-01-01" in letter.reason
    assert letter.value == values[0]
