"""What audiences cost: profile updates next to the live pipeline, a segmentation fit for
100,000 authors, and POST /api/v1/audience latency on a running server.

Usage (alone): python -m bench.audiences [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import tempfile
import time
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from app.live import DashboardSink
from app.testing import run_manifest_key, running_server, synthetic_values
from bench.server import latency_summary
from insights.audience_data import score_raw
from insights.audience_evaluation import planted_stream
from insights.audiences import fit_segmentation
from insights.profiles import AuthorProfile, AuthorProfiles
from insights.segment_store import SegmentStore
from insights.segments import SegmentParams
from models.bootstrap import ensure_bundle
from models.registry import load_bundle
from streaming.records import (
    ClusterAssignment,
    EngagementPrediction,
    Post,
    ScoredPost,
    Sentiment,
    parse_post,
)
from streaming.synthetic import PLANTED_SEGMENTS, TOPICS, SyntheticPostGenerator


def profile_cost(model_dir: Path, values: list[bytes], authors: int = 5_000, batch: int = 500):
    """The live path of an embedded node (validate the raw posts, score the micro-batch,
    feed the dashboard) with and without author profiles, each post by one of `authors`
    authors.

    Two live paths, each with its own models and dashboard, one of them keeping profiles,
    take the same batches in turn (which goes first alternates): runs one after the other
    on this machine vary by up to ±25 % in speed on their own, far more than the
    difference sought, while paired batches see the same conditions. Also the profile
    updates' own time inside the path that keeps them, as a share of it. Times are CPU
    seconds of this process (the machine's other load does not count)."""
    from app.aggregates import LiveAggregates

    raw = []
    for i, value in enumerate(values):
        post = json.loads(value)
        post["id"], post["author"] = f"{post['id']}-{i}", f"author{i % authors}"
        raw.append(post)
    batches = [raw[i : i + batch] for i in range(0, len(raw), batch)]
    book = AuthorProfiles(max_authors=authors * 2, max_idle=0)
    updating = [0.0]

    def update(scored) -> None:
        started = time.process_time()
        book.update(scored)
        updating[0] += time.process_time() - started

    paths = {}
    for mode in ("without", "with"):
        sink = DashboardSink(LiveAggregates())
        if mode == "with":
            sink.profiles = update
        # A bundle each: pipelines of one bundle share the topic model that learns.
        paths[mode] = (load_bundle(model_dir).pipeline(), sink)
    spent = dict.fromkeys(paths, 0.0)
    gc.collect()
    gc.freeze()  # long-lived inputs out of the collector's way, as in the pipeline rows
    for number, chunk in enumerate(batches):
        for mode in ("without", "with") if number % 2 else ("with", "without"):
            pipeline, sink = paths[mode]
            started = time.process_time()
            sink.write(pipeline.score_batch([parse_post(r) for r in chunk], learn=True))
            spent[mode] += time.process_time() - started
    gc.unfreeze()
    n = len(raw)
    return {
        "posts": n,
        "authors": authors,
        "live_path_posts_per_s_without_profiles": round(n / spent["without"]),
        "live_path_posts_per_s_with_profiles": round(n / spent["with"]),
        "throughput_ratio_with_vs_without": round(spent["without"] / spent["with"], 3),
        "live_path_us_per_post": round(spent["without"] / n * 1e6, 2),
        "profile_update_us_per_post": round(updating[0] / n * 1e6, 2),
        "profiles_share_of_live_path": round(updating[0] / spent["with"], 3),
    }


def profile_bytes(n: int = 5_000, posts_each: int = 20) -> float:
    """Memory of one profile with `posts_each` posts over several topics and hashtags."""
    raw, _ = planted_stream(n_posts=2_000, n_authors=50, seed=3)
    sample = [_fake_scored(r, i) for i, r in enumerate(raw)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    book = AuthorProfiles(max_authors=n + 1, max_idle=0)
    for i in range(n):
        chunk = [replace(s, post=replace(s.post, author=f"p{i}")) for s in sample[:posts_each]]
        sample = sample[posts_each:] + sample[:posts_each]
        book.update(chunk)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return round((after - before) / n)


def _fake_scored(raw: dict, index: int) -> ScoredPost:
    """A scored post without the pipeline: the generator's topic as the cluster."""
    topic = [t.name for t in TOPICS].index(raw["_topic"])
    text = raw["text"]
    post = Post(
        raw["id"],
        text,
        raw["author"],
        datetime.fromisoformat(raw["created_at"]),
        hashtags=tuple(w[1:].lower() for w in text.split() if w.startswith("#")),
        mentions=("x",) if text.startswith("@") else (),
        urls=("u",) if "https://" in text else (),
        author_followers=raw["author_followers"],
        engagement=raw["engagement"],
    )
    return ScoredPost(
        post,
        Sentiment(0.1 * (index % 7 - 3), 0.3, 0.5, 0.2, "neutral"),
        ClusterAssignment(topic, f"#{TOPICS[topic].hashtags[0]}"),
        EngagementPrediction(math.expm1(raw["_expected_log_engagement"]), "medium"),
        "bench",
        0.0,
    )


def fit_time(authors: int = 100_000, posts_each: int = 8, seed: int = 0) -> dict:
    """Seconds to segment `authors` authors (profiles built directly, not timed)."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    profiles = []
    for i in range(authors):
        segment = PLANTED_SEGMENTS[i % len(PLANTED_SEGMENTS)]
        topics = [[t.name for t in TOPICS].index(n) for n in segment.topics]
        profile = AuthorProfile(f"a{i}")
        followers = int(math.exp(rng.gauss(5.8, 1.9)))
        for j in range(posts_each):
            topic = rng.choice(topics) if rng.random() > 0.1 else rng.randrange(len(TOPICS))
            hour = int(rng.gauss(segment.peak_hour, 3)) % 24
            when = start + timedelta(days=rng.randrange(14), hours=hour)
            value = math.expm1(max(0.0, rng.gauss(2.5 + segment.engagement, 0.5)))
            reply = rng.random() < segment.replies
            post = Post(
                f"{i}-{j}",
                ("@x " if reply else "") + "post",
                profile.handle,
                when,
                hashtags=(TOPICS[topic].hashtags[j % 5],),
                mentions=("x",) if reply else (),
                urls=("u",) if rng.random() < segment.links else (),
                author_followers=followers,
                engagement={"likes": round(value)},
            )
            profile.add(
                ScoredPost(
                    post,
                    Sentiment(rng.uniform(-1, 1), 0.3, 0.5, 0.2, "neutral"),
                    ClusterAssignment(topic, TOPICS[topic].name),
                    EngagementPrediction(value, "medium"),
                    "bench",
                    0.0,
                )
            )
        profiles.append(profile)
    gc.collect()
    started = time.perf_counter()
    segmentation = fit_segmentation(profiles, SegmentParams(min_posts=1, seed=seed))
    seconds = time.perf_counter() - started
    return {
        "authors": authors,
        "k": segmentation.metrics["k"],
        "silhouette": segmentation.metrics["silhouette"],
        "fit_s": round(seconds, 2),
    }


def api_latency(model_dir: Path, workdir: Path, requests_count: int = 1000) -> dict:
    """POST /api/v1/audience on a server streaming its default 20 posts/s, with a
    segmentation fitted on a planted stream: one post text, and a known author's handle."""
    bundle = load_bundle(model_dir, key=run_manifest_key())
    raw, _ = planted_stream(n_posts=20_000, n_authors=400, seed=1)
    book = AuthorProfiles(max_idle=0)
    book.update(score_raw(raw, bundle.pipeline().score_batch))
    SegmentStore(model_dir, run_manifest_key()).save(
        fit_segmentation(book, SegmentParams(min_posts=10))
    )
    handles = [a.handle for a in SyntheticPostGenerator(seed=7).authors]
    url = None
    out = {}
    with running_server(model_dir, workdir) as live:
        url = live.url + "/api/v1/audience"
        session = requests.Session()
        known = None
        deadline = time.monotonic() + 30
        while known is None and time.monotonic() < deadline:
            for handle in handles[:50]:
                if session.post(url, json={"handle": handle}, timeout=5).ok:
                    known = handle
                    break
            time.sleep(0.5)
        bodies = {"one_text_ms": lambda i: {"texts": [f"Post {i}: what a GAME #nba 🔥"]}}
        if known is not None:
            bodies["known_handle_ms"] = lambda i: {"handle": known}
        for name, body in bodies.items():
            for i in range(50):  # warm up
                session.post(url, json=body(i), timeout=5)
            latencies = []
            for i in range(requests_count):
                started = time.perf_counter()
                response = session.post(url, json=body(i), timeout=5)
                latencies.append((time.perf_counter() - started) * 1000.0)
                response.raise_for_status()
            out[name] = latency_summary(latencies)
    return out


def run(model_dir: Path, workdir: Path, quick: bool = False) -> dict:
    """Every audience figure (the `audiences` section of `make bench`)."""
    _, values, _ = synthetic_values(40_000 if quick else 150_000, seed=2026)
    results = {"profiles": profile_cost(model_dir, values)}
    results["profile_bytes"] = profile_bytes()
    results["fit_100k"] = fit_time(100_000)
    results["api"] = api_latency(model_dir, workdir, 300 if quick else 1000)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer posts and requests")
    parser.add_argument(
        "--only", default="profiles,fit,api", help="comma-separated: profiles,fit,api"
    )
    args = parser.parse_args()
    parts = set(args.only.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="socialpulse-bench-audiences-"))
    model_dir = workdir / "models"
    ensure_bundle(model_dir, key=run_manifest_key())
    results: dict = {}
    if "profiles" in parts:
        _, values, _ = synthetic_values(40_000 if args.quick else 150_000, seed=2026)
        results["profiles"] = profile_cost(model_dir, values)
        results["profile_bytes"] = profile_bytes()
    if "fit" in parts:
        results["fit_100k"] = fit_time(100_000)
    if "api" in parts:
        results["api"] = api_latency(model_dir, workdir, 300 if args.quick else 1000)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
