"""Replay throughput at full speed, against the live embedded pipeline on the same posts.

Live: the embedded stream's path (a list source, micro-batches of 500, learning, into the
dashboard's aggregates). Replay: the same posts written to a JSONL file, read, sorted by
event time, scored with the frozen model and counted into a replay session's aggregates.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

from app.aggregates import LiveAggregates
from app.live import DashboardSink
from app.replay import ReplaySession, ReplaySpec, open_input
from app.testing import run_config, run_manifest_key
from app.wordcloud_image import stop_words
from models.registry import load_bundle
from streaming.runner import StreamRunner
from streaming.sinks import LogDeadLetterSink
from streaming.sources import ListSource


def run(model_dir: Path, workdir: Path, values: list[bytes]) -> dict:
    """Posts per second of each path, and their ratio (the target: ≥ 0.8)."""
    words = stop_words()
    bundle = load_bundle(model_dir, key=run_manifest_key())
    pipeline = bundle.pipeline()
    pipeline.score_batch([], learn=False)
    gc.collect()
    runner = StreamRunner(
        ListSource(values),
        pipeline,
        [DashboardSink(LiveAggregates(stop_words=words)), LogDeadLetterSink()],
        batch_max_posts=500,
        batch_max_wait=0.05,
    )
    started = time.perf_counter()
    live_stats = runner.run()
    live_seconds = time.perf_counter() - started

    path = workdir / "replay-bench.jsonl"
    path.write_bytes(b"\n".join(values) + b"\n")
    config = run_config(model_dir, workdir / "replay-instance", archive_url="off")
    spec = ReplaySpec("file", str(path)).validated()
    gc.collect()
    started = time.perf_counter()
    session = ReplaySession(
        "bench",
        spec,
        open_input(spec, config, config.replay_order_bound),
        load_bundle(model_dir, bundle.version, run_manifest_key()).pipeline(),
        config,
        stop_words=words,
    )
    session.run()
    replay_seconds = time.perf_counter() - started
    live_rate = live_stats.scored / live_seconds
    replay_rate = session.digest.count / replay_seconds
    return {
        "posts": len(values),
        "live_posts_per_s": round(live_rate),
        "replay_full_speed_posts_per_s": round(replay_rate),
        "replay_vs_live": round(replay_rate / live_rate, 3),
        "replay_state": session.state,
    }
