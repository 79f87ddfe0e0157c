"""Parsing and validation of raw posts: the one place raw input becomes a `Post`."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming.records import (
    EMOJI_RE,
    HASHTAG_RE,
    MENTION_RE,
    POST_FIELDS,
    URL_RE,
    InvalidPost,
    Post,
    ScoredPost,
    parse_post,
)

NOW = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


# -- valid posts ------------------------------------------------------------------------------


def test_extracts_hashtags_lower_cased_and_deduplicated():
    post = parse_post({"text": "Game night #NBA #nba #Lakers #NBA"})
    assert post.hashtags == ("nba", "lakers")


def test_explicit_hashtags_are_normalised_like_extracted_ones():
    post = parse_post({"text": "no tags in here", "hashtags": ["#NBA", "nba", " Playoffs ", "#"]})
    assert post.hashtags == ("nba", "playoffs")


def test_extracts_mentions_urls_and_emoji():
    text = "@Bob @bob look https://sp.example/a?b=1 and http://x.org 😍🔥 wow"
    post = parse_post({"text": text})
    assert post.mentions == ("bob",)
    assert post.urls == ("https://sp.example/a?b=1", "http://x.org")
    assert post.emoji == ("😍", "🔥")


def test_email_address_and_html_entity_are_not_mention_or_hashtag():
    post = parse_post({"text": "mail me at anna@example.com &#39;quoted&#39;"})
    assert post.mentions == ()
    assert post.hashtags == ()


@given(st.text(alphabet=st.sampled_from("ab #@:/.hHtTpPsS😍é\u2600 "), max_size=40))
def test_extraction_matches_a_full_regex_scan(tail):
    # parse_post skips scans that cannot match; the result must be the same as scanning.
    text = "x " + tail
    post = parse_post({"text": text})
    assert post.hashtags == tuple(dict.fromkeys(m.lower() for m in HASHTAG_RE.findall(text)))
    assert post.mentions == tuple(dict.fromkeys(m.lower() for m in MENTION_RE.findall(text)))
    assert post.urls == tuple(URL_RE.findall(text))
    assert post.emoji == tuple(EMOJI_RE.findall(text))


def test_keeps_given_fields():
    post = parse_post(
        {
            "id": 42,
            "text": "hello",
            "author": "ana",
            "author_followers": 12,
            "lang": "en",
            "source": "api",
            "engagement": {"likes": 3, "shares": 1, "replies": 0},
        }
    )
    assert post.id == "42"
    assert post.author == "ana"
    assert post.author_followers == 12
    assert (post.lang, post.source) == ("en", "api")
    assert post.engagement == {"likes": 3, "shares": 1, "replies": 0}


def test_missing_id_and_author_get_defaults():
    post = parse_post({"text": "hello"}, default_id="kafka-0-17")
    assert post.id == "kafka-0-17"
    assert post.author == "anonymous"
    assert parse_post({"text": "a"}).id != parse_post({"text": "a"}).id


def test_accepts_json_text_and_bytes():
    raw = {"text": "Ça marche très bien 👍", "id": "p1"}
    assert parse_post(json.dumps(raw)).text == raw["text"]
    assert parse_post(json.dumps(raw, ensure_ascii=False).encode("utf-8")).text == raw["text"]


def test_created_at_defaults_to_now():
    assert parse_post({"text": "hi"}, now=NOW).created_at == NOW
    before = datetime.now(UTC)
    created = parse_post({"text": "hi"}).created_at
    assert before <= created <= datetime.now(UTC)
    assert created.tzinfo is not None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T12:30:00Z", NOW),
        ("2024-05-01T14:30:00+02:00", NOW),
        ("2024-05-01T07:30:00-05:00", NOW),
        ("2024-05-01T12:30:00", NOW),  # naive: read as UTC
        (" 2024-05-01T12:30:00Z ", NOW),
        (1714566600, NOW),  # epoch seconds
        (1714566600.5, NOW + timedelta(milliseconds=500)),
    ],
)
def test_created_at_is_converted_to_utc(value, expected):
    created = parse_post({"text": "hi", "created_at": value}).created_at
    assert created == expected
    assert created.utcoffset() == timedelta(0)


def test_created_at_keeps_aware_datetime_in_utc():
    local = datetime(2024, 5, 1, 8, 30, tzinfo=timezone(timedelta(hours=-4)))
    assert parse_post({"text": "hi", "created_at": local}).created_at == NOW


# -- invalid posts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"text": 5}, "'text' must be a string, got int"),
        ({"text": "hi", "author_followers": "12"}, "'author_followers' must be a whole number"),
        ({"text": "hi", "author_followers": True}, "'author_followers' must be a whole number"),
        ({"text": "hi", "author_followers": 1.5}, "'author_followers' must be a whole number"),
        ({"text": "hi", "author_followers": -1}, "'author_followers' cannot be negative"),
        ({"text": "hi", "hashtags": "nba"}, "'hashtags' must be a list of strings"),
        ({"text": "hi", "hashtags": [1]}, "'hashtags' must be a string"),
        ({"text": "hi", "author": 7}, "'author' must be a string"),
        ({"text": "hi", "id": True}, "'id' must be a string"),
        ({"text": "hi", "id": ""}, "'id' is empty"),
        ({"text": "hi", "lang": ["en"]}, "'lang' must be a string"),
        ({"text": "hi", "created_at": "yesterday"}, "not an ISO 8601 time"),
        ({"text": "hi", "created_at": True}, "'created_at' must be an ISO 8601 string"),
        ({"text": "hi", "created_at": 10**30}, "out of range"),
        ({"text": "hi", "created_at": float("nan")}, "out of range"),
        ({"text": "hi", "created_at": "0001-01-01T00:00:00+05:00"}, "out of range"),
        ({"text": "hi", "engagement": [1]}, "'engagement' must be an object of counts"),
        ({"text": "hi", "engagement": {"likes": -1}}, "'engagement.likes' must be a whole number"),
        ({"text": "hi", "engagement": {"views": 1}}, "'engagement' has unknown key 'views'"),
        ({}, "missing 'text'"),
        ({"text": None}, "missing 'text'"),
        ({"text": ""}, "'text' is empty"),
        ({"text": " \n\t "}, "'text' is empty"),
        ({"text": "a\ud800b"}, "'text' is not valid Unicode (unpaired surrogate)"),
        ({"text": "a\x00b"}, "'text' contains a NUL character"),
        ({"text": "hi", "author": "x\x00"}, "'author' contains a NUL character"),
        ({"text": "hi", "likes": 3}, "unknown field(s) 'likes'"),
        ({"text": "hi", "user": {}, "retweets": 1}, "unknown field(s) 'retweets', 'user'"),
    ],
)
def test_bad_fields_raise_invalid_post_with_clear_message(raw, message):
    with pytest.raises(InvalidPost) as info:
        parse_post(raw)
    assert message in info.value.message
    assert str(info.value) == info.value.message


def test_invalid_post_names_the_bad_field():
    with pytest.raises(InvalidPost) as info:
        parse_post({"text": "hi", "author_followers": "12"})
    assert info.value.field == "author_followers"


def test_unknown_field_message_lists_allowed_fields():
    with pytest.raises(InvalidPost, match=r"allowed: .*author_followers.*text"):
        parse_post({"text": "hi", "followers": 3})


def test_text_over_the_limit_is_rejected_and_at_the_limit_accepted():
    assert len(parse_post({"text": "x" * 50}, max_text_length=50).text) == 50
    with pytest.raises(InvalidPost, match="'text' is 51 characters; the limit is 50"):
        parse_post({"text": "x" * 51}, max_text_length=50)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "message is empty"),
        ("   ", "message is empty"),
        (b"\xff\xfe{}", "not valid UTF-8 (byte 0)"),
        (b'{"text": "caf\xe9"}', "not valid UTF-8 (byte 13)"),  # latin-1 bytes
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not list"),
        (b'"text"', "must be a JSON object, not str"),
        (b"null", "must be a JSON object, not NoneType"),
        (b"[" * 100_000, "not valid JSON"),
        ('{"a":' * 100_000, "not valid JSON"),
        ('{"text": "hi", "author_followers": ' + "9" * 5000 + "}", "not valid JSON"),
        ('{"text": "a\\ud800"}', "surrogate"),
        ('{"text": "a\\u0000"}', "NUL character"),
    ],
)
def test_bad_bytes_and_json_raise_invalid_post(raw, message):
    with pytest.raises(InvalidPost, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_post(raw)


@pytest.mark.parametrize("field", ["author_followers", "id"])
def test_huge_integers_are_rejected(field):
    with pytest.raises(InvalidPost) as info:
        parse_post({"text": "hi", field: 10**5000})
    assert info.value.field == field


def test_huge_engagement_counts_are_rejected():
    with pytest.raises(InvalidPost, match=r"engagement\.likes"):
        parse_post({"text": "hi", "engagement": {"likes": 10**400}})


def test_largest_plausible_follower_count_is_accepted():
    assert parse_post({"text": "hi", "author_followers": 10**9}).author_followers == 10**9


# -- properties -------------------------------------------------------------------------------

_any_text = st.text(st.characters(blacklist_categories=()), max_size=60)
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | _any_text
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_any_text, children, max_size=4)
    ),
    max_leaves=12,
)
_field_names = st.sampled_from(sorted(POST_FIELDS))
_raw_dicts = st.dictionaries(_field_names | _any_text, _json_values, max_size=8)
_plausible_dicts = st.fixed_dictionaries(
    {"text": _any_text},
    optional={
        "id": _json_values,
        "author": _json_values,
        "created_at": st.integers() | st.floats() | _any_text | st.datetimes(),
        "hashtags": _json_values,
        "author_followers": st.integers(min_value=-(10**400), max_value=10**400),
        "engagement": st.dictionaries(
            st.sampled_from(["likes", "shares", "replies"]), _json_values
        ),
    },
)


def _json_text(value: dict) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (ValueError, TypeError):
        return json.dumps(str(value))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        _raw_dicts,
        _plausible_dicts,
        _any_text,
        st.binary(max_size=200),
        _plausible_dicts.map(_json_text),
        _plausible_dicts.map(lambda d: _json_text(d).encode("utf-8", "surrogatepass")),
    )
)
def test_parse_post_returns_a_post_or_raises_invalid_post(raw):
    try:
        post = parse_post(raw, max_text_length=40)
    except InvalidPost as exc:
        assert exc.message
        return
    assert isinstance(post, Post)
    assert post.text.strip()
    assert len(post.text) <= 40
    post.text.encode("utf-8")
    assert post.created_at.utcoffset() == timedelta(0)
    assert all(tag == tag.lower() for tag in post.hashtags)
    assert len(set(post.hashtags)) == len(post.hashtags)
    if post.author_followers is not None:  # the models take log1p(followers) as a float
        assert math.isfinite(math.log1p(post.author_followers))


# -- scored posts -----------------------------------------------------------------------------


def test_scored_post_round_trips_through_json(pipeline, sample_posts):
    scored = pipeline.score_batch(sample_posts[:20], received_at=[1.5] * 20)
    for original in scored:
        wire = json.loads(json.dumps(original.to_dict()))
        assert ScoredPost.from_dict(wire) == original


def test_scored_post_json_is_its_dict_byte_for_byte(pipeline, sample_posts):
    scored = pipeline.score_batch(sample_posts[:20], received_at=[1.5] * 20)
    odd = scored[0].post
    # Posts built by hand: a naive time, a sub-minute offset, counts in a read-only mapping.
    by_hand = [
        dataclasses.replace(odd, created_at=datetime(2024, 5, 1, 12, 30)),
        dataclasses.replace(
            odd,
            created_at=datetime(2024, 5, 1, 12, 30, 5, tzinfo=timezone(timedelta(seconds=45))),
            engagement=MappingProxyType({"likes": 2}),
        ),
        dataclasses.replace(odd, engagement=None, author_followers=None, lang=None),
    ]
    scored += [dataclasses.replace(scored[0], post=post) for post in by_hand]
    for item in scored:
        assert item.to_json() == orjson.dumps(item.to_dict())


def test_scored_post_dict_carries_scores_and_observed_engagement(pipeline, sample_posts):
    scored = pipeline.score_batch(sample_posts[:1])[0]
    record = scored.to_dict()
    assert record["observed_engagement"] == dict(sample_posts[0].engagement)
    assert set(record["engagement"]) == {"predicted", "band"}
    assert record["sentiment"]["label"] in ("positive", "neutral", "negative")
    assert record["model_version"] == pipeline.model_version


def test_scored_post_from_garbage_raises_invalid_post(pipeline, sample_posts):
    record = pipeline.score_batch(sample_posts[:1])[0].to_dict()
    del record["sentiment"]
    with pytest.raises(InvalidPost, match="not a scored post"):
        ScoredPost.from_dict(record)
    with pytest.raises(InvalidPost):
        ScoredPost.from_dict({"id": 1})


def test_a_time_after_the_latest_accepted_is_refused():
    latest = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    at_limit = parse_post({"text": "on time", "created_at": "2024-05-01T12:00:00Z"}, latest=latest)
    assert at_limit.created_at == latest
    with pytest.raises(InvalidPost) as raised:
        parse_post({"text": "too late", "created_at": "2024-05-01T12:00:01Z"}, latest=latest)
    assert raised.value.field == "created_at"
    assert "ahead of the clock" in raised.value.message


def test_scored_post_carries_the_calibrated_label_through_kafka_bytes(pipeline, sample_posts):
    scored = pipeline.score_batch(sample_posts[:10])
    for original in scored:
        assert original.sentiment.calibrated_label in ("positive", "neutral", "negative")
        assert 0.0 < original.sentiment.calibrated_probability <= 1.0
        back = ScoredPost.from_dict(orjson.loads(original.to_json()))  # as kafka_common reads
        assert back == original
        assert back.sentiment.calibrated_label == original.sentiment.calibrated_label


def test_a_scored_post_written_before_the_calibrated_label_still_parses(pipeline, sample_posts):
    record = pipeline.score_batch(sample_posts[:1])[0].to_dict()
    del record["sentiment"]["calibrated_label"], record["sentiment"]["calibrated_probability"]
    back = ScoredPost.from_dict(json.loads(json.dumps(record)))
    assert back.sentiment.calibrated_label is None
    assert back.sentiment.calibrated_probability is None
    assert back.sentiment.compound == record["sentiment"]["compound"]
    assert back.to_dict()["sentiment"]["label"] == record["sentiment"]["label"]
