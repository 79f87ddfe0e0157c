"""Explore's queries: one validated filter over archived posts, pages of them by keyset, the
charts of a filtered set, and every matching row in chunks for export. Both engines.

A filter comes from query-string parameters (the page and `GET /api/v1/posts` share them):
`from`, `to`, `q`, `hashtag`, `cluster`, `author`, `sentiment`, `compound_min`,
`compound_max`, `engagement`, `source`, `post`. Every cost is bounded: page size, query
length and terms, rows behind the charts, and a time budget per statement.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Integer,
    and_,
    case,
    cast,
    false,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from archive.schema import posts
from archive.search import FTS_TABLE

FILTER_NAMES = (
    "from",
    "to",
    "q",
    "hashtag",
    "cluster",
    "author",
    "sentiment",
    "compound_min",
    "compound_max",
    "engagement",
    "source",
    "post",
    "tracked",
)
SENTIMENT_LABELS = ("positive", "neutral", "negative")
ENGAGEMENT_BANDS = ("low", "medium", "high")
MAX_QUERY_CHARS = 200
MAX_QUERY_TERMS = 8
MAX_VALUE_CHARS = 200  # author, source, post id (the columns hold at most 200)
MAX_HASHTAG_CHARS = 100
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_CURSOR_CHARS = 600
# Sentiment-over-time buckets: the smallest that draws the span in at most this many.
MAX_BUCKETS = 120
BUCKET_SIZES = (10, 30, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86_400, 7 * 86_400)
FTS_TIME_DRIVEN_SPAN = 7 * 86_400  # see `_full_text`
TERMS_SAMPLE = 1000  # the word cloud counts the words of the newest posts of the set
MAX_TRACKED_CHARTED = 10  # tracked topics drawn on Explore: one grouped statement each
_WORD_RE = re.compile(r"\w+")
_CLOUD_RE = re.compile(r"(?u)(?:https?://\S+|www\.\S+|[@#]\w+)|\b([^\W\d_]{3,})\b")
_HASHTAG_RE = re.compile(r"^\w+$")
# Dates from 1970 to 9999: anything else is a typo, and would overflow some engines.
_MAX_EPOCH = 253_402_300_799.0


class FilterError(ValueError):
    """A filter, cursor or page size that cannot be used; the message says why."""


class QueryTooExpensive(FilterError):
    """A query over the budget of rows or time; the message says how to narrow it."""


class ArchiveUnavailable(RuntimeError):
    """The archive database cannot be reached or read."""


@dataclass(frozen=True)
class PostFilter:
    """Which archived posts to show. Every field is optional; all given ones must hold."""

    start: float | None = None  # created_at ≥ start (epoch seconds)
    end: float | None = None  # created_at < end
    terms: tuple[str, ...] = ()  # words that must all appear in the text
    phrases: tuple[str, ...] = ()  # "quoted phrases" that must appear as written
    hashtag: str | None = None  # lower case, without '#'
    cluster: int | None = None
    author: str | None = None
    sentiment: str | None = None
    compound_min: float | None = None
    compound_max: float | None = None
    engagement: str | None = None
    source: str | None = None
    post: str | None = None
    query: str | None = None  # `q` as given, for links and forms
    # A tracked topic by name; its keywords and hashtags (any of them) once `resolve`d.
    tracked: str | None = None
    tracked_keywords: tuple[str, ...] = ()
    tracked_hashtags: tuple[str, ...] = ()

    def resolve(self, keywords: Sequence[str], hashtags: Sequence[str]) -> PostFilter:
        """This filter with its tracked topic's keywords and hashtags filled in."""
        words = (" ".join(_WORD_RE.findall(k.lower())) for k in keywords)
        phrases = tuple(dict.fromkeys(w for w in words if w))
        return replace(self, tracked_keywords=phrases, tracked_hashtags=tuple(hashtags))

    @classmethod
    def parse(cls, args: Any, allowed: Iterable[str] = ()) -> PostFilter:
        """Read query-string parameters (a dict or a werkzeug MultiDict). Names besides the
        filters and `allowed` are refused, as is any value that is malformed, too long or
        given twice (`FilterError`)."""
        known = set(FILTER_NAMES) | set(allowed)
        values: dict[str, str] = {}
        for name in args:
            if name not in known:
                raise FilterError(
                    f"unknown filter {name[:40]!r}; filters are {', '.join(FILTER_NAMES)}"
                )
            given = args.getlist(name) if hasattr(args, "getlist") else [args[name]]
            if len(given) > 1:
                raise FilterError(f"give {name!r} once")
            value = str(given[0]).strip()
            if value and name in FILTER_NAMES:
                values[name] = value
        start = _time(values, "from")
        end = _time(values, "to")
        if start is not None and end is not None and start >= end:
            raise FilterError("'from' must be before 'to'")
        terms, phrases = parse_query(values.get("q", ""))
        hashtag = values.get("hashtag")
        if hashtag is not None:
            hashtag = hashtag.removeprefix("#").lower()
            if len(hashtag) > MAX_HASHTAG_CHARS or not _HASHTAG_RE.match(hashtag):
                raise FilterError(
                    f"'hashtag' is letters, digits and _ (at most {MAX_HASHTAG_CHARS})"
                )
        cluster = values.get("cluster")
        if cluster is not None and not re.fullmatch(r"-?\d{1,9}", cluster):
            raise FilterError(
                f"'cluster' must be a cluster id (a whole number), not {cluster[:40]!r}"
            )
        sentiment = _choice(values, "sentiment", SENTIMENT_LABELS)
        engagement = _choice(values, "engagement", ENGAGEMENT_BANDS)
        low = _compound(values, "compound_min")
        high = _compound(values, "compound_max")
        if low is not None and high is not None and low > high:
            raise FilterError("'compound_min' must not be above 'compound_max'")
        for name in ("author", "source", "post", "tracked"):
            if len(values.get(name, "")) > MAX_VALUE_CHARS:
                raise FilterError(f"{name!r} is at most {MAX_VALUE_CHARS} characters")
        return cls(
            start=start,
            end=end,
            terms=terms,
            phrases=phrases,
            hashtag=hashtag,
            cluster=int(cluster) if cluster is not None else None,
            author=values.get("author"),
            sentiment=sentiment,
            compound_min=low,
            compound_max=high,
            engagement=engagement,
            source=values.get("source"),
            post=values.get("post"),
            query=values.get("q"),
            tracked=values.get("tracked"),
        )

    def to_args(self) -> dict[str, str]:
        """The query-string parameters of this filter (times as ISO 8601)."""
        args: dict[str, str] = {}
        if self.start is not None:
            args["from"] = iso(self.start)
        if self.end is not None:
            args["to"] = iso(self.end)
        if self.query:
            args["q"] = self.query
        for name in ("hashtag", "cluster", "author", "sentiment", "compound_min", "compound_max"):
            value = getattr(self, name)
            if value is not None:
                args[name] = str(value)
        for name in ("engagement", "source", "post", "tracked"):
            value = getattr(self, name)
            if value is not None:
                args[name] = value
        return args


def parse_query(query: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Words and "quoted phrases" of a full-text query, reduced to letters and digits: no
    search syntax of either engine (`*`, `NEAR(`, `OR`, `:`, `^`, quotes) survives, so a
    query only ever matches words."""
    if len(query) > MAX_QUERY_CHARS:
        raise FilterError(f"'q' is at most {MAX_QUERY_CHARS} characters")
    phrases: list[str] = []
    for quoted in re.findall(r'"([^"]*)"', query):
        words = _WORD_RE.findall(quoted.lower())
        if len(words) > 1:
            phrases.append(" ".join(words))
        elif words:
            query += " " + words[0]
    rest = re.sub(r'"[^"]*"', " ", query)
    terms = list(dict.fromkeys(_WORD_RE.findall(rest.lower())))
    if len(terms) + sum(len(p.split()) for p in phrases) > MAX_QUERY_TERMS:
        raise FilterError(f"'q' has at most {MAX_QUERY_TERMS} words")
    return tuple(terms), tuple(dict.fromkeys(phrases))


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: str, name: str = "time") -> float:
    """Epoch seconds, or ISO 8601 (a time without a zone is UTC)."""
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise FilterError(
                f"{name!r} must be epoch seconds or an ISO 8601 time such as "
                f"2024-05-01T12:00:00Z, not {value[:40]!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
    if not math.isfinite(seconds) or not 0 <= seconds <= _MAX_EPOCH:
        raise FilterError(f"{name!r} must be between 1970 and 9999")
    return seconds


def _time(values: Mapping[str, str], name: str) -> float | None:
    value = values.get(name)
    if value is None:
        return None
    if len(value) > 40:
        raise FilterError(f"{name!r} is too long for a time")
    return parse_time(value, name)


def _choice(values: Mapping[str, str], name: str, choices: Sequence[str]) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    if value.lower() not in choices:
        raise FilterError(f"{name!r} is one of {', '.join(choices)}, not {value[:40]!r}")
    return value.lower()


def _compound(values: Mapping[str, str], name: str) -> float | None:
    value = values.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not -1.0 <= number <= 1.0:  # NaN fails too
        raise FilterError(f"{name!r} is a number from -1 to 1, not {value[:40]!r}")
    return number


# -- SQL ------------------------------------------------------------------------------------
def conditions(wanted: PostFilter, dialect: str) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a filter on `posts`."""
    c = posts.c
    where: list[ColumnElement[bool]] = []
    if wanted.start is not None:
        where.append(c.created_at >= wanted.start)
    if wanted.end is not None:
        where.append(c.created_at < wanted.end)
    if wanted.terms or wanted.phrases:
        where.append(_full_text(wanted, dialect))
    if wanted.hashtag is not None:
        where.append(_hashtag_is(wanted.hashtag))
    if wanted.cluster is not None:
        where.append(c.cluster_id == wanted.cluster)
    if wanted.author is not None:
        where.append(c.author == wanted.author)
    if wanted.sentiment is not None:
        where.append(c.sentiment_label == wanted.sentiment)
    if wanted.compound_min is not None:
        where.append(c.sentiment_compound >= wanted.compound_min)
    if wanted.compound_max is not None:
        where.append(c.sentiment_compound <= wanted.compound_max)
    if wanted.engagement is not None:
        where.append(c.engagement_band == wanted.engagement)
    if wanted.source is not None:
        where.append(c.source == wanted.source)
    if wanted.post is not None:
        where.append(c.id == wanted.post)
    if wanted.tracked is not None:
        where.append(_tracked(wanted, dialect))
    return where


def _hashtag_is(tag: str) -> ColumnElement[bool]:
    # The JSON list holds the tag as "tag": a match of the quoted tag is a whole tag.
    pattern = '%"' + tag.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + '"%'
    return posts.c.hashtags.like(pattern, escape="\\")


def _tracked(wanted: PostFilter, dialect: str) -> ColumnElement[bool]:
    """Any of the tracked topic's keywords (as phrases) or hashtags; nothing when the
    filter was not resolved (an unknown topic matches no post)."""
    anyone: list[ColumnElement[bool]] = [_hashtag_is(t) for t in wanted.tracked_hashtags]
    if wanted.tracked_keywords:
        if dialect == "postgresql":
            vector = func.to_tsvector(literal_column("'simple'"), posts.c.text)
            anyone += [
                vector.op("@@")(func.phraseto_tsquery(literal_column("'simple'"), k))
                for k in wanted.tracked_keywords
            ]
        else:
            match = " OR ".join(f'"{k}"' for k in wanted.tracked_keywords)
            fts = text(
                f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :tracked"
            ).bindparams(tracked=match)
            anyone.append(literal_column("posts.rowid").in_(fts))
    return or_(*anyone) if anyone else false()


def _full_text(wanted: PostFilter, dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        # The same expression as the GIN index (`archive.search`), so the index serves it.
        vector = func.to_tsvector(literal_column("'simple'"), posts.c.text)
        queries = []
        if wanted.terms:
            queries.append(func.plainto_tsquery(literal_column("'simple'"), " ".join(wanted.terms)))
        queries += [
            func.phraseto_tsquery(literal_column("'simple'"), phrase) for phrase in wanted.phrases
        ]
        return and_(*(vector.op("@@")(q) for q in queries))
    # FTS5: every word and phrase quoted, so nothing in them is read as syntax.
    match = " ".join(f'"{w}"' for w in (*wanted.terms, *wanted.phrases))
    fts = text(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :match").bindparams(
        match=match
    )
    # Within a short time range, walking the time index and checking each post against
    # the matches is ten times faster than fetching every match of a common word across
    # the archive ("+" keeps SQLite from driving the query by rowid); otherwise the
    # matches drive it.
    bounded = (
        wanted.start is not None
        and wanted.end is not None
        and wanted.end - wanted.start <= FTS_TIME_DRIVEN_SPAN
    )
    return literal_column("+posts.rowid" if bounded else "posts.rowid").in_(fts)


def encode_cursor(created_at: float, post_id: str) -> str:
    raw = orjson.dumps([created_at, post_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    if len(cursor) > MAX_CURSOR_CHARS:
        raise FilterError("'cursor' is not one this server gave")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, post_id = orjson.loads(raw)
        if not isinstance(post_id, str) or isinstance(created_at, bool):
            raise TypeError
        return float(created_at), post_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise FilterError(
            "'cursor' is not one this server gave: use the next_cursor of a previous page"
        ) from None


def parse_limit(value: str | None, maximum: int = MAX_PAGE_SIZE) -> int:
    if value is None or value == "":
        return min(DEFAULT_PAGE_SIZE, maximum)
    if not re.fullmatch(r"\d{1,6}", value.strip()) or not 1 <= int(value) <= maximum:
        raise FilterError(f"'limit' is a whole number from 1 to {maximum}")
    return int(value)


def _ordered(
    wanted: PostFilter, dialect: str, after: tuple[float, str] | None, limit: int, columns=None
):
    where = conditions(wanted, dialect)
    if after is not None:
        # Newest first, ties by id: the next page starts strictly after the last row shown.
        where.append(tuple_(posts.c.created_at, posts.c.id) < tuple_(*after))
    statement = (
        select(*(columns or [posts])).where(*where) if where else select(*(columns or [posts]))
    )
    return statement.order_by(posts.c.created_at.desc(), posts.c.id.desc()).limit(limit)


@dataclass(frozen=True)
class Page:
    """One page of posts, newest first, and the cursor of the next (None: the last)."""

    rows: list[Any]
    next_cursor: str | None


def page(
    connection: Connection,
    wanted: PostFilter,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    budget: float = 5.0,
) -> Page:
    """A page of matching posts (rows of `posts`), newest first, after `cursor`."""
    after = decode_cursor(cursor) if cursor else None
    statement = _ordered(wanted, connection.dialect.name, after, limit + 1)
    with time_budget(connection, budget):
        rows = list(connection.execute(statement))
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    return Page(rows, encode_cursor(last.created_at, last.id) if last is not None else None)


def chunks(
    connect: Callable[[], contextlib.AbstractContextManager[Connection]],
    wanted: PostFilter,
    chunk_size: int = 2000,
    budget: float = 30.0,
    run: Callable[..., Any] | None = None,
) -> Iterator[list[Any]]:
    """Every matching row, newest first, `chunk_size` at a time: each chunk is its own short
    keyset query on its own connection, so memory stays at one chunk however many rows
    match, and the writer is never held up by a long read."""
    after: tuple[float, str] | None = None
    run = run or (lambda function, *args: function(*args))

    # Only the columns an export writes: the rest of each row is never read off the disk.
    columns = [posts.c[name] for name in EXPORT_COLUMNS]

    def read(after: tuple[float, str] | None) -> list[Any]:
        with connect() as connection:
            statement = _ordered(wanted, connection.dialect.name, after, chunk_size, columns)
            with time_budget(connection, budget):
                return list(connection.execute(statement))

    while True:
        rows = run(read, after)
        if rows:
            yield rows
        if len(rows) < chunk_size:
            return
        after = (rows[-1].created_at, rows[-1].id)


def count(connection: Connection, wanted: PostFilter, cap: int, budget: float = 5.0) -> int:
    """How many posts match, counting at most `cap + 1` (enough to say "over the cap")."""
    where = conditions(wanted, connection.dialect.name)
    # Nothing but the filtered columns: a time range alone is read from its index only.
    inner = (
        select(literal_column("1").label("one"))
        .select_from(posts)
        .where(*where)
        .limit(cap + 1)
        .subquery()
    )
    with time_budget(connection, budget):
        return int(connection.execute(select(func.count()).select_from(inner)).scalar() or 0)


# -- charts ---------------------------------------------------------------------------------
@dataclass
class Summary:
    """The charts of a filtered set (see `summarise`)."""

    total: int
    bucket_seconds: int
    series: list[dict[str, Any]] = field(default_factory=list)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    hashtags: list[dict[str, Any]] = field(default_factory=list)
    terms: list[dict[str, Any]] = field(default_factory=list)
    # Per tracked topic: posts and mean compound per bucket (aligned with `series`), its
    # posts in all and its share of voice among the tracked topics' posts.
    tracked: list[dict[str, Any]] = field(default_factory=list)
    start: float | None = None
    end: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "bucket_seconds": self.bucket_seconds,
            "start": self.start,
            "end": self.end,
            "series": self.series,
            "clusters": self.clusters,
            "hashtags": self.hashtags,
            "terms": self.terms,
            "tracked": self.tracked,
        }


def bucket_for(span: float) -> int:
    """The smallest bucket (s) that draws `span` seconds in at most `MAX_BUCKETS`."""
    for size in BUCKET_SIZES:
        if span / size <= MAX_BUCKETS:
            return size
    return BUCKET_SIZES[-1]


def summarise(
    connection: Connection,
    wanted: PostFilter,
    max_rows: int = 200_000,
    budget: float = 5.0,
    stop_words: frozenset[str] = frozenset(),
    top: int = 15,
    tracked: Sequence[tuple[str, Sequence[str], Sequence[str]]] = (),
) -> Summary:
    """Sentiment over time, clusters, top hashtags and word-cloud terms of the matching
    posts, and the volume of each `tracked` topic, (name, keywords, hashtags), among them
    (the first `MAX_TRACKED_CHARTED` by name). A set larger than `max_rows`, or a statement
    over `budget` seconds, is refused (`QueryTooExpensive`) rather than left to load the
    database."""
    dialect = connection.dialect.name
    total = count(connection, wanted, max_rows, budget)
    if total > max_rows:
        raise QueryTooExpensive(
            f"more than {max_rows:,} posts match: narrow the time range or add a filter "
            "to draw the charts"
        )
    summary = Summary(total=total, bucket_seconds=BUCKET_SIZES[0])
    if total == 0:
        summary.start, summary.end = wanted.start, wanted.end
        return summary
    c = posts.c
    where = conditions(wanted, dialect)
    with time_budget(connection, budget):
        start, end = wanted.start, wanted.end
        if start is None or end is None:
            low, high = connection.execute(
                select(func.min(c.created_at), func.max(c.created_at)).where(*where)
            ).one()
            start = low if start is None else start
            end = high + 1 if end is None else end
        bucket = bucket_for(max(end - start, 1.0))
        # Grouped in created_at order, which the time index already gives: no sort.
        key = (
            func.floor(c.created_at / bucket)
            if dialect == "postgresql"
            else cast(c.created_at / bucket, Integer)
        ).label("k")
        label = c.sentiment_label
        series = connection.execute(
            select(
                key,
                func.count(),
                func.avg(c.sentiment_compound),
                func.sum(case((label == "positive", 1), else_=0)),
                func.sum(case((label == "neutral", 1), else_=0)),
                func.sum(case((label == "negative", 1), else_=0)),
            )
            .where(*where)
            .group_by(key)
        )
        summary.series = sorted(
            (
                {
                    "start": int(k) * bucket,
                    "count": int(n),
                    "mean": round(float(mean), 4),
                    "positive": int(pos or 0),
                    "neutral": int(neu or 0),
                    "negative": int(neg or 0),
                }
                for k, n, mean, pos, neu, neg in series
            ),
            key=lambda b: b["start"],
        )
        clusters = connection.execute(
            select(c.cluster_id, func.count()).where(*where).group_by(c.cluster_id)
        ).all()
        ranked = sorted(clusters, key=lambda kv: (-kv[1], kv[0]))[:top]
        summary.clusters = [
            {"id": int(i), "label": _cluster_label(connection, i), "count": int(n)}
            for i, n in ranked
        ]
        # Posts share few hashtag lists: count each distinct list once, then its tags.
        tags: Counter[str] = Counter()
        for hashtags, n in connection.execute(
            select(c.hashtags, func.count()).where(*where).group_by(c.hashtags)
        ):
            for tag in orjson.loads(hashtags):
                tags[tag] += n
        summary.hashtags = [
            {"tag": t, "count": n}
            for t, n in sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        ]
        texts = connection.execute(
            select(c.text).where(*where).order_by(c.created_at.desc()).limit(TERMS_SAMPLE)
        ).scalars()
        summary.terms = cloud_terms(texts, stop_words, 60)
        summary.tracked = _tracked_series(
            connection, where, key, bucket, summary.series, tracked[:MAX_TRACKED_CHARTED]
        )
    summary.bucket_seconds, summary.start, summary.end = bucket, start, end
    return summary


def _tracked_series(
    connection: Connection,
    where: list[ColumnElement[bool]],
    key: Any,
    bucket: int,
    series: list[dict[str, Any]],
    tracked: Sequence[tuple[str, Sequence[str], Sequence[str]]],
) -> list[dict[str, Any]]:
    """Each tracked topic's posts and mean compound per bucket of `series`."""
    dialect = connection.dialect.name
    c = posts.c
    starts = [b["start"] for b in series]
    charted = []
    for name, keywords, hashtags in tracked:
        topic = PostFilter(tracked=name).resolve(keywords, hashtags)
        rows = connection.execute(
            select(key, func.count(), func.avg(c.sentiment_compound))
            .where(*where, _tracked(topic, dialect))
            .group_by(key)
        )
        by_start = {int(k) * bucket: (int(n), float(mean)) for k, n, mean in rows}
        total = sum(n for n, _ in by_start.values())
        charted.append(
            {
                "name": name,
                "counts": [by_start.get(s, (0, 0.0))[0] for s in starts],
                "means": [round(by_start[s][1], 4) if s in by_start else None for s in starts],
                "total": total,
                "mean_sentiment": round(sum(n * mean for n, mean in by_start.values()) / total, 4)
                if total
                else None,
            }
        )
    everything = sum(t["total"] for t in charted)
    for topic in charted:
        topic["share"] = round(topic["total"] / everything, 4) if everything else 0.0
    return charted


def _cluster_label(connection: Connection, cluster_id: int) -> str:
    """A cluster's newest label (topics are renamed as they evolve; one index lookup)."""
    return (
        connection.execute(
            select(posts.c.cluster_label)
            .where(posts.c.cluster_id == cluster_id)
            .order_by(posts.c.created_at.desc())
            .limit(1)
        ).scalar()
        or f"cluster {cluster_id}"
    )


def cloud_terms(texts: Iterable[str], stop_words: frozenset[str], top: int) -> list[dict[str, Any]]:
    """The most frequent words (3+ letters, no stop words, links, mentions or hashtags)."""
    counts: Counter[str] = Counter()
    for body in texts:
        # Links, mentions and hashtags match the first group and are dropped.
        counts.update(
            w for w in _CLOUD_RE.findall(body[:2000].lower()) if w and w not in stop_words
        )
    return [{"term": t, "count": n} for t, n in counts.most_common(top)]


# -- cost -----------------------------------------------------------------------------------
@contextlib.contextmanager
def time_budget(connection: Connection, seconds: float) -> Iterator[None]:
    """Stop the statements run inside after `seconds` (`QueryTooExpensive`): PostgreSQL's
    `statement_timeout` for the transaction, SQLite's progress handler. Errors of the
    database itself become `ArchiveUnavailable`."""
    deadline = time.monotonic() + seconds
    raw = None
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SET LOCAL statement_timeout = {max(1, int(seconds * 1000))}"))
    elif connection.dialect.name == "sqlite":
        raw = connection.connection.driver_connection
        raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 20_000)
    try:
        yield
    except DBAPIError as exc:
        message = str(exc.orig).lower()
        if "statement timeout" in message or "interrupted" in message or "canceling" in message:
            raise QueryTooExpensive(
                f"the query took longer than {seconds:g} s: narrow the time range or add a filter"
            ) from None
        raise ArchiveUnavailable(f"the archive cannot answer: {type(exc.orig).__name__}") from exc
    finally:
        if raw is not None:
            raw.set_progress_handler(None, 0)


def row_dict(row: Any) -> dict[str, Any]:
    """A `posts` row as Explore's table, the API and exports show it."""
    return {
        "id": row.id,
        "created_at": iso(row.created_at),
        "author": row.author,
        "text": row.text,
        "hashtags": orjson.loads(row.hashtags),
        "source": row.source,
        "lang": row.lang,
        "author_followers": row.author_followers,
        "sentiment_compound": row.sentiment_compound,
        "sentiment_label": row.sentiment_label,
        "sentiment_calibrated_label": row.sentiment_calibrated_label,
        "sentiment_calibrated_probability": row.sentiment_calibrated_probability,
        "cluster_id": row.cluster_id,
        "cluster_label": row.cluster_label,
        "engagement_predicted": row.engagement_predicted,
        "engagement_band": row.engagement_band,
        "model_version": row.model_version,
        "first_seen_at": iso(row.first_seen_at),
    }


# What exports hold, in order: `posts` columns, all that `row_dict` reads.
EXPORT_COLUMNS: tuple[str, ...] = (
    "id",
    "created_at",
    "author",
    "text",
    "hashtags",
    "source",
    "lang",
    "author_followers",
    "sentiment_compound",
    "sentiment_label",
    "sentiment_calibrated_label",
    "sentiment_calibrated_probability",
    "cluster_id",
    "cluster_label",
    "engagement_predicted",
    "engagement_band",
    "model_version",
    "first_seen_at",
)
