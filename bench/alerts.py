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
        # As live: a provisional look when the window ends (a copy of it), then its close.
        engine.preview_window(window.snapshot())
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


def alert_latency(model_dir: Path, bursts: int = 5, window: float = 10.0) -> dict:
    """From the end of an event-time window to a Socket.IO client holding its alert.

    A web node in this process (the real app and Socket.IO server, threaded) scores a live
    stream (20 posts/s, each stamped with the time it is sent) whose detectors were warmed
    with 20 minutes of history; `bursts` new hashtags burst, each in its own window of
    `window` seconds (2 s of lateness). A Socket.IO client connected to `/live` notes when
    each burst's alert first reaches it; the latency is that moment minus the window's end.
    Windows of 10 s instead of 10 min make the run short; nothing in the path depends on
    the window's length."""
    import logging
    import math
    import threading

    import socketio
    from werkzeug.serving import make_server

    from app import create_app
    from app.live import NAMESPACE, UPDATE_EVENT
    from app.services import services
    from app.testing import free_port, run_config
    from streaming.records import parse_post

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    config = run_config(
        model_dir,
        Path(model_dir).parent / "alert-latency-instance",
        alert_window=window,
        alert_lateness=2.0,
        archive_url="off",
        emit_interval=0.125,
    )
    flask_app = create_app(config)
    port = free_port()
    http = make_server("127.0.0.1", port, flask_app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    counter = iter(range(10**9))

    def posts(texts: list[str], at: float) -> list:
        stamp = datetime.fromtimestamp(at, UTC).isoformat()
        return [
            parse_post(
                {"id": f"lat-{next(counter)}", "text": t, "author": "bench", "created_at": stamp}
            )
            for t in texts
        ]

    seen: dict[str, float] = {}
    provisional: dict[str, bool] = {}
    client = socketio.Client(reconnection=False)

    @client.on(UPDATE_EVENT, namespace=NAMESPACE)
    def on_update(payload: dict) -> None:
        now = time.time()
        for alert in payload.get("alerts", []):
            subject = alert.get("subject", "")
            if subject.startswith("#burst") and subject not in seen:
                seen[subject] = now
                provisional[subject] = bool(alert.get("provisional"))

    with flask_app.app_context():
        state = services()
        pipeline, sink = state.pipeline, state.dashboard_sink
        start = time.time()
        history = []
        for k in range(130):  # calm windows before now, so baselines are warm
            at = start - 15 - (130 - k) * window
            history += posts([f"flight {i} was fine #travel" for i in range(6)], at)
        state.hub.alerts.warm(pipeline.score_batch(history))
        state.hub.start()
        client.connect(f"http://127.0.0.1:{port}", namespaces=[NAMESPACE])
        first_end = math.ceil((time.time() + 2 * window) / window) * window
        ends = {f"#burst{k}": first_end + 2 * k * window for k in range(bursts)}
        deadline = max(ends.values()) + 3 * window
        tick = 0
        while time.time() < deadline and len(seen) < bursts:
            now = time.time()
            texts = [f"flight {tick % 6} was fine #travel"]
            for tag, end in ends.items():
                if end - window <= now < end and tick % 2 == 0:
                    texts.append(f"no signal at the gate {tick} #{tag[1:]}")
            sink.write(pipeline.score_batch(posts(texts, now)))
            tick += 1
            time.sleep(max(0.0, now + 0.05 - time.time()))
        client.disconnect()
        state.stop()
    http.shutdown()
    latencies = sorted((seen[tag] - end) * 1000 for tag, end in ends.items() if tag in seen)
    return {
        "bursts": bursts,
        "alerts_received": len(latencies),
        "provisional_at_first_sight": sum(provisional.values()),
        "latency_window_end_to_client_ms": [round(v, 1) for v in latencies],
        "latency_ms_median": round(latencies[len(latencies) // 2], 1) if latencies else None,
        "latency_ms_max": round(latencies[-1], 1) if latencies else None,
    }
