"""What the alert detectors cost next to scoring, with 10,000 subjects in the stream."""

from __future__ import annotations

import gc
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.alerting import LiveAlerts
from insights.alerts import AlertRules
from models.pipeline import ScoringPipeline
from models.registry import load_bundle
from streaming.records import Post


def detector_cost(
    model_dir: Path, posts: list[Post], subjects: int = 10_000, batch: int = 500, hours: float = 6
) -> dict:
    """Score `posts` in micro-batches, then run the scored posts through the detectors, as a
    web node does: each post gets one of `subjects` hashtags, and their times span `hours`,
    so windows close all along. The detectors' share is their time over scoring's."""
    bundle = load_bundle(model_dir)
    pipeline = ScoringPipeline(bundle.clusterer, bundle.engagement, bundle.version)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    step = hours * 3600 / len(posts)
    tagged = [
        replace(
            post,
            hashtags=(f"subject{i % subjects}",),
            created_at=start + timedelta(seconds=i * step),
        )
        for i, post in enumerate(posts)
    ]
    gc.collect()
    scored = []
    started = time.perf_counter()
    for i in range(0, len(tagged), batch):
        scored += pipeline.score_batch(tagged[i : i + batch], learn=True)
    scoring_s = time.perf_counter() - started

    alerts = LiveAlerts(AlertRules())
    started = time.perf_counter()
    for i in range(0, len(scored), batch):
        alerts.write(scored[i : i + batch])
    alerts.flush()
    detecting_s = time.perf_counter() - started
    return {
        "posts": len(posts),
        "subjects": subjects,
        "windows": alerts.engine.windows_seen,
        "baselines": len(alerts.engine.baselines),
        "scoring_posts_per_s": round(len(posts) / scoring_s),
        "detectors_posts_per_s": round(len(posts) / detecting_s),
        "detectors_share_of_pipeline": round(detecting_s / scoring_s, 3),
        "alerts": len(alerts.recent()),
    }
