"""The archive on both engines: idempotent upserts, first arrival kept, dead letters,
retention, hostile text, migrations, and the sink through a database outage."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.aggregates import LiveAggregates
from app.config import Config, ConfigError
from archive.schema import metadata, posts
from archive.search import SEARCH_NAMES
from archive.sink import ArchiveKeeper, ArchiveSink
from archive.store import MIGRATIONS, ArchiveStore, normalise_url, post_row, redact
from streaming.records import ScoredPost
from streaming.sinks import DeadLetter
from tests.conftest import postgres_schema, postgres_url, with_schema

DAY = 86_400.0


@pytest.fixture
def scored(pipeline, sample_posts) -> list[ScoredPost]:
    return pipeline.score_batch(sample_posts[:60])


def test_the_same_post_twice_is_stored_and_counted_once(store, scored):
    store.write(scored[:10])
    store.write(scored[:10])  # redelivered
    store.write(scored[5:20] + scored[5:20])  # and twice within one batch
    assert store.counts() == (20, 0)
    assert sorted(store.post_ids()) == sorted(s.post.id for s in scored[:20])


def test_a_rescored_post_replaces_the_row_and_keeps_its_first_arrival(store, scored):
    first = scored[0]
    store.write([first], now=1_000.0)
    rescored = replace(
        first,
        model_version="v-next",
        scored_at=first.scored_at + 60.0,
        cluster=replace(first.cluster, label="re-labelled"),
    )
    store.write([rescored], now=2_000.0)
    kept, first_seen = store.get(first.post.id)
    assert kept.model_version == "v-next" and kept.cluster.label == "re-labelled"
    assert first_seen == 1_000.0
    # An older scoring delivered late never replaces the newer one.
    store.write([first], now=3_000.0)
    kept, first_seen = store.get(first.post.id)
    assert kept.model_version == "v-next" and first_seen == 1_000.0
    assert store.counts() == (1, 0)


def test_a_post_reads_back_as_it_was_scored(store, scored):
    store.write(scored[:5])
    for original in scored[:5]:
        back, _ = store.get(original.post.id)
        assert back == original


def test_pages_read_a_time_range_in_order_one_page_at_a_time(store, scored):
    start = datetime(2026, 3, 1, tzinfo=UTC)
    # Ten posts share each second: the pages must not lose or repeat one at a boundary.
    timed = [
        replace(s, post=replace(s.post, created_at=start + timedelta(seconds=i // 10)))
        for i, s in enumerate(scored[:40])
    ]
    store.write(timed)
    t0 = start.timestamp()
    pages = list(store.pages(t0 + 1, t0 + 3, size=7))
    ids = [r.id for page in pages for r in page]
    expected = sorted((s.post.created_at.timestamp(), s.post.id) for s in timed[10:30])
    assert ids == [post_id for _, post_id in expected]
    assert [len(page) for page in pages] == [7, 7, 6]
    assert sum(len(page) for page in store.pages(t0, size=40)) == 40
    assert list(store.pages(t0 + 10)) == []


def test_dead_letters_are_stored_once_per_input_and_place(store):
    letter = DeadLetter(b'{"text": 1}', "'text' must be a string", "kafka", {"offset": 7}, 5.0)
    store.write([], [letter, letter])
    store.write([], [letter])  # re-published by a worker that restarted
    store.write([], [replace(letter, position={"offset": 8})])  # the same bytes elsewhere
    assert store.counts() == (0, 2)
    row = next(r for r in store.dead_letter_rows() if '"7"' in r.position)
    assert row.value == b'{"text": 1}' and row.reason == "'text' must be a string"


def test_retention_prunes_what_was_archived_before_the_limit(store, scored):
    now = time.time()
    store.write(scored[:3], now=now - 40 * DAY)
    store.write(scored[3:5], now=now - 1 * DAY)
    store.write([], [DeadLetter(b"x", "bad", "file", {"line": 1})], now=now - 31 * DAY)
    assert store.prune(0) == (0, 0)  # 0 keeps everything
    assert store.prune(30, now=now) == (3, 1)
    assert sorted(store.post_ids()) == sorted(s.post.id for s in scored[3:5])
    assert store.counts() == (2, 0)


def test_hostile_text_is_stored_safely(store, scored):
    """Records read back from Kafka are not validated again: NUL characters, unpaired
    surrogates, huge and odd text must not break a write, and a batch is all or nothing."""
    base = scored[0].to_dict()
    odd = [
        {**base, "id": "nul", "text": "a\x00b", "author": "nul\x00author"},
        {**base, "id": "surrogate", "text": "x \ud800 y", "hashtags": ["ok", "\udfff"]},
        {**base, "id": "huge", "text": "ÿ" * 1_000_000 + " 🔥" * 1000},
        {**base, "id": "rtl", "text": "\u202eevil\u202c 'quotes' \"; DROP TABLE posts; --"},
        {**base, "id": "x" * 200, "text": "longest id"},
    ]
    posts = [ScoredPost.from_dict(d) for d in odd]
    letters = [
        DeadLetter(b"\x00\xff\xfe not utf-8", "bad\x00reason \ud800", "kafka", {"k\x00": "v"}),
        DeadLetter(None, "a tombstone", "kafka", {"offset": 1}),
        DeadLetter("text \ud800", "a str value", "file", {"line": 2}),
    ]
    store.write(posts, letters)
    assert store.counts() == (5, 3)
    assert store.get("nul")[0].post.text == "a\ufffdb"
    assert store.get("surrogate")[0].post.text == "x ? y"
    assert len(store.get("huge")[0].post.text) == 1_000_000 + 2000
    assert store.get("rtl")[0].post.text == odd[3]["text"]
    values = {r.reason: r.value for r in store.dead_letter_rows()}
    assert values["bad\ufffdreason ?"] == b"\x00\xff\xfe not utf-8"
    assert values["a tombstone"] is None


def test_the_migrations_create_exactly_the_described_schema(store):
    with store.engine.connect() as connection:
        # The full-text index is the one structure `archive.schema` does not describe.
        context = MigrationContext.configure(
            connection, opts={"include_name": lambda name, *_: name not in SEARCH_NAMES}
        )
        differences = compare_metadata(context, metadata)
    assert differences == []
    # One line of migrations (a fork would have two heads and raise here), all applied.
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None and store.revision() == head
    store.migrate()  # idempotent
    assert store.revision() == head


def test_posts_archived_before_the_calibrated_label_read_back_without_it(tmp_path, scored):
    archive = ArchiveStore(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    archive.migrate("0001")
    with archive.engine.begin() as connection:
        row = {k: v for k, v in post_row(scored[0], 1.0).items() if "calibrated" not in k}
        connection.execute(posts.insert(), [row])
    archive.migrate()
    assert archive.revision() == ScriptDirectory(str(MIGRATIONS)).get_current_head()
    old, _ = archive.get(scored[0].post.id)
    assert old.sentiment.calibrated_label is None and old.sentiment.compound == (
        scored[0].sentiment.compound
    )
    archive.write(scored[:1])  # rescored now: the new columns fill in
    assert archive.get(scored[0].post.id)[0].sentiment == scored[0].sentiment


def test_sqlite_runs_in_wal_mode_and_reports_its_disk_use(tmp_path, scored):
    archive = ArchiveStore(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    archive.migrate()
    with archive.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    before = archive.disk_bytes()
    archive.write(scored * 1)
    assert archive.disk_bytes() > before > 0


def test_postgresql_reports_its_disk_use(scored):
    with postgres_schema() as schema:
        archive = ArchiveStore(with_schema(postgres_url(), schema))
        try:
            archive.migrate()
            empty = archive.disk_bytes()
            archive.write(scored)
            assert archive.disk_bytes() >= empty > 0
        finally:
            archive.close()


def test_urls_are_normalised_and_passwords_never_shown():
    assert normalise_url("postgresql://u:p@h/db").startswith("postgresql+psycopg://")
    assert normalise_url("postgres://u:p@h/db").startswith("postgresql+psycopg://")
    assert "secret" not in redact("postgresql://u:secret@h:5432/db")


def test_archive_settings(tmp_path):
    config = Config.from_env(environ={}, instance_dir=str(tmp_path))
    assert config.archive_database_url == f"sqlite:///{tmp_path.resolve() / 'archive.sqlite3'}"
    assert Config.from_env(environ={"SOCIALPULSE_ARCHIVE_URL": "off"}).archive_database_url is None
    with pytest.raises(ConfigError, match="archive_url"):
        Config.from_env(environ={"SOCIALPULSE_ARCHIVE_URL": "mysql://x/y"})
    with pytest.raises(ConfigError, match="retention"):
        Config.from_env(environ={"SOCIALPULSE_ARCHIVE_RETENTION_DAYS": "-1"})


# -- the sink through an outage ------------------------------------------------------------
class FlakyStore(ArchiveStore):
    """A real archive whose database can be switched off: every call fails meanwhile."""

    down = False

    def write(self, *args, **kwargs):
        if self.down:
            raise OperationalError("INSERT", {}, Exception("the database is unreachable"))
        return super().write(*args, **kwargs)

    def migrate(self):
        if self.down:
            raise OperationalError("migrate", {}, Exception("the database is unreachable"))
        return super().migrate()


def start_writer(sink: ArchiveSink) -> threading.Thread:
    thread = threading.Thread(target=sink.run, daemon=True)
    thread.start()
    return thread


def test_the_database_unavailable_then_back_loses_nothing(archive_url, scored):
    store = FlakyStore(archive_url)
    store.down = True  # down from the start: the schema comes when it is back
    keeper = ArchiveKeeper(store, measure_every=0.1)
    sink = ArchiveSink(keeper, max_buffered=25, batch_rows=10, max_backoff=0.2)
    thread = start_writer(sink)
    sink.write(scored[:20])
    sink.reject([DeadLetter(b"junk", "not JSON", "kafka", {"offset": 1})])
    deadline = time.monotonic() + 5
    while keeper.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert keeper.error and "cannot open the archive" in keeper.error
    assert keeper.health()["status"] == "degraded"

    # Past the bound the stream waits instead of dropping: this write returns only once
    # the database is back and the buffer drains.
    late = threading.Thread(target=sink.write, args=(scored[20:40],))
    late.start()
    time.sleep(0.5)
    assert late.is_alive() and sink.buffered == 21
    store.down = False
    late.join(10)
    assert not late.is_alive()
    sink.write(scored[40:60])
    assert sink.drain(10)
    assert store.counts() == (60, 1)
    deadline = time.monotonic() + 5
    while keeper.error is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert keeper.error is None and keeper.health()["status"] == "ok"

    # Failing writes (not only a failing start) are retried the same way.
    store.down = True
    sink.write(scored[:5])  # rescored copies: still five posts, stored once
    deadline = time.monotonic() + 5
    while keeper.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "cannot write to the archive" in (keeper.error or "")
    store.down = False
    assert sink.drain(10)
    assert store.counts() == (60, 1)
    sink.close()
    thread.join(5)
    assert not thread.is_alive()
    store.close()


def test_a_postgresql_restart_loses_nothing(scored, proxied_postgres):
    """The real driver through a real outage: the server's connections drop and it refuses
    new ones, then comes back; the writer retries and stores everything once."""
    proxy = proxied_postgres.proxy
    store = ArchiveStore(proxied_postgres.through, connect_timeout=2)
    keeper = ArchiveKeeper(store, measure_every=0.2)
    sink = ArchiveSink(keeper, batch_rows=10, max_backoff=0.3)
    thread = start_writer(sink)
    try:
        sink.write(scored[:20])
        assert sink.drain(10)
        proxy.stop()
        sink.write(scored[20:60])
        deadline = time.monotonic() + 15
        while keeper.error is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert keeper.error, "the outage went unnoticed"
        assert sink.buffered > 0
        proxy.start()
        assert sink.drain(30), keeper.error
        assert store.counts() == (60, 0)
    finally:
        sink.close()
        thread.join(10)
        store.close()


# -- history and dedupe in the dashboard's aggregates ---------------------------------------
def test_aggregates_restored_from_the_archive_match_the_live_ones(store, scored):
    start = datetime(2024, 5, 1, 12, tzinfo=UTC)
    posts = [
        replace(s, post=replace(s.post, created_at=start + timedelta(seconds=7 * i)))
        for i, s in enumerate(scored)
    ]
    live = LiveAggregates(window_seconds=10, windows_kept=30)
    live.add(posts)
    live.take_update()  # sent to the viewers: now part of a new viewer's feed
    store.write(posts)
    history = store.history(10, 30, 50, 1000)
    restored = LiveAggregates(window_seconds=10, windows_kept=30)
    restored.restore(
        history.posts,
        history.feed,
        history.recent_ids,
        history.total_posts,
        history.total_dead_letters,
    )
    for key in ("sentiment_series", "clusters", "trending"):
        assert restored.state()[key] == live.state()[key], key
    assert restored.state()["stats"]["total"] == live.state()["stats"]["total"] == len(posts)
    assert {p["id"] for p in restored.latest_posts()} == {p["id"] for p in live.latest_posts()}
    # A post delivered again after the restart is not counted again.
    restored.add(posts[:10])
    assert restored.total == len(posts) and restored.duplicates == 10


def test_the_archive_command_migrates_and_prunes_without_kafka(archive_url, scored):
    from click.testing import CliRunner

    from app.cli import main

    env = {"SOCIALPULSE_ARCHIVE_URL": archive_url, "SOCIALPULSE_KAFKA_BOOTSTRAP": ""}
    result = CliRunner(env=env).invoke(main, ["archive", "--migrate"])
    assert result.exit_code == 0, result.output
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert f"at revision {head}" in result.output
    store = ArchiveStore(archive_url)
    try:
        store.write(scored[:4], now=time.time() - 10 * DAY)
        store.write(scored[4:6])
        env["SOCIALPULSE_ARCHIVE_RETENTION_DAYS"] = "7"
        result = CliRunner(env=env).invoke(main, ["archive", "--prune"])
        assert result.exit_code == 0, result.output
        assert "deleted 4 posts and 0 dead letters" in result.output
        assert store.counts() == (2, 0)
        # Without --migrate or --prune it consumes Kafka, and says what it needs.
        result = CliRunner(env=env).invoke(main, ["archive"])
        assert result.exit_code == 2 and "SOCIALPULSE_KAFKA_BOOTSTRAP" in result.output
    finally:
        store.close()


def test_the_archive_consumer_reads_scored_posts_and_keeps_what_it_cannot_read(scored):
    from archive.consumer import decode
    from streaming.sources import SourceRecord

    def record(topic, offset, value, headers=None):
        position = {"topic": topic, "partition": 0, "offset": offset}
        return SourceRecord(value, 10.0, position, None, b"k", headers)

    worker_headers = [
        ("reason", b"'text' is empty"),
        ("source", b"kafka"),
        ("source.topic", b"posts"),
        ("source.partition", b"2"),
        ("source.offset", b"41"),
    ]
    posts, letters = decode(
        [
            record("p.scored", 0, scored[0].to_json()),
            record("p.scored", 1, b"\x00 not json"),
            record("p.scored", 2, None),
            record("p.dlq", 0, b'{"text": ""}', worker_headers),
            record("p.dlq", 1, b"foreign", None),
        ],
        "p.dlq",
    )
    assert posts == [scored[0]]
    reasons = [letter.reason for letter in letters]
    assert reasons[0].startswith("unreadable scored post") and reasons[1].startswith(
        "unreadable scored post"
    )
    assert letters[2].reason == "'text' is empty"
    assert letters[2].position == {"topic": "posts", "partition": "2", "offset": "41"}
    # A dead letter no worker wrote keeps where it was read, so it has an id of its own.
    assert letters[3].position == {"topic": "p.dlq", "partition": 0, "offset": 1}
