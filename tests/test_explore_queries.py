"""Explore's query layer on both engines: filters, full-text search, keyset pages, the charts
of a filtered set, chunked reads for export, and the limits on what a query may cost."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from werkzeug.datastructures import MultiDict

from archive import queries
from archive.queries import FilterError, PostFilter, QueryTooExpensive
from archive.schema import posts
from archive.store import ArchiveStore, post_row
from streaming.records import ScoredPost

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
HOUR = 3600.0

TEXTS = [
    "Loving the new phone, battery life is great",
    "The battery died again, worst phone ever",
    "Flight delayed three hours, no battery to charge",
    "Great customer service from the airline today",
    'Quotes "inside" and a * star NEAR(this) OR that',
    "Robert'); DROP TABLE posts;-- said the battery",
]


def make_posts(pipeline, sample_posts, n: int = 60) -> list[ScoredPost]:
    """`n` scored posts, one every 40 minutes from T0 (pairs at the same second, to test
    the order of ties), with known texts, authors, hashtags and sources."""
    scored = pipeline.score_batch(sample_posts[:n])
    out = []
    for i, item in enumerate(scored):
        created = T0 + (i // 2) * 2400.0
        post = replace(
            item.post,
            id=f"p{i:03d}",
            text=TEXTS[i % len(TEXTS)] + f" #tag{i % 3}",
            author=f"author{i % 4}",
            created_at=datetime.fromtimestamp(created, UTC),
            hashtags=(f"tag{i % 3}",) + (("tag_x",) if i % 5 == 0 else ()),
            source="kafka" if i % 2 else "file",
        )
        out.append(replace(item, post=post))
    return out


@pytest.fixture
def archived(store, pipeline, sample_posts) -> list[ScoredPost]:
    posts = make_posts(pipeline, sample_posts)
    store.write(posts)
    return posts


def run(store, wanted: PostFilter, limit: int = 200) -> list[str]:
    with store.engine.connect() as connection:
        return [r.id for r in queries.page(connection, wanted, limit=limit).rows]


def newest_first(items: list[ScoredPost]) -> list[str]:
    ordered = sorted(items, key=lambda s: (s.post.created_at, s.post.id), reverse=True)
    return [s.post.id for s in ordered]


# -- parsing --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"form": "1"}, "unknown filter 'form'"),
        ({"from": "yesterday"}, "ISO 8601"),
        ({"from": "2024-13-45"}, "ISO 8601"),
        ({"from": "1e30"}, "between 1970 and 9999"),
        ({"to": "nan"}, "between 1970 and 9999"),
        ({"from": "2024-05-02", "to": "2024-05-01"}, "'from' must be before 'to'"),
        ({"q": "x" * 201}, "at most 200 characters"),
        ({"q": "a b c d e f g h i"}, "at most 8 words"),
        ({"hashtag": "two words"}, "'hashtag' is letters"),
        ({"hashtag": "x" * 101}, "'hashtag' is letters"),
        ({"cluster": "1; DROP TABLE posts"}, "cluster id"),
        ({"cluster": "99999999999"}, "cluster id"),
        ({"sentiment": "happy"}, "positive, neutral, negative"),
        ({"engagement": "viral"}, "low, medium, high"),
        ({"compound_min": "2"}, "from -1 to 1"),
        ({"compound_max": "nan"}, "from -1 to 1"),
        ({"compound_min": "0.5", "compound_max": "0.1"}, "must not be above"),
        ({"author": "a" * 201}, "at most 200"),
    ],
)
def test_bad_filters_are_refused_with_the_reason(args, message):
    with pytest.raises(FilterError, match=message.replace("(", r"\(")):
        PostFilter.parse(args)


def test_a_filter_given_twice_is_refused():
    with pytest.raises(FilterError, match="give 'author' once"):
        PostFilter.parse(MultiDict([("author", "a"), ("author", "b")]))


def test_times_are_epoch_seconds_or_iso_8601_and_round_trip():
    wanted = PostFilter.parse({"from": "1700000000", "to": "2023-11-15T00:00:00+01:00"})
    assert wanted.start == T0
    assert wanted.end == datetime(2023, 11, 14, 23, tzinfo=UTC).timestamp()
    assert PostFilter.parse(wanted.to_args()) == wanted
    naive = PostFilter.parse({"from": "2023-11-14T22:13:20"})
    assert naive.start == T0  # no zone: UTC


def test_search_syntax_is_reduced_to_words():
    terms, phrases = queries.parse_query('battery* OR "Phone ever" NEAR(x) ^w "')
    assert terms == ("battery", "or", "near", "x", "w")
    assert phrases == ("phone ever",)


# -- filters on both engines -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "keep"),
    [
        ({}, lambda s: True),
        ({"author": "author1"}, lambda s: s.post.author == "author1"),
        ({"hashtag": "#TAG2"}, lambda s: "tag2" in s.post.hashtags),
        ({"hashtag": "tag_x"}, lambda s: "tag_x" in s.post.hashtags),
        ({"hashtag": "tag"}, lambda s: False),  # a whole tag, never a prefix
        ({"source": "kafka"}, lambda s: s.post.source == "kafka"),
        ({"post": "p007"}, lambda s: s.post.id == "p007"),
        (
            {"from": str(T0 + 5 * HOUR), "to": str(T0 + 10 * HOUR)},
            lambda s: T0 + 5 * HOUR <= s.post.created_at.timestamp() < T0 + 10 * HOUR,
        ),
        ({"compound_min": "0.3"}, lambda s: s.sentiment.compound >= 0.3),
        ({"compound_max": "-0.2"}, lambda s: s.sentiment.compound <= -0.2),
        ({"sentiment": "negative"}, lambda s: s.sentiment.label == "negative"),
        ({"engagement": "low"}, lambda s: s.engagement.band == "low"),
    ],
)
def test_each_filter_keeps_exactly_the_matching_posts(store, archived, args, keep):
    expected = newest_first([s for s in archived if keep(s)])
    assert run(store, PostFilter.parse(args)) == expected


def test_cluster_filter(store, archived):
    cluster = archived[0].cluster.id
    expected = newest_first([s for s in archived if s.cluster.id == cluster])
    assert expected and run(store, PostFilter.parse({"cluster": str(cluster)})) == expected


def test_full_text_finds_every_word_and_phrase(store, archived):
    def having(*words):
        return newest_first([s for s in archived if all(w in s.post.text.lower() for w in words)])

    assert run(store, PostFilter.parse({"q": "battery"})) == having("battery")
    assert run(store, PostFilter.parse({"q": "Battery PHONE"})) == having("battery", "phone")
    assert run(store, PostFilter.parse({"q": '"worst phone"'})) == having("worst phone")
    assert run(store, PostFilter.parse({"q": '"phone worst"'})) == []
    both = PostFilter.parse({"q": "battery", "author": "author2", "source": "file"})
    assert run(store, both) == newest_first(
        [
            s
            for s in archived
            if "battery" in s.post.text.lower()
            and s.post.author == "author2"
            and s.post.source == "file"
        ]
    )


@pytest.mark.parametrize(
    "hostile",
    [
        '"',
        '""',
        "*",
        "battery*",
        "NEAR(",
        "NEAR(battery phone, 2)",
        "OR",
        "battery OR phone",
        "AND NOT",
        "text:battery",
        "^battery",
        "'; DROP TABLE posts; --",
        "%_\\",
        "!!! ??? ::: &&& ||| <-> ''",
        "\x00 nul",
        "🔥🔥",
    ],
)
def test_hostile_queries_match_only_words_and_never_fail(store, archived, hostile):
    wanted = PostFilter.parse({"q": hostile})
    found = run(store, wanted)
    words = set(wanted.terms) | {w for p in wanted.phrases for w in p.split()}
    for post in archived:
        if post.post.id in found:
            tokens = set(queries._WORD_RE.findall(post.post.text.lower()))
            assert words <= tokens
    assert store.counts()[0] == len(archived)  # nothing was dropped either


def test_the_migration_indexes_posts_archived_before_it(tmp_path, scored_posts):
    store = ArchiveStore(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    store.migrate("0002")
    with store.engine.begin() as connection:
        row = post_row(replace(scored_posts[0], post=replace(scored_posts[0].post, id="old")), 1.0)
        row["text"] = "archived before search existed"
        connection.execute(posts.insert(), [row])
    store.migrate()
    assert run(store, PostFilter.parse({"q": "search existed"})) == ["old"]
    # and posts written later, rescored or pruned keep the index right
    store.write([replace(scored_posts[1], post=replace(scored_posts[1].post, text="new words"))])
    assert len(run(store, PostFilter.parse({"q": "new words"}))) == 1
    rescored = replace(
        scored_posts[1],
        post=replace(scored_posts[1].post, text="changed words"),
        scored_at=scored_posts[1].scored_at + 1,
    )
    store.write([rescored])
    assert run(store, PostFilter.parse({"q": "new"})) == []
    assert len(run(store, PostFilter.parse({"q": "changed"}))) == 1
    store.prune(1, now=10 * 86_400.0 + 1.0)  # "old" was archived at 1.0
    assert run(store, PostFilter.parse({"q": "existed"})) == []
    assert fts_consistent(store)
    store.close()


def fts_consistent(store) -> bool:
    """FTS5's own check of its index against the posts table (rank 1: the content too)."""
    with store.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO posts_fts(posts_fts, rank) VALUES ('integrity-check', 1)")
        )
    return True


def test_lost_triggers_are_restored_when_the_archive_opens(tmp_path, scored_posts):
    store = ArchiveStore(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    store.migrate()
    with store.engine.begin() as connection:
        connection.execute(text("DROP TRIGGER posts_fts_delete"))
        # and posts written past the store, as a bulk load would
        row = post_row(scored_posts[0], 1.0)
        connection.execute(posts.insert(), [{**row, "id": "bulk", "text": "loaded in bulk"}])
    store.migrate()  # what every process does when it opens the archive
    assert run(store, PostFilter.parse({"q": "bulk"})) == ["bulk"]
    store.write(scored_posts[:2])
    store.prune(1, now=time.time() + 2 * 86_400)  # the trigger is back: deletes leave too
    assert store.counts()[0] == 0 and fts_consistent(store)
    assert run(store, PostFilter.parse({"q": "bulk"})) == []
    store.close()


@pytest.fixture
def scored_posts(pipeline, sample_posts) -> list[ScoredPost]:
    return pipeline.score_batch(sample_posts[:5])


# -- pages ----------------------------------------------------------------------------------
@pytest.mark.parametrize("limit", [1, 7, 30, 200])
def test_pages_walk_every_post_once_in_a_stable_order(store, archived, limit):
    wanted = PostFilter.parse({"q": "battery"})
    seen, cursor = [], None
    with store.engine.connect() as connection:
        while True:
            page = queries.page(connection, wanted, cursor, limit)
            assert len(page.rows) <= limit
            seen += [r.id for r in page.rows]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert seen == run(store, wanted)
    assert len(seen) == len(set(seen)) > 0


def test_a_page_stays_put_when_newer_posts_arrive(store, archived, pipeline, sample_posts):
    with store.engine.connect() as connection:
        first = queries.page(connection, PostFilter(), limit=10)
    newer = pipeline.score_batch(sample_posts[100:105])
    store.write(
        [
            replace(s, post=replace(s.post, created_at=datetime.fromtimestamp(T0 + 99 * HOUR, UTC)))
            for s in newer
        ]
    )
    with store.engine.connect() as connection:
        second = queries.page(connection, PostFilter(), first.next_cursor, 10)
    assert [r.id for r in second.rows] == newest_first(archived)[10:20]


@pytest.mark.parametrize("cursor", ["x", "!!!", "W10", "WzEsIDJd", "a" * 700, "bnVsbA"])
def test_a_cursor_the_server_did_not_give_is_refused(store, cursor):
    with store.engine.connect() as connection, pytest.raises(FilterError, match="cursor"):
        queries.page(connection, PostFilter(), cursor)


@pytest.mark.parametrize("limit", ["0", "201", "-1", "ten", "1.5", "9" * 20])
def test_page_sizes_are_bounded(limit):
    with pytest.raises(FilterError, match="from 1 to 200"):
        queries.parse_limit(limit)


# -- charts ---------------------------------------------------------------------------------
def test_the_charts_describe_the_filtered_set(store, archived):
    wanted = PostFilter.parse({"q": "battery"})
    matching = [s for s in archived if "battery" in s.post.text.lower()]
    with store.engine.connect() as connection:
        summary = queries.summarise(connection, wanted, stop_words=frozenset({"the"}))
    assert summary.total == len(matching)
    assert sum(b["count"] for b in summary.series) == len(matching)
    labels = [s.sentiment.label for s in matching]
    assert sum(b["negative"] for b in summary.series) == labels.count("negative")
    assert sum(c["count"] for c in summary.clusters) == len(matching)
    tags = {h["tag"]: h["count"] for h in summary.hashtags}
    for tag in ("tag0", "tag1", "tag2", "tag_x"):
        assert tags.get(tag, 0) == sum(tag in s.post.hashtags for s in matching)
    terms = {t["term"]: t["count"] for t in summary.terms}
    assert terms["battery"] == len(matching) and "the" not in terms
    starts = [b["start"] for b in summary.series]
    assert starts == sorted(starts) and all(s % summary.bucket_seconds == 0 for s in starts)


def test_buckets_follow_the_span_of_the_range(store, archived):
    sizes = {}
    for name, span in (("hour", HOUR), ("day", 24 * HOUR), ("month", 30 * 24 * HOUR)):
        wanted = PostFilter(start=T0, end=T0 + span)
        with store.engine.connect() as connection:
            summary = queries.summarise(connection, wanted)
        assert len(summary.series) <= queries.MAX_BUCKETS
        assert span / summary.bucket_seconds <= queries.MAX_BUCKETS
        sizes[name] = summary.bucket_seconds
    assert sizes["hour"] < sizes["day"] < sizes["month"]


def test_an_empty_set_has_empty_charts(store, archived):
    with store.engine.connect() as connection:
        summary = queries.summarise(connection, PostFilter.parse({"q": "nowhere"}))
    assert summary.total == 0 and summary.series == summary.clusters == summary.hashtags == []


def test_charts_over_too_many_posts_are_refused(store, archived):
    with store.engine.connect() as connection, pytest.raises(QueryTooExpensive, match="narrow"):
        queries.summarise(connection, PostFilter(), max_rows=len(archived) - 1)
    with store.engine.connect() as connection:
        assert queries.summarise(connection, PostFilter(), max_rows=len(archived)).total == 60


def test_a_statement_over_its_time_budget_is_stopped(store):
    slow = (
        "SELECT pg_sleep(2)"
        if store.dialect == "postgresql"
        else "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
        "SELECT count(*) FROM n"
    )
    with store.engine.connect() as connection:
        with (
            pytest.raises(QueryTooExpensive, match=r"longer than 0\.2 s"),
            queries.time_budget(connection, 0.2),
        ):
            connection.execute(text(slow)).all()
        connection.rollback()
        with queries.time_budget(connection, 5):  # the connection still works
            assert connection.execute(text("SELECT 1")).scalar() == 1


# -- chunks for export ------------------------------------------------------------------------
def test_chunks_read_every_row_a_bounded_chunk_at_a_time(store, archived):
    sizes, ids = [], []
    for chunk in queries.chunks(store.engine.connect, PostFilter.parse({"source": "file"}), 7):
        sizes.append(len(chunk))
        ids += [r.id for r in chunk]
    assert ids == run(store, PostFilter.parse({"source": "file"}))
    assert max(sizes) == 7 and len(sizes) == -(-len(ids) // 7)


def test_no_chunks_for_no_rows(store, archived):
    assert list(queries.chunks(store.engine.connect, PostFilter.parse({"q": "nowhere"}))) == []


@pytest.mark.parametrize("hours", [10, 24 * 8])  # driven by the time index, then by matches
def test_full_text_within_a_time_range(store, archived, hours):
    end = T0 + hours * HOUR
    wanted = PostFilter.parse({"q": "battery", "from": str(T0 + HOUR), "to": str(end)})
    expected = [
        s
        for s in archived
        if "battery" in s.post.text.lower() and T0 + HOUR <= s.post.created_at.timestamp() < end
    ]
    assert expected and run(store, wanted) == newest_first(expected)
    with store.engine.connect() as connection:
        assert queries.summarise(connection, wanted).total == len(expected)


def test_a_tracked_topic_matches_any_of_its_keywords_or_hashtags(store, archived):
    wanted = PostFilter.parse({"tracked": "Power"}).resolve(["Battery life", "charge"], ["tag_x"])
    expected = [
        s
        for s in archived
        if "battery life" in s.post.text.lower()
        or "charge" in s.post.text.lower().split()
        or "tag_x" in s.post.hashtags
    ]
    assert expected and run(store, wanted) == newest_first(expected)
    with store.engine.connect() as connection:
        assert queries.summarise(connection, wanted).total == len(expected)
    assert run(store, PostFilter.parse({"tracked": "Power"})) == []  # not resolved: no posts
