"""Explore's reads of the archive for the web app: the page, `GET /api/v1/posts` and the
streamed exports share them. Every database call runs through the archive keeper (off
gevent's loop), and an archive that is off or unavailable is `ArchiveUnavailable` (503).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from flask import current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.services import services
from archive import queries
from archive.export import ExportFormat, counted
from archive.queries import ArchiveUnavailable, PostFilter, Summary
from archive.sink import ArchiveKeeper
from archive.tracked_store import TrackedTopicStore

log = logging.getLogger(__name__)
EXPORT_CHUNK_ROWS = 2000
PAGE_NAMES = ("cursor", "limit")
CACHE_EXTENSION = "socialpulse.explore_summaries"


def keeper() -> ArchiveKeeper:
    """The archive, ready to read, or `ArchiveUnavailable` saying why not."""
    archive = services().archive_keeper
    if archive is None:
        raise ArchiveUnavailable(
            "the archive is off (SOCIALPULSE_ARCHIVE_URL=off): Explore and exports need it"
        )
    if not archive.ensure_ready():
        raise ArchiveUnavailable(
            f"the archive is unavailable ({archive.error}); the live dashboard keeps running"
        )
    return archive


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """A database that refuses or drops a connection is `ArchiveUnavailable`."""
    try:
        yield
    except SQLAlchemyError as exc:
        log.warning("archive read failed: %s", exc)
        raise ArchiveUnavailable(
            f"the archive is unavailable ({type(exc).__name__}); the live dashboard keeps "
            "running: try again shortly"
        ) from None


def parse_filter(args: Any, allowed: tuple[str, ...] = ()) -> PostFilter:
    """The filter of a request, its tracked topic (if any) looked up in the archive."""
    wanted = PostFilter.parse(args, allowed=allowed)
    if wanted.tracked is None:
        return wanted
    archive = keeper()
    with database_errors():
        topics = archive.call(TrackedTopicStore(archive.store).topics)
    return resolve_tracked(wanted, topics)


def resolve_tracked(wanted: PostFilter, topics: list[Any]) -> PostFilter:
    """`wanted` with its tracked topic's keywords and hashtags, from (name, keywords,
    hashtags) rows; a name no topic has is a `FilterError`."""
    name = (wanted.tracked or "").lower()
    for topic_name, keywords, hashtags in topics:
        if topic_name.lower() == name:
            return wanted.resolve(keywords, hashtags)
    raise queries.FilterError(f"no tracked topic is named {wanted.tracked[:60]!r}")


def read_page(wanted: PostFilter, cursor: str | None, limit: int) -> queries.Page:
    config = services().config
    archive = keeper()

    def read() -> queries.Page:
        with archive.store.engine.connect() as connection:
            return queries.page(connection, wanted, cursor, limit, config.explore_timeout)

    with database_errors():
        return archive.call(read)


class SummaryCache:
    """The charts of recent filters, kept `ttl` seconds: paging through a set (each page
    shows the same charts) costs the database the page only. At most `size` filters."""

    def __init__(self, ttl: float = 15.0, size: int = 64) -> None:
        self.ttl = ttl
        self.size = size
        self._items: OrderedDict[PostFilter, tuple[float, Summary]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, wanted: PostFilter) -> Summary | None:
        with self._lock:
            item = self._items.get(wanted)
            if item is None or time.monotonic() - item[0] > self.ttl:
                return None
            return item[1]

    def put(self, wanted: PostFilter, summary: Summary) -> None:
        with self._lock:
            self._items[wanted] = (time.monotonic(), summary)
            self._items.move_to_end(wanted)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def read_summary(wanted: PostFilter) -> Summary:
    """The charts of the filtered set (`QueryTooExpensive` past the configured limits)."""
    from app.wordcloud_image import stop_words

    cache = current_app.extensions.setdefault(CACHE_EXTENSION, SummaryCache())
    cached = cache.get(wanted)
    if cached is not None:
        return cached
    config = services().config
    archive = keeper()

    def read() -> Summary:
        tracked = TrackedTopicStore(archive.store).topics()
        with archive.store.engine.connect() as connection:
            return queries.summarise(
                connection,
                wanted,
                max_rows=config.explore_max_rows,
                budget=config.explore_timeout,
                stop_words=stop_words(),
                tracked=tracked,
            )

    with database_errors():
        summary = archive.call(read)
    cache.put(wanted, summary)
    return summary


def explain(rows: list[Any]) -> list[dict[str, Any]]:
    """Rows as the page shows them, with the words that drove each sentiment score."""
    sentiment = services().pipeline.sentiment
    out = []
    for row in rows:
        record = queries.row_dict(row)
        record["drivers"] = [
            {"token": d.token, "valence": d.valence} for d in sentiment.drivers(row.text, 5)
        ]
        out.append(record)
    return out


def export_stream(wanted: PostFilter, fmt: ExportFormat) -> Iterator[bytes]:
    """The export's bytes, read a chunk at a time. The archive is checked before this
    returns, so an unavailable one is a 503 rather than a download cut short."""
    config = services().config
    archive = keeper()

    def ping() -> None:
        with archive.store.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    with database_errors():
        archive.call(ping)
    chunks = queries.chunks(
        archive.store.engine.connect,
        wanted,
        EXPORT_CHUNK_ROWS,
        budget=config.explore_timeout,
        run=archive.call,
    )
    return _logged(fmt, chunks)


def _logged(fmt: ExportFormat, chunks: Iterator[list[Any]]) -> Iterator[bytes]:
    total = 0

    def progress(rows: int) -> None:
        nonlocal total
        total += rows

    try:
        yield from fmt.write(counted(chunks, progress))
    except Exception:
        # The headers are sent: the client sees a cut-off file, the log says why.
        log.exception("export stopped after %d rows", total)
        raise
    log.info("exported %d posts as %s", total, fmt.name)


# -- the JSON API (`GET /api/v1/posts`, `/api/v1/posts/summary`) ----------------------------
def api_posts(args: Any) -> tuple[dict[str, Any], int]:
    """A page of archived posts as JSON, or an error and its status."""
    try:
        wanted = parse_filter(args, PAGE_NAMES)
        limit = queries.parse_limit(args.get("limit"))
        found = read_page(wanted, args.get("cursor") or None, limit)
    except queries.FilterError as exc:
        return {"error": str(exc)}, 400
    except ArchiveUnavailable as exc:
        return {"error": str(exc)}, 503
    body = {"posts": [queries.row_dict(r) for r in found.rows], "next_cursor": found.next_cursor}
    return body, 200


def api_summary(args: Any) -> tuple[dict[str, Any], int]:
    """The charts of the filtered set as JSON, or an error and its status."""
    try:
        summary = read_summary(parse_filter(args))
    except queries.FilterError as exc:
        return {"error": str(exc)}, 400
    except ArchiveUnavailable as exc:
        return {"error": str(exc)}, 503
    return summary.to_dict(), 200
