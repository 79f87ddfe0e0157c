"""Archived posts read back in event-time order, for replays of a time range."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import func, select

from archive.schema import posts
from archive.store import ArchiveStore, scored_from_row
from streaming.replay import OrderedInput, ReplayItem

DERIVED_FIELDS = ("mentions", "urls", "emoji")
PAGE_ROWS = 2000  # rows per query: memory stays flat whatever the range holds


def archive_input(
    store: ArchiveStore,
    start: float,
    end: float,
    page_rows: int = PAGE_ROWS,
    close_store: bool = False,
) -> OrderedInput:
    """The posts created in [start, end), oldest first (ties by id), as replay items.

    They come in pages of `page_rows` by keyset (created_at, id), so a range of millions of
    posts is never loaded at once. Each item is the post as it was first received, scored
    again by the replay. With `close_store`, the store is closed once the items end (or
    their iterator is closed).
    """
    if not end > start:
        raise ValueError("the time range must end after it starts")
    with store.engine.connect() as connection:
        total, first, last = connection.execute(
            select(func.count(), func.min(posts.c.created_at), func.max(posts.c.created_at)).where(
                posts.c.created_at >= start, posts.c.created_at < end
            )
        ).one()

    def items() -> Iterator[ReplayItem]:
        try:
            yield from pages()
        finally:
            if close_store:
                store.close()

    def pages() -> Iterator[ReplayItem]:
        for rows in store.pages(start, end, page_rows):
            for row in rows:
                post = scored_from_row(row).post
                raw = post.to_dict()
                for derived in DERIVED_FIELDS:  # found again in the text when it is read
                    raw.pop(derived, None)
                if raw["engagement"] is None:
                    del raw["engagement"]
                yield ReplayItem(post.created_at.timestamp(), raw, {"archive": post.id})

    return OrderedInput(items(), int(total or 0), first, last)
