"""Explore on a large archive: what one page costs (the posts and the charts of a filtered
day) on 1,000,000 archived posts in SQLite, and how fast exports stream.

Run alone: python -m bench.explore [--posts N] [--days D]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from app.testing import run_manifest_key, synthetic_values
from archive import queries
from archive.export import FORMATS
from archive.queries import PostFilter
from archive.schema import posts
from archive.search import index_new_posts
from archive.store import ArchiveStore, post_row
from models.bootstrap import ensure_bundle
from models.pipeline import ScoringPipeline
from models.registry import load_bundle
from streaming.records import parse_post

T0 = 1_700_000_000.0
DAY = 86_400.0
INSERT_ROWS = 20_000


def _templates(model_dir: Path, count: int = 2000) -> list[dict]:
    """Rows of `count` really scored synthetic posts, to be copied with new ids and times."""
    bundle = load_bundle(model_dir)
    pipeline = ScoringPipeline(bundle.clusterer, bundle.engagement, bundle.version)
    _, values, _ = synthetic_values(count, seed=99)
    scored = pipeline.score_batch([parse_post(v) for v in values])
    return [post_row(s, T0) for s in scored]


def build(store: ArchiveStore, templates: list[dict], n: int, days: float) -> dict:
    """`n` posts spread evenly over `days`, by bulk inserts indexed for full-text search as
    the archive's writer indexes them. Rows go in oldest first, as a live archive fills."""
    step = days * DAY / n
    rng = random.Random(7)
    started = time.perf_counter()
    for first in range(0, n, INSERT_ROWS):
        rows = []
        for i in range(first, min(first + INSERT_ROWS, n)):
            row = dict(templates[i % len(templates)])
            row["id"] = f"b{i:09d}"
            row["created_at"] = T0 + i * step + rng.random() * step
            row["first_seen_at"] = row["updated_at"] = row["created_at"]
            rows.append(row)
        with store.engine.begin() as connection:
            connection.execute(posts.insert(), rows)
            index_new_posts(connection)  # as the store's writer does after its upsert
    seconds = time.perf_counter() - started
    return {
        "posts": n,
        "days": days,
        "seconds": round(seconds, 1),
        "posts_per_s": round(n / seconds),
    }


def write_rate(store: ArchiveStore, model_dir: Path, n: int = 40_000) -> dict:
    """The archive writer's rate (batched upserts of 2,000, with the full-text index)."""
    bundle = load_bundle(model_dir)
    pipeline = ScoringPipeline(bundle.clusterer, bundle.engagement, bundle.version)
    _, values, _ = synthetic_values(n, seed=5)
    scored = []
    for i in range(0, n, 2000):
        scored += pipeline.score_batch([parse_post(v) for v in values[i : i + 2000]])
    started = time.perf_counter()
    for i in range(0, n, 2000):
        store.write(scored[i : i + 2000])
    seconds = time.perf_counter() - started
    return {"posts": n, "posts_per_s": round(n / seconds)}


def postgres_write_rate(url: str, model_dir: Path) -> dict:
    """The same writer into PostgreSQL, in a schema of its own (dropped afterwards)."""
    schema = f"bench_{int(time.time())}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in url else "?"
    store = ArchiveStore(f"{url}{separator}options=-csearch_path%3D{schema}")
    try:
        store.migrate()
        return write_rate(store, model_dir)
    finally:
        store.close()
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _filters(
    days: float, templates: list[dict], rng: random.Random
) -> list[tuple[str, PostFilter]]:
    """A random day of the archive with each kind of filter on it."""
    day = T0 + rng.randrange(int(days) - 1) * DAY
    template = rng.choice(templates)
    word = next(
        (w for w in queries._WORD_RE.findall(template["text"].lower()) if len(w) > 3), "great"
    )
    tags = json.loads(template["hashtags"]) or ["nba"]
    base = {"start": day, "end": day + DAY}
    return [
        ("day", PostFilter(**base)),
        ("day + text", PostFilter(**base, terms=(word,))),
        ("day + hashtag", PostFilter(**base, hashtag=tags[0])),
        ("day + cluster", PostFilter(**base, cluster=template["cluster_id"])),
        ("day + negative", PostFilter(**base, sentiment="negative")),
        ("day + author", PostFilter(**base, author=template["author"])),
    ]


def query_latency(store: ArchiveStore, templates: list[dict], days: float, rounds: int) -> dict:
    """What the Explore page runs for one request: a page of 50 posts and the charts of
    the filtered set, for a random day with each kind of filter."""
    from app.wordcloud_image import stop_words

    rng = random.Random(11)
    stops = stop_words()
    timings: dict[str, list[float]] = {}
    matched: list[int] = []
    with store.engine.connect() as connection:
        for _ in range(rounds):
            for name, wanted in _filters(days, templates, rng):
                started = time.perf_counter()
                queries.page(connection, wanted, None, 50)
                summary = queries.summarise(connection, wanted, stop_words=stops)
                timings.setdefault(name, []).append((time.perf_counter() - started) * 1e3)
                matched.append(summary.total)
    every = [t for ts in timings.values() for t in ts]
    return {
        "requests": len(every),
        "posts_matched_median": int(statistics.median(matched)),
        "ms": _percentiles(every),
        "ms_by_filter": {name: _percentiles(ts) for name, ts in timings.items()},
    }


def export_rate(store: ArchiveStore, days: float, span_days: float = 7.0) -> dict:
    """Rows per second exported, `span_days` of the archive, each format (bytes discarded)."""
    wanted = PostFilter(start=T0, end=T0 + span_days * DAY)
    out = {}
    for name, fmt in FORMATS.items():
        rows = 0

        def counted():
            nonlocal rows
            for chunk in queries.chunks(store.engine.connect, wanted, 2000, budget=60.0):
                rows += len(chunk)
                yield chunk

        started = time.perf_counter()
        size = sum(len(part) for part in fmt.write(counted()))
        seconds = time.perf_counter() - started
        out[name] = {"rows": rows, "rows_per_s": round(rows / seconds), "mb": round(size / 1e6, 1)}
    return out


def _percentiles(values: list[float]) -> dict:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.5), "p95": at(0.95), "max": round(ordered[-1], 1)}


def run(
    model_dir: Path,
    workdir: Path,
    n: int = 1_000_000,
    days: float = 30.0,
    rounds: int = 10,
    archive: Path | None = None,
) -> dict:
    """Build the archive (or reuse `archive`, built by an earlier run), then measure."""
    store = ArchiveStore(f"sqlite:///{archive or workdir / 'explore-bench.sqlite3'}")
    store.migrate()
    templates = _templates(model_dir)
    results: dict = {}
    if archive is None:
        results["build"] = build(store, templates, n, days)
        with store.engine.begin() as connection:  # fresh statistics, as after a day of use
            connection.exec_driver_sql("ANALYZE")
    results["queries"] = query_latency(store, templates, days, rounds)
    results["day_query_ms"] = results["queries"]["ms"]
    results["export"] = export_rate(store, days)
    results["disk_mb"] = round(store.disk_bytes() / 1e6)
    store.close()
    # The writer into an empty archive, with the full-text and Explore indexes.
    fresh = ArchiveStore(f"sqlite:///{workdir / 'explore-writer.sqlite3'}")
    fresh.migrate()
    results["writer"] = write_rate(fresh, model_dir)
    fresh.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--archive", type=Path, help="reuse an archive an earlier run built")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="socialpulse-bench-explore-"))
    model_dir = workdir / "models"
    ensure_bundle(model_dir, key=run_manifest_key())
    results = run(model_dir, workdir, args.posts, args.days, args.rounds, args.archive)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
