"""What the alert detectors cost next to scoring, with 10,000 subjects in the stream."""

from __future__ import annotations

import gc
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.alerting import LiveAlerts
from insights.alerts import AlertEngine, AlertRules
from insights.windows import EventTimeWindows
from models.pipeline import ScoringPipeline
from models.registry import load_bundle
from streaming.records import Post

RATE = 2000.0  # posts per second of event time: the live rate the other targets use


def detector_cost(
    model_dir: Path, posts: list[Post], subjects: int = 10_000, batch: int = 500
) -> dict:
    """Score `posts` in micro-batches, then run the scored posts through the detectors as a
    web node does, each post with one of `subjects` hashtags.

    Two costs: per post (windows, samples, the viral norms), with the posts' times at 2,000
    per second; and per closed window (every subject's baseline), measured on windows of
    1,000 posts each (every subject in many) and spread over the 1.2 million posts a
    10-minute window holds at that rate. Their sum over the time scoring takes per post is
    the detectors' share."""
    bundle = load_bundle(model_dir)
    pipeline = ScoringPipeline(bundle.clusterer, bundle.engagement, bundle.version)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    tagged = [
        replace(
            post,
            hashtags=(f"subject{i % subjects}",),
            created_at=start + timedelta(seconds=i / RATE),
        )
        for i, post in enumerate(posts)
    ]
    gc.collect()
    gc.freeze()  # long-lived inputs out of the collector's way, as in the pipeline rows
    scored = []
    started = time.perf_counter()
    for i in range(0, len(tagged), batch):
        scored += pipeline.score_batch(tagged[i : i + batch], learn=True)
    scoring_us = (time.perf_counter() - started) / len(posts) * 1e6
    gc.freeze()

    alerts = LiveAlerts(AlertRules())
    started = time.perf_counter()
    for i in range(0, len(scored), batch):
        alerts.write(scored[i : i + batch])
    per_post_us = (time.perf_counter() - started) / len(posts) * 1e6

    # Windows of 1,000 posts each: baselines for every subject, closed one after another.
    window_s = AlertRules().window_seconds
    spaced = [
        replace(s, post=replace(s.post, created_at=start + timedelta(seconds=i * window_s / 1000)))
        for i, s in enumerate(scored)
    ]
    windows = EventTimeWindows(window_s, 0.0).add(spaced)
    engine = AlertEngine(AlertRules())
    for window in windows[: len(windows) // 2]:  # every subject gets a baseline first
        engine.close_window(window)
    timed = windows[len(windows) // 2 :]
    started = time.perf_counter()
    for window in timed:
        engine.close_window(window)
    close_ms = (time.perf_counter() - started) / len(timed) * 1e3
    gc.unfreeze()
    per_window_posts = RATE * window_s
    total_us = per_post_us + close_ms * 1e3 / per_window_posts
    return {
        "posts": len(posts),
        "subjects": subjects,
        "baselines": len(engine.baselines),
        "scoring_us_per_post": round(scoring_us, 2),
        "detectors_us_per_post": round(per_post_us, 2),
        "window_close_ms": round(close_ms, 1),
        "posts_per_window_at_2000_per_s": int(per_window_posts),
        "detectors_share_of_pipeline": round(total_us / scoring_us, 3),
    }
