"""The archive store: SQLite or PostgreSQL behind one SQLAlchemy URL.

Writes are batched upserts keyed by post id, so delivering a post twice stores it once; a
rescored post replaces the row and keeps `first_seen_at`, the time it was first archived.
Dead letters are keyed by a digest of where they came from and what they held. The schema
is created and upgraded by Alembic (`migrate`), never by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.engine import make_url

from archive.schema import dead_letters, posts
from archive.search import index_new_posts, repair_search_index
from streaming.kafka_common import encode_value
from streaming.records import (
    ClusterAssignment,
    EngagementPrediction,
    Post,
    ScoredPost,
    Sentiment,
)
from streaming.sinks import DeadLetter

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_FILE = "archive.sqlite3"
# Any fixed number: the key of the PostgreSQL advisory lock that serialises migrations.
_MIGRATION_LOCK_KEY = 7_310_942_118
_DAY = 86_400.0


def sqlite_url(folder: str | Path) -> str:
    """The URL of the zero-setup archive: a SQLite file in `folder`."""
    return f"sqlite:///{Path(folder).resolve() / SQLITE_FILE}"


def normalise_url(url: str) -> str:
    """PostgreSQL URLs go through psycopg 3 (SQLAlchemy's own default is psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact(url: str) -> str:
    """`url` without its password, fit for logs and health pages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL SQLAlchemy cannot read: say nothing of it
        return "<unreadable URL>"


def clean_text(value: str) -> str:
    """Text every engine stores: PostgreSQL refuses NUL characters and both refuse unpaired
    surrogates, which records read back from Kafka (not validated again) may carry."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _json_list(items: Sequence[str]) -> str:
    return orjson.dumps([clean_text(str(i)) for i in items]).decode()


def post_row(scored: ScoredPost, now: float) -> dict[str, Any]:
    """The `posts` row of a scored post, archived at `now`."""
    post, sentiment = scored.post, scored.sentiment
    engagement = post.engagement
    return {
        "id": clean_text(post.id),
        "text": clean_text(post.text),
        "author": clean_text(post.author),
        "created_at": post.created_at.timestamp(),
        "hashtags": _json_list(post.hashtags),
        "mentions": _json_list(post.mentions),
        "urls": _json_list(post.urls),
        "emoji": _json_list(post.emoji),
        "author_followers": post.author_followers,
        "lang": clean_text(post.lang) if post.lang is not None else None,
        "source": clean_text(post.source) if post.source is not None else None,
        "observed_engagement": (
            orjson.dumps({clean_text(str(k)): int(v) for k, v in engagement.items()}).decode()
            if engagement is not None
            else None
        ),
        "sentiment_compound": sentiment.compound,
        "sentiment_pos": sentiment.pos,
        "sentiment_neu": sentiment.neu,
        "sentiment_neg": sentiment.neg,
        "sentiment_label": clean_text(sentiment.label),
        "sentiment_calibrated_label": sentiment.calibrated_label,
        "sentiment_calibrated_probability": sentiment.calibrated_probability,
        "cluster_id": scored.cluster.id,
        "cluster_label": clean_text(scored.cluster.label),
        "engagement_predicted": scored.engagement.predicted,
        "engagement_band": clean_text(scored.engagement.band),
        "model_version": clean_text(scored.model_version),
        "latency_ms": scored.latency_ms,
        "scored_at": scored.scored_at,
        "received_at": scored.received_at,
        "first_seen_at": now,
        "updated_at": now,
    }


def scored_from_row(row: Any) -> ScoredPost:
    """A scored post back from its `posts` row."""
    engagement = row.observed_engagement
    return ScoredPost(
        post=Post(
            row.id,
            row.text,
            row.author,
            datetime.fromtimestamp(row.created_at, UTC),
            tuple(orjson.loads(row.hashtags)),
            tuple(orjson.loads(row.mentions)),
            tuple(orjson.loads(row.urls)),
            tuple(orjson.loads(row.emoji)),
            row.author_followers,
            row.lang,
            row.source,
            orjson.loads(engagement) if engagement is not None else None,
        ),
        sentiment=Sentiment(
            row.sentiment_compound,
            row.sentiment_pos,
            row.sentiment_neu,
            row.sentiment_neg,
            row.sentiment_label,
            row.sentiment_calibrated_label,
            row.sentiment_calibrated_probability,
        ),
        cluster=ClusterAssignment(row.cluster_id, row.cluster_label),
        engagement=EngagementPrediction(row.engagement_predicted, row.engagement_band),
        model_version=row.model_version,
        latency_ms=row.latency_ms,
        scored_at=row.scored_at,
        received_at=row.received_at,
    )


def dead_letter_id(letter: DeadLetter) -> str:
    """The same id for the same rejected input from the same place, however often it is
    delivered or re-published (a worker that restarts dead-letters its batch again)."""
    digest = hashlib.sha256()
    position = {str(k): str(v) for k, v in letter.position.items()}
    digest.update(orjson.dumps([letter.source, position], option=orjson.OPT_SORT_KEYS))
    value = encode_value(letter.value)
    digest.update(b"\x00none" if value is None else b"\x01" + value)
    return digest.hexdigest()


def dead_letter_row(letter: DeadLetter, now: float) -> dict[str, Any]:
    position = {clean_text(str(k)): clean_text(str(v)) for k, v in letter.position.items()}
    return {
        "id": dead_letter_id(letter),
        "value": encode_value(letter.value),
        "key": letter.key,
        "reason": clean_text(letter.reason),
        "source": clean_text(letter.source)[:200],
        "position": orjson.dumps(position).decode(),
        "received_at": letter.received_at,
        "first_seen_at": now,
    }


@dataclass(frozen=True)
class History:
    """What the dashboard is rebuilt from at start (see `ArchiveStore.history`).

    Attributes:
        posts: the posts of the newest windows, oldest first.
        feed: the newest archived posts, newest last.
        recent_ids: ids of the most recently archived posts, so a post delivered again is
            not counted again.
        total_posts / total_dead_letters: everything archived (within retention).
        newest_scored_at: when the newest archived post was scored (None: empty).
        recent_letter_ids: ids of the dead letters archived last.
    """

    posts: list[ScoredPost]
    feed: list[ScoredPost]
    recent_ids: list[str]
    total_posts: int
    total_dead_letters: int
    newest_scored_at: float | None = None
    recent_letter_ids: list[str] = field(default_factory=list)


class ArchiveStore:
    """One archive database. Thread-safe: every call takes a pooled connection.

    Args:
        url: a SQLAlchemy URL: `sqlite:///path/archive.sqlite3` or
            `postgresql://user:password@host:port/db` (driven by psycopg 3).
        connect_timeout: seconds to wait for a PostgreSQL server before failing.
    """

    def __init__(self, url: str, connect_timeout: float = 5.0) -> None:
        self.url = normalise_url(url)
        self.connect_timeout = connect_timeout
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._upsert_posts: Any = None
        self._insert_letters: Any = None

    def __repr__(self) -> str:
        return f"ArchiveStore({redact(self.url)!r})"

    @property
    def dialect(self) -> str:
        return make_url(self.url).get_backend_name()

    @property
    def sqlite_path(self) -> Path | None:
        if self.dialect != "sqlite":
            return None
        database = make_url(self.url).database
        return Path(database) if database and database != ":memory:" else None

    @property
    def engine(self) -> Engine:
        """Created on first use (never at import, never before a fork)."""
        with self._lock:
            if self._engine is None:
                self._engine = self._create_engine()
                self._upsert_posts, self._insert_letters = self._statements()
            return self._engine

    def _create_engine(self) -> Engine:
        if self.dialect == "sqlite":
            path = self.sqlite_path
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                self.url, connect_args={"timeout": 30.0, "check_same_thread": False}
            )

            @event.listens_for(engine, "connect")
            def _sqlite_settings(dbapi_connection, _record) -> None:
                cursor = dbapi_connection.cursor()
                # WAL: readers (web requests) never wait for the writer, nor it for them.
                cursor.execute("PRAGMA journal_mode=WAL")
                # Durable at each checkpoint, fast at each commit: a power cut may lose the
                # last commits, a crashed process never does.
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.close()

            return engine
        return create_engine(
            self.url,
            pool_pre_ping=True,
            pool_size=4,
            max_overflow=4,
            connect_args={"connect_timeout": max(1, round(self.connect_timeout))},
        )

    def _statements(self) -> tuple[Any, Any]:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        upsert = insert(posts)
        excluded = upsert.excluded
        kept = {"id", "first_seen_at"}
        upsert = upsert.on_conflict_do_update(
            index_elements=[posts.c.id],
            set_={c.name: excluded[c.name] for c in posts.columns if c.name not in kept},
            # A redelivered older scoring never replaces a newer one.
            where=excluded.scored_at >= posts.c.scored_at,
        )
        letters = insert(dead_letters).on_conflict_do_nothing(index_elements=[dead_letters.c.id])
        return upsert, letters

    # -- schema ---------------------------------------------------------------------------
    def migrate(self, revision: str = "head") -> None:
        """Create or upgrade the schema to `revision`, by default the newest (safe to run
        concurrently from several processes: they take turns)."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        settings = AlembicConfig()
        settings.set_main_option("script_location", str(MIGRATIONS))
        with self._migration_lock(), self.engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            settings.attributes["connection"] = connection
            command.upgrade(settings, revision)
            if repair_search_index(connection):
                log.warning("full-text index triggers were missing: restored and re-indexed")

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        path = self.sqlite_path
        if path is None:
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)  # before the engine creates it
        with open(f"{path}.migrate-lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def revision(self) -> str | None:
        """The schema's migration revision (None before `migrate`)."""
        with self.engine.connect() as connection:
            try:
                return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except Exception:
                return None

    # -- writes ---------------------------------------------------------------------------
    def write(
        self,
        scored: Sequence[ScoredPost],
        letters: Sequence[DeadLetter] = (),
        now: float | None = None,
    ) -> None:
        """Store posts and dead letters in one transaction (all or nothing)."""
        if not scored and not letters:
            return
        now = time.time() if now is None else now
        rows: dict[str, dict[str, Any]] = {}
        for index, item in enumerate(scored):
            # A microsecond apart: the feed rebuilt from the archive keeps the order posts
            # arrived in, within a batch too.
            row = post_row(item, now + index * 1e-6)
            known = rows.get(row["id"])
            # One row per id per statement (PostgreSQL refuses to update a row twice).
            if known is None or row["scored_at"] >= known["scored_at"]:
                rows[row["id"]] = row
        letter_rows: dict[str, dict[str, Any]] = {}
        for index, letter in enumerate(letters):
            row = dead_letter_row(letter, now + index * 1e-6)
            letter_rows.setdefault(row["id"], row)
        engine = self.engine
        with engine.begin() as connection:
            if rows:
                connection.execute(self._upsert_posts, list(rows.values()))
                index_new_posts(connection)
            if letter_rows:
                connection.execute(self._insert_letters, list(letter_rows.values()))

    def prune(self, retention_days: float, now: float | None = None) -> tuple[int, int]:
        """Delete posts and dead letters first archived more than `retention_days` ago
        (0: keep everything); how many of each went."""
        if retention_days <= 0:
            return 0, 0
        cutoff = (time.time() if now is None else now) - retention_days * _DAY
        with self.engine.begin() as connection:
            gone_posts = connection.execute(delete(posts).where(posts.c.first_seen_at < cutoff))
            gone_letters = connection.execute(
                delete(dead_letters).where(dead_letters.c.first_seen_at < cutoff)
            )
        return gone_posts.rowcount or 0, gone_letters.rowcount or 0

    # -- reads ----------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        """(posts, dead letters) archived."""
        with self.engine.connect() as connection:
            return _counts(connection)

    def disk_bytes(self) -> int:
        """Bytes the archive takes on disk (SQLite: the file and its WAL; PostgreSQL: the
        tables with their indexes and TOAST)."""
        path = self.sqlite_path
        if path is not None:
            return sum(
                os.path.getsize(p)
                for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
                if p.exists()
            )
        if self.dialect != "postgresql":
            return 0
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT pg_total_relation_size('posts') "
                        "+ pg_total_relation_size('dead_letters')"
                    )
                ).scalar()
                or 0
            )

    def get(self, post_id: str) -> tuple[ScoredPost, float] | None:
        """A post and when it was first archived, or None."""
        with self.engine.connect() as connection:
            row = connection.execute(select(posts).where(posts.c.id == post_id)).first()
        return None if row is None else (scored_from_row(row), row.first_seen_at)

    def post_ids(self) -> list[str]:
        """Every archived post id (for tests and small archives)."""
        with self.engine.connect() as connection:
            return list(connection.execute(select(posts.c.id)).scalars())

    def dead_letter_rows(self) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(select(dead_letters)))

    def history(
        self,
        window_seconds: int,
        windows_kept: int,
        feed_size: int,
        ids_kept: int,
        letters_kept: int = 10_000,
    ) -> History:
        """What the dashboard needs at start: the posts of the newest `windows_kept` windows
        (by event time, as the live windows are kept), the newest `feed_size` posts, and
        the ids of the `ids_kept` posts archived last."""
        with self.engine.connect() as connection:
            total_posts, total_letters = _counts(connection)
            newest, newest_scored = connection.execute(
                select(func.max(posts.c.created_at), func.max(posts.c.scored_at))
            ).one()
            window_posts: list[ScoredPost] = []
            if newest is not None:
                newest_key = int(newest) // window_seconds
                start = (newest_key - windows_kept + 1) * window_seconds
                rows = connection.execute(
                    select(posts).where(posts.c.created_at >= start).order_by(posts.c.created_at)
                )
                window_posts = [scored_from_row(r) for r in rows]
            feed_rows = connection.execute(
                select(posts).order_by(posts.c.first_seen_at.desc()).limit(feed_size)
            )
            feed = [scored_from_row(r) for r in feed_rows][::-1]
            ids = list(
                connection.execute(
                    select(posts.c.id).order_by(posts.c.first_seen_at.desc()).limit(ids_kept)
                ).scalars()
            )[::-1]
            letter_ids = list(
                connection.execute(
                    select(dead_letters.c.id)
                    .order_by(dead_letters.c.first_seen_at.desc())
                    .limit(letters_kept)
                ).scalars()
            )[::-1]
        return History(
            window_posts, feed, ids, total_posts, total_letters, newest_scored, letter_ids
        )

    def posts_since(self, created_from: float, limit: int) -> list[ScoredPost]:
        """Posts created at or after `created_from`, oldest first (ties by id), at most
        the newest `limit` of them."""
        with self.engine.connect() as connection:
            newest_first = connection.execute(
                select(posts)
                .where(posts.c.created_at >= created_from)
                .order_by(posts.c.created_at.desc(), posts.c.id.desc())
                .limit(limit)
            )
            return [scored_from_row(r) for r in newest_first][::-1]

    def pages(
        self, start: float, end: float | None = None, size: int = 5_000
    ) -> Iterator[list[Any]]:
        """The rows of the posts created in [start, end), oldest first (ties by id), `size`
        at a time: keyset pages, so memory stays at one page however many there are."""
        after: tuple[float, str] | None = None
        while True:
            query = select(posts).where(posts.c.created_at >= start)
            if end is not None:
                query = query.where(posts.c.created_at < end)
            if after is not None:
                query = query.where(
                    or_(
                        posts.c.created_at > after[0],
                        and_(posts.c.created_at == after[0], posts.c.id > after[1]),
                    )
                )
            query = query.order_by(posts.c.created_at, posts.c.id).limit(size)
            with self.engine.connect() as connection:
                rows = list(connection.execute(query))
            if rows:
                yield rows
            if len(rows) < size:
                return
            after = (rows[-1].created_at, rows[-1].id)

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def _counts(connection: Connection) -> tuple[int, int]:
    n_posts = connection.execute(select(func.count()).select_from(posts)).scalar() or 0
    n_letters = connection.execute(select(func.count()).select_from(dead_letters)).scalar() or 0
    return int(n_posts), int(n_letters)
