"""Training data: posts in posting-time order with their log(1 + outcome) targets.

Files (CSV, TSV, JSONL) or synthetic posts become a `Dataset`; `split_index` says where the
time-ordered held-out part begins. Nothing here is shuffled across time.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from models.registry import sha256_file
from streaming.records import InvalidPost, Post, parse_post
from streaming.sources import (
    DELIMITED_SUFFIXES,
    ColumnMapping,
    parse_file_time,
    read_rows,
    row_to_raw_post,
)
from streaming.synthetic import TRAINING_START, SyntheticPostGenerator, strip_private

DEFAULT_TRAINING_POSTS = 6000
TEST_FRACTION = 0.2


class DatasetError(ValueError):
    """A training file that cannot be used; the message says what to change."""


@dataclass
class Dataset:
    """Posts sorted by posting time, their log(1 + outcome) targets, and where they came from.

    `description` goes into the manifest and the experiment log: source, sha256 of every file
    (or the synthetic seed), a `fingerprint` of the whole, rows used and rows skipped.
    """

    posts: list[Post]
    log_targets: np.ndarray
    description: dict[str, Any] = field(default_factory=dict)


def total_engagement(post: Post) -> int:
    """Observed likes + shares + replies: the training target, never an input."""
    return sum(post.engagement.values()) if post.engagement else 0


def synthetic_training_set(n: int, seed: int) -> list[Post]:
    generator = SyntheticPostGenerator(seed=seed, start=TRAINING_START, rate=0.05)
    return [parse_post(strip_private(raw)) for raw in generator.take(n)]


def synthetic_dataset(n: int = DEFAULT_TRAINING_POSTS, seed: int = 11) -> Dataset:
    """`n` synthetic posts (already in time order) with their likes + shares + replies."""
    posts = synthetic_training_set(n, seed)
    return Dataset(
        posts,
        np.log1p([total_engagement(p) for p in posts]),
        {
            "source": "synthetic",
            "seed": seed,
            "rows": n,
            "fingerprint": f"synthetic:seed={seed}:posts={n}",
            "target": "log(1 + likes + shares + replies)",
        },
    )


def load_dataset(
    paths: Sequence[str | Path],
    mapping: ColumnMapping,
    target_columns: Sequence[str],
    encoding: str = "utf-8",
) -> Dataset:
    """Posts and targets from CSV/TSV/JSONL files, sorted by posting time.

    The target is log(1 + the sum of `target_columns`). Rows without readable text, time or
    target are skipped and counted; a post id seen before is skipped as a duplicate.

    Raises:
        DatasetError: unreadable file, wrong encoding, missing columns, or no usable rows.
    """
    if not target_columns:
        raise DatasetError(
            "say which column(s) hold the outcome to predict, e.g. --target-col favorites "
            "(repeat it to sum several: --target-col likes --target-col retweets)"
        )
    if not mapping.created_at:
        raise DatasetError("training needs posting times: pass --time-col")
    rows: list[tuple[Post, float]] = []
    skipped: Counter[str] = Counter()
    files = []
    seen_ids: set[str] = set()
    for order, raw_path in enumerate(paths):
        path = Path(raw_path)
        if not path.is_file():
            raise DatasetError(f"no such file: {path}")
        used, checked = 0, False
        try:
            for number, row in read_rows(path, encoding):
                if isinstance(row, str):
                    skipped["not a JSON object"] += 1
                    continue
                if not checked and path.suffix.lower() in DELIMITED_SUFFIXES:
                    _check_columns(path, row, mapping, target_columns)  # the header row
                    checked = True
                post_or_reason = _training_row(row, mapping, target_columns, f"{order}:{number}")
                if isinstance(post_or_reason, str):
                    skipped[post_or_reason] += 1
                    continue
                post, target = post_or_reason
                if mapping.id and row.get(mapping.id) not in (None, ""):
                    if post.id in seen_ids:
                        skipped["duplicate id"] += 1
                        continue
                    seen_ids.add(post.id)
                rows.append((post, target))
                used += 1
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"{path} is not valid {encoding} (byte {exc.start}); try --encoding latin-1"
            ) from exc
        except ValueError as exc:  # unsupported suffix
            raise DatasetError(str(exc)) from exc
        files.append({"path": str(path.resolve()), "sha256": sha256_file(path), "rows": used})
    if len(rows) < 50:
        raise DatasetError(
            f"only {len(rows)} usable rows (skipped: {dict(skipped) or 'none'}); "
            "training needs at least 50"
        )
    rows.sort(key=lambda pair: pair[0].created_at)  # stable: ties keep the file order
    posts = [post for post, _ in rows]
    targets = np.log1p(np.array([target for _, target in rows], dtype=np.float64))
    fingerprint = (
        files[0]["sha256"]
        if len(files) == 1
        else hashlib.sha256("".join(f["sha256"] for f in files).encode()).hexdigest()
    )
    description = {
        "source": "file",
        "files": files,
        "fingerprint": fingerprint,
        "encoding": encoding,
        "mapping": {k: v for k, v in asdict(mapping).items() if v is not None},
        "target_columns": list(target_columns),
        "target": f"log(1 + {' + '.join(target_columns)})",
        "rows": len(posts),
        "skipped": dict(skipped),
        "first": posts[0].created_at.isoformat(),
        "last": posts[-1].created_at.isoformat(),
    }
    return Dataset(posts, targets, description)


def _check_columns(path: Path, row: Mapping, mapping: ColumnMapping, targets: Sequence[str]):
    wanted = [mapping.text, mapping.created_at, *targets]
    missing = [c for c in wanted if c and c not in row]
    if missing:
        raise DatasetError(
            f"{path.name} has no column(s) {', '.join(map(repr, missing))}; "
            f"it has: {', '.join(map(str, list(row)[:30]))}"
        )


def _training_row(
    row: Mapping[str, Any], mapping: ColumnMapping, targets: Sequence[str], default_id: str
) -> tuple[Post, float] | str:
    """(post, outcome) of one file row, or the reason it cannot be used."""
    total = 0.0
    for column in targets:
        try:
            value = float(row.get(column))
        except (TypeError, ValueError):
            return "target missing or not a number"
        if not math.isfinite(value) or value < 0:
            return "target missing or not a number"
        total += value
    if parse_file_time(row.get(mapping.created_at), mapping.time_format) is None:
        return "time missing or unreadable"
    raw = row_to_raw_post(row, mapping)
    raw.pop("engagement", None)  # outcomes never enter the post the features are built from
    try:
        post = parse_post(raw, default_id=default_id)
    except InvalidPost:
        return "invalid post"
    return post, total


def split_index(n_rows: int, test_fraction: float = TEST_FRACTION) -> int:
    """Rows before the returned index train; the later rest is held out."""
    split = round(n_rows * (1.0 - test_fraction))
    return min(max(split, 1), n_rows - 1)


def check_time_order(posts: Sequence[Post]) -> None:
    """Raise ValueError unless `posts` are sorted by posting time."""
    for earlier, later in pairwise(posts):
        if later.created_at < earlier.created_at:
            raise ValueError("posts must be sorted by created_at (see load_dataset)")
