"""Posts for offline segmentation: read from a file, or from the archive, and scored by
the live pipeline in micro-batches (the command, the report and the notebook use these)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streaming.records import InvalidPost, Post, ScoredPost, parse_post
from streaming.sources import ColumnMapping, read_rows, row_to_raw_post

log = logging.getLogger(__name__)

Scorer = Callable[[Sequence[Post]], Sequence[ScoredPost]]


def file_posts(
    path: str | Path,
    mapping: ColumnMapping,
    encoding: str = "utf-8",
    limit: int | None = None,
) -> tuple[list[Post], int]:
    """Valid posts of a CSV/TSV/JSONL file, oldest first (a repeated id counts once), and
    how many rows were skipped as invalid."""
    posts: dict[str, Post] = {}
    skipped = 0
    for _, row in read_rows(Path(path), encoding):
        if isinstance(row, str):
            skipped += 1
            continue
        try:
            post = parse_post(row_to_raw_post(row, mapping))
        except InvalidPost:
            skipped += 1
            continue
        posts.setdefault(post.id, post)
        if limit is not None and len(posts) >= limit:
            break
    ordered = sorted(posts.values(), key=lambda p: (p.created_at, p.id))
    return ordered, skipped


def score_posts(posts: Sequence[Post], score: Scorer, batch: int = 500) -> list[ScoredPost]:
    """The posts scored in micro-batches, as the live stream scores them."""
    out: list[ScoredPost] = []
    for start in range(0, len(posts), batch):
        out.extend(score(posts[start : start + batch]))
    return out


def score_raw(raw: Sequence[dict[str, Any]], score: Scorer, batch: int = 500) -> list[ScoredPost]:
    """Raw post dicts (private `_` keys dropped) validated and scored."""
    posts = [parse_post({k: v for k, v in r.items() if not k.startswith("_")}) for r in raw]
    return score_posts(posts, score, batch)
