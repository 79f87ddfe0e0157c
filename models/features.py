"""Engagement features known at posting time (never the post's own likes, shares or replies)."""

from __future__ import annotations

import math
import string
from collections import deque
from collections.abc import Hashable, Sequence
from itertools import chain

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
    "starts_with_rt",  # text starts with "RT @": someone else's post passed on
    "starts_with_mention",  # text starts with "@" or ".@": a reply or a conversation
    # What the training period knew about the author (see AuthorPrior); 0 for unseen authors.
    "author_recent_lift",  # smoothed mean log-outcome of the author's last posts − overall mean
    "author_mean_lift",  # the same over all the author's training posts
    "author_history",  # log(1 + the author's posts in the training period)
)
AUTHOR_FEATURES: tuple[str, ...] = FEATURE_NAMES[-3:]
# What kind of post an author's levels are kept per (see AuthorPrior's `by_kind`).
RESHARE_PREFIX = "RT @"
REPLY_PREFIXES = ("@", ".@")


def author_key(post: Post, by_kind: bool) -> Hashable:
    """The author, or with `by_kind` the author and the kind of post: "reshare" (someone
    else's post passed on), "reply" (starts with a mention) or "own"."""
    if not by_kind:
        return post.author
    text = post.text
    if text.startswith(RESHARE_PREFIX):
        return (post.author, "reshare")
    return (post.author, "reply" if text.startswith(REPLY_PREFIXES) else "own")


_ASCII_LETTERS = string.ascii_letters.encode()
_ASCII_UPPER = string.ascii_uppercase.encode()
_ASCII = bytes(range(128))


def _letter_counts(text: str) -> tuple[int, int]:
    """(letters, capital letters) of `text`, counted at C speed wherever possible.

    ASCII letters are counted in the UTF-8 bytes (multi-byte sequences never contain ASCII
    bytes); only the non-ASCII characters (often a few emoji) are looked at one by one.
    """
    raw = text.encode("utf-8", "surrogatepass")
    letters = len(raw) - len(raw.translate(None, _ASCII_LETTERS))
    upper = len(raw) - len(raw.translate(None, _ASCII_UPPER))
    if not text.isascii():
        rest = raw.translate(None, _ASCII).decode("utf-8", "surrogatepass")
        letters += sum(map(str.isalpha, rest))
        upper += sum(map(str.isupper, rest))
    return letters, upper


class AuthorPrior:
    """What the training period says about each author, looked up when a post is scored.

    An author's level is the mean log-outcome of their posts, shrunk towards the overall
    mean by `smoothing` pseudo-posts: one over the last `window` posts (accounts change:
    an audience grows, a staff account becomes a personal one) and one over all of them.
    Only posts *before* the scored one count: `running` gives training rows what was known
    when each was posted, `lookup` gives live posts what was known when training ended.
    Unseen authors get zeros, the same as a model without the author columns would see.

    With `by_kind`, levels are kept per author *and kind of post* (`author_key`): an
    account's reshares of other people's posts draw far fewer likes than its own posts
    (on the FiveThirtyEight data ~0.8 log-units fewer for @realDonaldTrump), and a level
    that mixes both moves with the share of reshares among the last posts.

    Args:
        window: how many of the author's latest posts the recent level averages; 0 turns
            author features off (every author counts as unseen), e.g. when the live
            stream's authors are not the training data's.
        smoothing: pseudo-posts at the overall mean added to every author's average.
        by_kind: keys are `author_key(post, True)` rather than the author alone; the
            training code passes such keys, `posting_time_features` builds them.
    """

    def __init__(self, window: int = 20, smoothing: float = 2.0, by_kind: bool = False) -> None:
        self.window = window
        self.smoothing = smoothing
        self.by_kind = by_kind

    def fit(self, authors: Sequence[Hashable], log_targets: Sequence[float]) -> AuthorPrior:
        """Learn every author's levels from time-ordered training rows."""
        targets = np.asarray(log_targets, dtype=np.float64)
        self.global_mean_ = float(targets.mean()) if len(targets) else 0.0
        self.table_: dict[Hashable, tuple[float, float, float]] = {}
        self._walk(authors, targets, out=None)
        return self

    def running(self, authors: Sequence[Hashable], log_targets: Sequence[float]) -> np.ndarray:
        """(n, 3) author features of time-ordered training rows, each from earlier rows only."""
        targets = np.asarray(log_targets, dtype=np.float64)
        out = np.zeros((len(targets), len(AUTHOR_FEATURES)))
        self._walk(authors, targets, out=out)
        return out

    def lookup(self, authors: Sequence[Hashable]) -> np.ndarray:
        """(n, 3) author features of new posts, from the whole training period."""
        get, unknown = self.table_.get, (0.0, 0.0, 0.0)
        return np.array([get(a, unknown) for a in authors], dtype=np.float64).reshape(
            len(authors), len(AUTHOR_FEATURES)
        )

    def _walk(self, authors, targets: np.ndarray, out: np.ndarray | None) -> None:
        if len(authors) != len(targets):
            raise ValueError(f"{len(authors)} authors but {len(targets)} targets")
        if self.window <= 0:
            return
        mean = self.global_mean_
        k = self.smoothing
        recent: dict[Hashable, deque] = {}
        totals: dict[Hashable, list[float]] = {}
        table: dict[Hashable, tuple[float, float, float]] = {}
        for row, (author, target) in enumerate(zip(authors, targets.tolist(), strict=True)):
            if out is not None:
                out[row] = table.get(author, (0.0, 0.0, 0.0))
            last = recent.setdefault(author, deque(maxlen=self.window))
            last.append(target)
            total = totals.setdefault(author, [0.0, 0])
            total[0] += target
            total[1] += 1
            table[author] = (
                (sum(last) + k * mean) / (len(last) + k) - mean,
                (total[0] + k * mean) / (total[1] + k) - mean,
                math.log1p(total[1]),
            )
        if out is None:
            self.table_ = table


def posting_time_features(
    posts: Sequence[Post],
    sentiments: Sequence[Sentiment],
    cluster_ids: Sequence[int],
    author_prior: AuthorPrior | None = None,
) -> np.ndarray:
    """Feature matrix of shape (len(posts), len(FEATURE_NAMES)), float64.

    Without `author_prior` every author is unseen (author columns 0); the live path passes
    the engagement model's `author_prior_`.
    """
    rows = []
    two_pi = 2.0 * math.pi
    table = author_prior.table_ if author_prior is not None else {}
    # Priors pickled before `by_kind` existed are keyed by the author alone.
    by_kind = getattr(author_prior, "by_kind", False)
    unknown = (0.0, 0.0, 0.0)
    for post, sentiment, cluster in zip(posts, sentiments, cluster_ids, strict=True):
        text = post.text
        letters, upper = _letter_counts(text)
        created = post.created_at
        hour = created.hour + created.minute / 60.0
        weekday = created.weekday()
        followers = post.author_followers
        reshare = text.startswith(RESHARE_PREFIX)
        reply = text.startswith(REPLY_PREFIXES)
        key = post.author
        if by_kind:
            key = (key, "reshare" if reshare else "reply" if reply else "own")
        recent, overall, history = table.get(key, unknown)
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
                1.0 if reshare else 0.0,
                1.0 if reply else 0.0,
                recent,
                overall,
                history,
            )
        )
    width = len(FEATURE_NAMES)
    flat = np.fromiter(chain.from_iterable(rows), np.float64, count=len(rows) * width)
    return flat.reshape(len(rows), width)
