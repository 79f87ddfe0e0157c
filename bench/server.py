"""The running server: API latency, dashboard update latency at 1,000 posts/s, memory."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import requests
import socketio

from app.testing import running_server
from streaming.metrics import percentile


def latency_summary(values: list[float]) -> dict[str, float | None]:
    """p50, p99 and max of latencies (ms), and how many there were."""
    return {
        "p50": percentile(values, 0.50, digits=2),
        "p99": percentile(values, 0.99, digits=2),
        "max": percentile(values, 1.0, digits=2),
        "n": len(values),
    }


def api_latency(model_dir: Path, workdir: Path, requests_count: int = 1000) -> dict:
    """Single-post POST /api/v1/analyze on a server streaming its default 20 posts/s."""
    with running_server(model_dir, workdir) as live:
        session = requests.Session()
        body = {
            "text": "Loving the new #nba season, what a GAME!!! 🔥",
            "hashtags": ["nba"],
            "author_followers": 1200,
        }
        for _ in range(50):  # warm up
            session.post(live.url + "/api/v1/analyze", json=body, timeout=5)
        latencies = []
        for i in range(requests_count):
            body["text"] = f"Post {i}: loving the new #nba season, what a GAME!!! 🔥"
            started = time.perf_counter()
            response = session.post(live.url + "/api/v1/analyze", json=body, timeout=5)
            latencies.append((time.perf_counter() - started) * 1000.0)
            response.raise_for_status()
    return {"single_post_ms": latency_summary(latencies)}


def dashboard_latency_and_memory(
    model_dir: Path, workdir: Path, rate: int = 1000, duration: float = 600.0
) -> dict:
    """Post created → update received by a Socket.IO client, and server RSS over the run."""
    latencies: list[float] = []
    oldest: list[float] = []
    lock = threading.Lock()
    counts = {"updates": 0, "posts": 0}
    client = socketio.Client()

    @client.on("update", namespace="/live")
    def on_update(data):
        now = time.time()
        posts = data.get("posts") or []
        with lock:
            counts["updates"] += 1
            counts["posts"] += len(posts)
            for post in posts:
                created = datetime.fromisoformat(post["created_at"]).timestamp()
                latencies.append((now - created) * 1000.0)
            if data.get("oldest_received_at"):
                oldest.append((now - data["oldest_received_at"]) * 1000.0)

    memory: list[tuple[float, float]] = []
    # The dashboard keeps `windows_kept` event-time windows; with 30 windows of 10 s it is
    # full after 5 minutes, so the rest of the run shows whether memory stays flat.
    with running_server(
        model_dir, workdir, "--rate", str(rate), SOCIALPULSE_WINDOWS_KEPT="30"
    ) as live:
        client.connect(live.url, namespaces=["/live"], wait_timeout=10)
        started = time.monotonic()
        warmup = min(60.0, duration / 5)
        while (elapsed := time.monotonic() - started) < duration:
            if elapsed >= warmup:
                memory.append((elapsed, live.rss_mb()))
            time.sleep(min(10.0, max(1.0, duration / 60)))
        health = requests.get(live.url + "/healthz", timeout=5).json()
        client.disconnect()
    with lock:
        kept = latencies[len(latencies) // 10 :]  # drop the warm-up tenth
        worst = oldest[len(oldest) // 10 :]
    times = np.array([t for t, _ in memory])
    rss = np.array([m for _, m in memory])
    full = times >= min(300.0, duration / 2)  # once the retained windows are full
    slope = (
        float(np.polyfit(times[full], rss[full], 1)[0] * 60.0) if full.sum() > 2 else float("nan")
    )
    return {
        "rate_posts_per_s": rate,
        "duration_s": duration,
        "scored": health["scored"],
        "achieved_posts_per_s": round(health["scored"] / duration, 1),
        "updates_received": counts["updates"],
        "posts_per_update": round(counts["posts"] / max(1, counts["updates"]), 1),
        "update_latency_ms": latency_summary(kept),
        "update_latency_oldest_post_ms": latency_summary(worst),
        "memory_mb": {
            "after_warmup": round(float(rss[0]), 1) if len(rss) else None,
            "end": round(float(rss[-1]), 1) if len(rss) else None,
            "max": round(float(rss.max()), 1) if len(rss) else None,
            "slope_mb_per_min_once_windows_full": round(slope, 3),
        },
    }
