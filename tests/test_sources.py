"""Sources: the synthetic stream and file replay behave like the streams they stand in for."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime

import pytest

from streaming.records import InvalidPost, parse_post
from streaming.sources import ColumnMapping, FileSource, SourceRecord, SyntheticSource


def read_all(source, max_records: int = 10_000, timeout: float = 5.0) -> list[SourceRecord]:
    """Every record of a finite source."""
    records: list[SourceRecord] = []
    deadline = time.monotonic() + timeout
    while not source.exhausted and time.monotonic() < deadline:
        records.extend(source.read_batch(max_records, 0.5))
    assert source.exhausted, "the source never ran out"
    return records


# -- synthetic --------------------------------------------------------------------------------


def synthetic_texts(seed: int, n: int = 50) -> list[str]:
    return [r.value["text"] for r in SyntheticSource(rate=0, seed=seed).read_batch(n, 1.0)]


def test_synthetic_source_is_deterministic_for_a_seed():
    assert synthetic_texts(3) == synthetic_texts(3)
    assert synthetic_texts(3) != synthetic_texts(4)


def test_synthetic_posts_look_like_real_posts():
    records = SyntheticSource(rate=0, seed=11).read_batch(400, 2.0)
    posts = [parse_post(r.value) for r in records]  # every generated post is valid
    assert len(posts) == 400
    with_tags = sum(bool(p.hashtags) for p in posts)
    assert with_tags > 0.6 * len(posts)
    assert sum(bool(p.emoji) for p in posts) > 0.3 * len(posts)
    assert sum("!!!" in p.text for p in posts) > 0.05 * len(posts)
    assert sum(any(w.isupper() and len(w) > 2 for w in p.text.split()) for p in posts) > 20
    assert all(p.text[0].isupper() or p.text[0] == "@" for p in posts)
    assert len({p.author for p in posts}) > 100
    followers = [p.author_followers for p in posts]
    assert all(isinstance(f, int) and f >= 0 for f in followers)
    assert max(followers) > 10 * min(followers)
    assert len({p.id for p in posts}) == len(posts)


def test_synthetic_posts_carry_no_generator_answers():
    record = SyntheticSource(rate=0, seed=1).read_batch(1, 1.0)[0]
    assert not any(key.startswith("_") for key in record.value)
    assert record.position == {"seq": 1}


def test_synthetic_source_is_paced_by_rate(manual_clock):
    # 256 a second: every due time is exact in binary, so the count is exact too.
    source = SyntheticSource(rate=256, seed=1, clock=manual_clock)
    started = manual_clock.now
    records = source.read_batch(10_000, 0.5)
    assert len(records) == 128
    assert manual_clock.now - started == 0.5
    arrivals = [r.received_at for r in records]
    assert all(b - a == 1 / 256 for a, b in itertools.pairwise(arrivals))
    assert max(manual_clock.slept) <= 1 / 256, "it sleeps until the next post, no longer"


def test_synthetic_source_with_rate_zero_is_unpaced():
    started = time.monotonic()
    records = SyntheticSource(rate=0, seed=1).read_batch(2000, 5.0)
    assert len(records) == 2000
    assert time.monotonic() - started < 2.0


def test_synthetic_source_limit_exhausts_it():
    source = SyntheticSource(rate=0, seed=1, limit=25)
    assert not source.exhausted
    records = read_all(source)
    assert len(records) == 25
    assert source.read_batch(10, 0.05) == []


def test_received_at_is_wall_time():
    before = time.time()
    record = SyntheticSource(rate=0, seed=1).read_batch(1, 1.0)[0]
    assert before <= record.received_at <= time.time()


# -- files ------------------------------------------------------------------------------------

TWEETS_MAPPING = ColumnMapping(
    text="tweet",
    id="tweet_id",
    author="user",
    created_at="when",
    author_followers="followers",
    likes="likes",
    hashtags="tags",
)


def test_csv_with_column_mapping(tmp_path):
    path = tmp_path / "tweets.csv"
    path.write_text(
        "tweet_id,user,when,tweet,followers,likes,tags\n"
        '1,ana,2024-05-01T12:00:00Z,"Hello, world #One",120,5,"nba, lakers"\n'
        "2,ben,2024-05-01T12:00:01+02:00,Second post,,,\n",
        encoding="utf-8",
    )
    records = read_all(FileSource(path, TWEETS_MAPPING))
    first, second = (parse_post(r.value) for r in records)
    assert (first.id, first.author, first.text) == ("1", "ana", "Hello, world #One")
    assert first.created_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert first.author_followers == 120
    assert first.engagement == {"likes": 5}
    assert first.hashtags == ("nba", "lakers")
    assert second.created_at == datetime(2024, 5, 1, 10, 0, 1, tzinfo=UTC)
    assert second.author_followers is None and second.engagement is None
    assert [r.position for r in records] == [
        {"file": "tweets.csv", "line": 2},
        {"file": "tweets.csv", "line": 3},
    ]


def test_jsonl_with_column_mapping(tmp_path):
    path = tmp_path / "posts.jsonl"
    rows = [
        {"body": "First #A", "handle": "ana", "ts": "2024-05-01T12:00:00Z", "extra": 1},
        {"body": "Second", "handle": "ben", "ts": "2024-05-01T12:00:05Z"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    mapping = ColumnMapping(text="body", id=None, author="handle", created_at="ts")
    posts = [parse_post(r.value) for r in read_all(FileSource(path, mapping))]
    assert [p.text for p in posts] == ["First #A", "Second"]
    assert [p.author for p in posts] == ["ana", "ben"]
    assert posts[1].created_at == datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)


def test_tsv_file(tmp_path):
    path = tmp_path / "posts.tsv"
    path.write_text('id\ttext\n7\ttabs, commas; and "quotes"\n', encoding="utf-8")
    (record,) = read_all(FileSource(path))
    post = parse_post(record.value)
    assert (post.id, post.text) == ("7", 'tabs, commas; and "quotes"')


def test_latin1_file(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_bytes("id,text\n1,Café crème à Zürich\n".encode("latin-1"))
    (record,) = read_all(FileSource(path, encoding="latin-1"))
    assert parse_post(record.value).text == "Café crème à Zürich"


def test_file_in_the_wrong_encoding_stops_the_replay_without_crashing(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_bytes("id,text\n1,Café\n".encode("latin-1"))
    assert read_all(FileSource(path)) == []


def test_time_format(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text("id,text,created_at\n1,hi,01/05/2024 12:30\n", encoding="utf-8")
    mapping = ColumnMapping(time_format="%d/%m/%Y %H:%M")
    (record,) = read_all(FileSource(path, mapping))
    assert parse_post(record.value).created_at == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def test_unreadable_time_is_left_for_validation_to_reject(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text("id,text,created_at\n1,hi,not a time\n", encoding="utf-8")
    (record,) = read_all(FileSource(path))
    with pytest.raises(InvalidPost, match="not an ISO 8601 time"):
        parse_post(record.value)


def test_jsonl_line_that_is_not_json_is_passed_through_as_text(tmp_path):
    path = tmp_path / "posts.jsonl"
    huge = '{"text": "huge", "author_followers": ' + "9" * 5000 + "}"
    path.write_text(
        '{"text": "good"}\n{"text": broken\n[1, 2]\n{"text": "also good"}\n' + huge + "\n"
    )
    records = read_all(FileSource(path))
    assert len(records) == 5
    assert records[1].value == '{"text": broken\n'
    assert records[1].position == {"file": "posts.jsonl", "line": 2}
    with pytest.raises(InvalidPost, match="not valid JSON"):
        parse_post(records[1].value)
    with pytest.raises(InvalidPost, match="must be a JSON object"):
        parse_post(records[2].value)
    assert parse_post(records[3].value).text == "also good"
    with pytest.raises(InvalidPost, match="not valid JSON"):
        parse_post(records[4].value)


def test_bad_number_in_a_file_is_left_for_validation_to_reject(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text("id,text,followers\n1,first,inf\n2,second,lots\n3,third,12.0\n")
    mapping = ColumnMapping(author_followers="followers")
    records = read_all(FileSource(path, mapping))
    assert len(records) == 3
    for record in records[:2]:
        with pytest.raises(InvalidPost, match="author_followers"):
            parse_post(record.value)
    assert parse_post(records[2].value).author_followers == 12


def test_unreadable_csv_row_is_skipped_and_the_replay_goes_on(tmp_path, caplog):
    path = tmp_path / "posts.csv"
    path.write_text("id,text\n1," + "a" * 200_000 + "\n2,still here\n")
    records = read_all(FileSource(path))
    assert [parse_post(r.value).text for r in records] == ["still here"]
    assert "field larger than field limit" in caplog.text


def test_speed_paces_replay_by_original_timestamps(tmp_path, manual_clock):
    path = tmp_path / "posts.csv"
    lines = [f"{i},post {i},2024-05-01T12:00:0{i}Z" for i in range(4)]
    path.write_text("id,text,created_at\n" + "\n".join(lines) + "\n")
    source = FileSource(path, speed=8, clock=manual_clock)  # one second apart, ×8
    arrivals = []
    while not source.exhausted:
        arrivals.extend(r.received_at for r in source.read_batch(1, 1.0))
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert gaps == [0.125, 0.125, 0.125]


def test_without_speed_replay_is_as_fast_as_possible(tmp_path):
    path = tmp_path / "posts.csv"
    lines = [f"{i},post {i},2024-05-01T12:{i:02d}:00Z" for i in range(50)]
    path.write_text("id,text,created_at\n" + "\n".join(lines) + "\n")
    started = time.monotonic()
    assert len(read_all(FileSource(path, speed=0))) == 50
    assert time.monotonic() - started < 1.0


def test_file_limit(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_text("".join(json.dumps({"text": f"post {i}"}) + "\n" for i in range(10)))
    records = read_all(FileSource(path, limit=3))
    assert [r.value["text"] for r in records] == ["post 0", "post 1", "post 2"]


def test_unknown_suffix_is_rejected_when_the_source_is_made(tmp_path):
    path = tmp_path / "posts.txt"
    path.write_text("text\nhello\n")
    with pytest.raises(ValueError, match=r"unsupported file type '\.txt'"):
        FileSource(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        FileSource(tmp_path / "nope.csv")


@pytest.mark.data
def test_replays_airline_tweets(shared_data):
    path = shared_data / "twitter_airline_sentiment" / "Tweets.csv"
    mapping = ColumnMapping(id="tweet_id", author="name", created_at="tweet_created")
    records = read_all(FileSource(path, mapping, limit=300))
    assert len(records) == 300
    posts = [parse_post(r.value) for r in records]
    assert len({p.id for p in posts}) == 300
    assert all(p.created_at.year == 2015 for p in posts)
    assert sum(bool(p.mentions) for p in posts) > 250  # tweets at airlines
