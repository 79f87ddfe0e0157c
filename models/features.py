"""Engagement features known at posting time (never the post's own likes, shares or replies)."""

from __future__ import annotations

import math
import string
from collections.abc import Sequence

import numpy as np

from streaming.records import Post, Sentiment

# Each feature is computable the moment a post is written. Documented in README "Models".
FEATURE_NAMES: tuple[str, ...] = (
    "length_chars",  # characters in the text
    "n_words",  # whitespace-separated words
    "n_hashtags",
    "n_mentions",
    "n_urls",
    "n_emoji",
    "caps_ratio",  # share of letters that are capitals
    "n_exclamations",
    "n_questions",
    "sentiment_compound",  # VADER compound of the same text
    "sentiment_abs",  # strength of sentiment regardless of sign
    "hour_sin",  # hour of day (UTC) on a circle, so 23h and 0h are neighbours
    "hour_cos",
    "weekday",  # 0 = Monday
    "is_weekend",
    "log_followers",  # log(1 + author followers); 0 when unknown
    "followers_known",
    "cluster",  # topic cluster id from the clustering stage
)


_ASCII_LETTERS = string.ascii_letters.encode()
_ASCII_UPPER = string.ascii_uppercase.encode()


def _letter_counts(text: str) -> tuple[int, int]:
    """(letters, capital letters) of `text`; ASCII texts take a C-speed path."""
    if text.isascii():
        raw = text.encode("ascii")
        return (
            len(raw) - len(raw.translate(None, _ASCII_LETTERS)),
            len(raw) - len(raw.translate(None, _ASCII_UPPER)),
        )
    return sum(map(str.isalpha, text)), sum(map(str.isupper, text))


def posting_time_features(
    posts: Sequence[Post], sentiments: Sequence[Sentiment], cluster_ids: Sequence[int]
) -> np.ndarray:
    """Feature matrix of shape (len(posts), len(FEATURE_NAMES)), float64."""
    rows = []
    two_pi = 2.0 * math.pi
    for post, sentiment, cluster in zip(posts, sentiments, cluster_ids, strict=True):
        text = post.text
        letters, upper = _letter_counts(text)
        created = post.created_at
        hour = created.hour + created.minute / 60.0
        weekday = created.weekday()
        followers = post.author_followers
        rows.append(
            (
                len(text),
                len(text.split()),
                len(post.hashtags),
                len(post.mentions),
                len(post.urls),
                len(post.emoji),
                upper / letters if letters else 0.0,
                text.count("!"),
                text.count("?"),
                sentiment.compound,
                abs(sentiment.compound),
                math.sin(two_pi * hour / 24.0),
                math.cos(two_pi * hour / 24.0),
                weekday,
                1.0 if weekday >= 5 else 0.0,
                math.log1p(followers) if followers is not None else 0.0,
                1.0 if followers is not None else 0.0,
                cluster,
            )
        )
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))
