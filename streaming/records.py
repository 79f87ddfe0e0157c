"""Typed records passed between stages, and the one place where raw input is validated.

A raw post (a JSON object, a decoded dict, or bytes of JSON) becomes a `Post` through
`parse_post`, or raises `InvalidPost` with a message meant for the person who sent it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

DEFAULT_MAX_TEXT_LENGTH = 5000

# A tag is "#" not preceded by a word character or "&" (not "&#39;"), a mention "@" not
# preceded by a word character or "@" (not an e-mail address). The "#" and "@" come before
# the look-behind so that the regex engine skips straight to them instead of trying the
# look-behind at every character.
HASHTAG_RE = re.compile(r"#(?<![\w&]#)(\w{1,100})")
MENTION_RE = re.compile(r"@(?<![\w@]@)(\w{1,50})")
URL_RE = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
# What is not a word of the post: links and @mentions (topic documents, word clouds).
URL_OR_MENTION_RE = re.compile(f"{URL_RE.pattern}|{MENTION_RE.pattern}", re.IGNORECASE)
# Emoji presentation characters and pictographs (incl. flags, dingbats, symbols).
EMOJI_RE = re.compile(
    "[\U0001f1e6-\U0001f1ff\U0001f300-\U0001f5ff\U0001f600-\U0001f64f\U0001f680-\U0001f6ff"
    "\U0001f700-\U0001f77f\U0001f780-\U0001f7ff\U0001f800-\U0001f8ff\U0001f900-\U0001f9ff"
    "\U0001fa00-\U0001faff\u2600-\u27bf\u2b00-\u2bff]"
)
_ASCII_BYTES = bytes(range(128))
ENGAGEMENT_KEYS = ("likes", "shares", "replies")
# Larger counts are not real; they would also overflow the float features of the models.
MAX_COUNT = 10**12
_MAX_INT_ID = 10**200  # an int id must fit the 200-character limit of ids once written out


class InvalidPost(ValueError):
    """Raw input that cannot become a `Post`; the message says what was wrong."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class Post:
    """A validated post. `engagement` is the observed outcome, never a model input."""

    id: str
    text: str
    author: str
    created_at: datetime
    hashtags: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    emoji: tuple[str, ...] = ()
    author_followers: int | None = None
    lang: str | None = None
    source: str | None = None
    engagement: Mapping[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "author": self.author,
            "created_at": self.created_at.isoformat(),
            "hashtags": list(self.hashtags),
            "mentions": list(self.mentions),
            "urls": list(self.urls),
            "emoji": list(self.emoji),
            "author_followers": self.author_followers,
            "lang": self.lang,
            "source": self.source,
            "engagement": dict(self.engagement) if self.engagement is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Sentiment:
    """VADER's scores and label, and the calibrated model's label and its probability.

    `calibrated_label` / `calibrated_probability` are None on records scored before the
    calibrated model existed (old Kafka messages still parse).
    """

    compound: float
    pos: float
    neu: float
    neg: float
    label: str  # VADER's label (compound thresholds ±0.05)
    calibrated_label: str | None = None
    calibrated_probability: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "compound": self.compound,
            "pos": self.pos,
            "neu": self.neu,
            "neg": self.neg,
            "label": self.label,
            "calibrated_label": self.calibrated_label,
            "calibrated_probability": self.calibrated_probability,
        }


@dataclass(frozen=True, slots=True)
class ClusterAssignment:
    id: int
    label: str


@dataclass(frozen=True, slots=True)
class EngagementPrediction:
    predicted: float
    band: str


@dataclass(frozen=True, slots=True)
class ScoredPost:
    """A post with every score the pipeline computes for it."""

    post: Post
    sentiment: Sentiment
    cluster: ClusterAssignment
    engagement: EngagementPrediction
    model_version: str
    latency_ms: float
    scored_at: float = field(default=0.0)
    received_at: float = field(default=0.0)  # wall time the post entered SocialPulse

    def to_dict(self) -> dict[str, Any]:
        record = self.post.to_dict()
        record["observed_engagement"] = record.pop("engagement")
        record.update(
            sentiment=self.sentiment.to_dict(),
            cluster={"id": self.cluster.id, "label": self.cluster.label},
            engagement={"predicted": self.engagement.predicted, "band": self.engagement.band},
            model_version=self.model_version,
            latency_ms=self.latency_ms,
            scored_at=self.scored_at,
            received_at=self.received_at,
        )
        return record

    def to_json(self) -> bytes:
        """`to_dict()` as compact JSON, byte for byte (tested), at half the cost: orjson
        writes the tuples and the UTC time itself, without lists and an ISO string first."""
        post, sentiment, created = self.post, self.sentiment, self.post.created_at
        engagement = post.engagement
        return orjson.dumps(
            {
                "id": post.id,
                "text": post.text,
                "author": post.author,
                # orjson writes UTC times as `isoformat` does; other offsets (only in posts
                # built by hand) keep isoformat's form, which orjson would cut to minutes.
                "created_at": created if created.tzinfo is UTC else created.isoformat(),
                "hashtags": post.hashtags,
                "mentions": post.mentions,
                "urls": post.urls,
                "emoji": post.emoji,
                "author_followers": post.author_followers,
                "lang": post.lang,
                "source": post.source,
                "observed_engagement": dict(engagement) if engagement is not None else None,
                "sentiment": {
                    "compound": sentiment.compound,
                    "pos": sentiment.pos,
                    "neu": sentiment.neu,
                    "neg": sentiment.neg,
                    "label": sentiment.label,
                    "calibrated_label": sentiment.calibrated_label,
                    "calibrated_probability": sentiment.calibrated_probability,
                },
                "cluster": {"id": self.cluster.id, "label": self.cluster.label},
                "engagement": {
                    "predicted": self.engagement.predicted,
                    "band": self.engagement.band,
                },
                "model_version": self.model_version,
                "latency_ms": self.latency_ms,
                "scored_at": self.scored_at,
                "received_at": self.received_at,
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoredPost:
        """Rebuild a scored post from `to_dict` output (e.g. read back from Kafka)."""
        try:
            post = Post(
                id=str(data["id"]),
                text=str(data["text"]),
                author=str(data["author"]),
                created_at=_parse_time(data["created_at"]),
                hashtags=tuple(data.get("hashtags") or ()),
                mentions=tuple(data.get("mentions") or ()),
                urls=tuple(data.get("urls") or ()),
                emoji=tuple(data.get("emoji") or ()),
                author_followers=data.get("author_followers"),
                lang=data.get("lang"),
                source=data.get("source"),
                engagement=data.get("observed_engagement"),
            )
            sentiment = _sentiment(data["sentiment"])
            cluster = ClusterAssignment(int(data["cluster"]["id"]), str(data["cluster"]["label"]))
            engagement = EngagementPrediction(
                float(data["engagement"]["predicted"]), str(data["engagement"]["band"])
            )
            return cls(
                post=post,
                sentiment=sentiment,
                cluster=cluster,
                engagement=engagement,
                model_version=str(data["model_version"]),
                latency_ms=float(data["latency_ms"]),
                scored_at=float(data.get("scored_at") or 0.0),
                received_at=float(data.get("received_at") or 0.0),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidPost(f"not a scored post: {exc}") from exc


def _sentiment(data: Mapping[str, Any]) -> Sentiment:
    """The `Sentiment` of a scored post's JSON; messages written before the calibrated
    label existed have no `calibrated_*` keys and get None."""
    probability = data.get("calibrated_probability")
    label = data.get("calibrated_label")
    return Sentiment(
        float(data["compound"]),
        float(data["pos"]),
        float(data["neu"]),
        float(data["neg"]),
        str(data["label"]),
        None if label is None else str(label),
        None if probability is None else float(probability),
    )


# The fields a raw post may carry.
POST_FIELDS = frozenset(
    (
        "id",
        "text",
        "author",
        "created_at",
        "hashtags",
        "author_followers",
        "lang",
        "source",
        "engagement",
    )
)


def decode_json_object(value: bytes | str | None, what: str = "message") -> dict[str, Any]:
    """Decode bytes or a string of JSON into an object, with errors a user can act on.

    Args:
        value: the raw bytes or text.
        what: how error messages name the input ("message", "request body").
    """
    if value is None:
        raise InvalidPost(f"{what} has no value (a tombstone): expected a JSON object")
    # The usual case costs one call: orjson reads bytes directly, checking their UTF-8 as it
    # goes. Anything it refuses takes the steps below, which name what is wrong.
    try:
        data = orjson.loads(value)
    except (ValueError, RecursionError):
        pass
    else:
        if isinstance(data, dict):
            return data
    if isinstance(value, bytes | bytearray | memoryview):
        if len(value) == 0:
            raise InvalidPost(f"{what} is empty: expected a JSON object")
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidPost(f"{what} is not valid UTF-8 (byte {exc.start})") from exc
    if not value.strip():
        raise InvalidPost(f"{what} is empty: expected a JSON object")
    try:
        data = orjson.loads(value)
    except (ValueError, RecursionError) as exc:  # ValueError also covers huge integers
        raise InvalidPost(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidPost(f"{what} must be a JSON object, not {type(data).__name__}")
    return data


def parse_post(
    raw: Mapping[str, Any] | bytes | str | None,
    *,
    max_text_length: int = DEFAULT_MAX_TEXT_LENGTH,
    default_id: str | None = None,
    default_source: str | None = None,
    now: datetime | None = None,
    latest: datetime | None = None,
) -> Post:
    """Validate a raw post and extract hashtags, mentions, URLs and emoji.

    Args:
        now: the time of a post that gives none (default: the clock).
        latest: the latest `created_at` accepted (None: any). A post dated far ahead of
            the clock would own the newest chart window until the clock caught up.

    Raises:
        InvalidPost: on wrong types, missing or empty text, invalid UTF-8, text longer than
            `max_text_length`, a time after `latest`, or fields this service does not know.
    """
    data = raw if isinstance(raw, Mapping) else decode_json_object(raw)
    if not data.keys() <= POST_FIELDS:
        unknown = sorted(str(k)[:40] for k in data if k not in POST_FIELDS)
        raise InvalidPost(
            f"unknown field(s) {', '.join(map(repr, unknown[:5]))}; "
            f"allowed: {', '.join(sorted(POST_FIELDS))}"
        )

    text = data.get("text")
    if text is None:
        raise InvalidPost("missing 'text': every post needs the text to analyse", "text")
    text = _require_str(text, "text")
    if not text.strip():
        raise InvalidPost("'text' is empty", "text")
    if len(text) > max_text_length:
        raise InvalidPost(
            f"'text' is {len(text)} characters; the limit is {max_text_length}", "text"
        )

    post_id = data.get("id")
    if post_id is None:
        post_id = default_id or uuid.uuid4().hex
    elif isinstance(post_id, int) and not isinstance(post_id, bool):
        if abs(post_id) >= _MAX_INT_ID:  # str() of a huge int raises ValueError
            raise InvalidPost("'id' is longer than 200 characters", "id")
        post_id = str(post_id)
    post_id = _require_str(post_id, "id", max_length=200)
    if not post_id:
        raise InvalidPost("'id' is empty", "id")

    author = _require_str(data.get("author") or "anonymous", "author", max_length=200)
    created = data.get("created_at")
    created_at = (now or datetime.now(UTC)) if created is None else _parse_time(created)
    if latest is not None and created_at > latest:
        raise InvalidPost(
            f"'created_at' {created_at.isoformat()} is ahead of the clock by more than the "
            f"allowed skew (latest accepted: {latest.isoformat(timespec='seconds')})",
            "created_at",
        )

    hashtags_raw = data.get("hashtags")
    if hashtags_raw is None:
        hashtags = _unique(map(str.lower, HASHTAG_RE.findall(text))) if "#" in text else ()
    else:
        if not isinstance(hashtags_raw, list | tuple):
            raise InvalidPost("'hashtags' must be a list of strings", "hashtags")
        if len(hashtags_raw) > 100:
            raise InvalidPost("'hashtags' has more than 100 entries", "hashtags")
        tags = []
        for tag in hashtags_raw:
            tag = _require_str(tag, "hashtags", max_length=100).strip().lstrip("#").lower()
            if tag:
                tags.append(tag)
        hashtags = _unique(tags)

    followers = data.get("author_followers")
    if followers is not None:
        if isinstance(followers, bool) or not isinstance(followers, int):
            raise InvalidPost("'author_followers' must be a whole number", "author_followers")
        if followers < 0:
            raise InvalidPost("'author_followers' cannot be negative", "author_followers")
        if followers > MAX_COUNT:
            raise InvalidPost(
                f"'author_followers' is larger than {MAX_COUNT:,}", "author_followers"
            )

    lang = data.get("lang")
    if lang is not None:
        lang = _require_str(lang, "lang", max_length=20)
    source = data.get("source", default_source)
    if source is not None:
        source = _require_str(source, "source", max_length=100)

    engagement = _parse_engagement(data.get("engagement"))
    # The cheap membership tests skip regex scans that cannot match (the hot path).
    mentions = _unique(map(str.lower, MENTION_RE.findall(text))) if "@" in text else ()
    urls = tuple(URL_RE.findall(text)) if "://" in text else ()
    emoji = () if text.isascii() else tuple(EMOJI_RE.findall(_non_ascii(text)))
    # Positional, in field order: keywords make building a frozen record a third slower.
    return Post(
        post_id,
        text,
        author,
        created_at,
        hashtags,
        mentions,
        urls,
        emoji,
        followers,
        lang,
        source,
        engagement,
    )


def _require_str(value: Any, name: str, max_length: int | None = None) -> str:
    if not isinstance(value, str):
        raise InvalidPost(f"'{name}' must be a string, got {type(value).__name__}", name)
    try:
        if not value.isascii():  # ASCII holds no surrogates: no need to copy it to find out
            value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidPost(f"'{name}' is not valid Unicode (unpaired surrogate)", name) from exc
    if "\x00" in value:
        raise InvalidPost(f"'{name}' contains a NUL character", name)
    if max_length is not None and len(value) > max_length:
        raise InvalidPost(f"'{name}' is longer than {max_length} characters", name)
    return value


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            parsed = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise InvalidPost(f"'created_at' {value!r} is out of range", "created_at") from exc
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise InvalidPost(
                f"'created_at' {value[:40]!r} is not an ISO 8601 time, e.g. 2024-05-01T12:30:00Z",
                "created_at",
            ) from exc
    else:
        raise InvalidPost("'created_at' must be an ISO 8601 string", "created_at")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidPost("'created_at' is out of range", "created_at") from exc


def _parse_engagement(value: Any) -> Mapping[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidPost("'engagement' must be an object of counts", "engagement")
    counts = {}
    for key, count in value.items():
        if key not in ENGAGEMENT_KEYS:
            raise InvalidPost(
                f"'engagement' has unknown key {str(key)[:40]!r}; allowed: "
                + ", ".join(ENGAGEMENT_KEYS),
                "engagement",
            )
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidPost(f"'engagement.{key}' must be a whole number ≥ 0", "engagement")
        if count > MAX_COUNT:
            raise InvalidPost(f"'engagement.{key}' is larger than {MAX_COUNT:,}", "engagement")
        counts[key] = count
    return counts


def _non_ascii(text: str) -> str:
    """The non-ASCII characters of `text`, in order: emoji are among them, and scanning
    these few is cheaper than the whole text. (UTF-8 never has ASCII bytes inside a
    character, so deleting the ASCII bytes leaves whole characters.)"""
    return text.encode("utf-8").translate(None, _ASCII_BYTES).decode("utf-8")


def _unique(items: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
