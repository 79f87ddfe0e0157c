"""History that survives: a real server restarted on the same archive shows the same
dashboard, and a replay of posts it already has counts nothing twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
import socketio

from app.testing import running_server, wait_for
from streaming.synthetic import SyntheticPostGenerator, strip_private

pytestmark = pytest.mark.slow

N_POSTS = 300
N_BROKEN = 3


def write_replay(path) -> set[str]:
    """A JSONL file of posts with their own ids and times (ten minutes of them), and a few
    broken rows; the ids of the posts."""
    start = datetime(2024, 5, 1, 12, tzinfo=UTC)
    lines, ids = [], set()
    for i, raw in enumerate(SyntheticPostGenerator(seed=99).take(N_POSTS)):
        raw = strip_private(raw)
        raw["id"] = f"replay-{i}"
        raw["created_at"] = (start + timedelta(seconds=2 * i)).isoformat()
        ids.add(raw["id"])
        lines.append(json.dumps(raw))
        if i % 100 == 50:
            lines.append('{"text": 42}')  # a dead letter, at a line of its own
    path.write_text("\n".join(lines) + "\n")
    return ids


def health(url: str) -> dict:
    return requests.get(url + "/healthz", timeout=5).json()


def snapshot(url: str, feed_size: int = 0) -> dict:
    """The state a viewer gets on connecting; with `feed_size`, its feed as it stands once
    that many posts came (posts still to be sent when it connected come in the next
    update, so a viewer right after a batch gets them a moment later)."""
    updates: list[dict] = []
    client = socketio.Client(reconnection=False)
    client.on("update", updates.append, namespace="/live")
    client.connect(url, namespaces=["/live"], transports=["websocket"], wait_timeout=10)

    def feed() -> list[dict]:
        seen: dict[str, dict] = {}
        for update in reversed(updates):  # newest update first
            for post in update["posts"]:
                seen.setdefault(post["id"], post)
        return list(seen.values())

    def state() -> dict | None:
        # The state sent to this viewer on connecting; a broadcast update (posts new since
        # the last one, with `new_posts`) may come before it.
        return next((u for u in updates if "new_posts" not in u), None)

    try:
        wait_for(lambda: state() and len(feed()) >= feed_size, 10, "the state")
    finally:
        client.disconnect()
    first = state()
    assert first is not None
    return {**first, "posts": feed()[: max(feed_size, len(first["posts"]))]}


def comparable(state: dict) -> dict:
    stats = state["stats"]
    return {
        "total": stats["total"],
        "mean_sentiment": stats["mean_sentiment"],
        "sentiment_series": state["sentiment_series"],
        "clusters": state["clusters"],
        "trending": state["trending"],
        "feed": sorted(p["id"] for p in state["posts"]),
    }


def test_a_restart_rebuilds_the_dashboard_from_the_archive(
    bundle, model_dir, tmp_path, archive_url
):
    replay = tmp_path / "replay.jsonl"
    ids = write_replay(replay)
    args = ("--source", "file", "--file", str(replay), "--file-speed", "0")
    env = {"SOCIALPULSE_ARCHIVE_URL": archive_url, "SOCIALPULSE_EMIT_INTERVAL": "0.1"}

    with running_server(model_dir, tmp_path, *args, **env) as first:
        wait_for(
            lambda: (
                (h := health(first.url))["scored"] == N_POSTS
                and h["dead_lettered"] == N_BROKEN
                and h["archive"]["buffered"] == 0
                and h["archive"]["status"] == "ok"
            ),
            60,
            "the replay to be scored and archived",
        )
        before = comparable(snapshot(first.url, feed_size=50))
    assert before["total"] == N_POSTS and len(before["feed"]) == 50
    assert sum(w["count"] for w in before["sentiment_series"]) == N_POSTS

    # The same instance folder and archive; the same file replayed again: every post is
    # one the archive already has, so nothing may count twice.
    with running_server(model_dir, tmp_path, *args, **env) as second:
        # The history is rebuilt before the server listens.
        after = comparable(snapshot(second.url))
        wait_for(
            lambda: health(second.url)["duplicates_dropped"] == N_POSTS,
            60,
            "the second replay to be recognised as redelivered",
        )
        replayed = comparable(snapshot(second.url))
        status = health(second.url)
        metrics = requests.get(second.url + "/metrics", timeout=5).text
    assert after == before
    assert replayed["total"] == N_POSTS
    assert replayed["sentiment_series"] == before["sentiment_series"]
    assert replayed["trending"] == before["trending"]
    assert status["archive"]["status"] == "ok" and status["archive"]["disk_bytes"] > 0
    disk = [line for line in metrics.splitlines() if line.startswith("socialpulse_archive_disk")]
    assert disk and float(disk[0].rsplit(" ", 1)[1]) > 0
    # Dead letters are counted from the archive too, and the replayed broken rows (the
    # same input from the same lines) are not counted again.
    assert status["dead_lettered"] == N_BROKEN

    from archive.store import ArchiveStore

    store = ArchiveStore(archive_url)
    try:
        assert set(store.post_ids()) == ids
        assert store.counts() == (N_POSTS, N_BROKEN)
    finally:
        store.close()
