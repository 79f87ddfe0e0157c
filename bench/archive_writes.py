"""How fast the archive stores scored posts, batched as its writer batches them."""

from __future__ import annotations

import time
from dataclasses import replace

from archive.store import ArchiveStore
from streaming.records import ScoredPost


def insert_rate(
    url: str, scored: list[ScoredPost], total: int = 200_000, batch: int = 2000
) -> dict:
    """Write `total` posts (copies of `scored` under new ids) into a fresh archive at `url`
    in transactions of `batch` posts, as `ArchiveSink` does; then the same posts again (a
    redelivery: every row an upsert that changes nothing)."""
    store = ArchiveStore(url)
    store.migrate()
    posts = [
        replace(s, post=replace(s.post, id=f"bench-{i}"))
        for i, s in zip(range(total), _cycle(scored), strict=False)
    ]
    try:
        first = _timed_writes(store, posts, batch)
        again = _timed_writes(store, posts, batch)
        stored = store.counts()[0]
    finally:
        store.close()
    return {
        "engine": store.dialect,
        "posts": total,
        "batch": batch,
        "posts_per_s": round(total / first),
        "redelivered_posts_per_s": round(total / again),
        "rows_stored": stored,
    }


def _timed_writes(store: ArchiveStore, posts: list[ScoredPost], batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(posts), batch):
        store.write(posts[i : i + batch])
    return time.perf_counter() - start


def _cycle(items: list[ScoredPost]):
    while True:
        yield from items
