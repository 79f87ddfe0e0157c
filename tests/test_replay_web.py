"""The Replay page and its endpoints: starting, following a session in its own Socket.IO
room, pause/resume/stop, isolation from the live dashboard, roles, CSRF and hostile input."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta

import pytest

from app import create_app
from app.accounts import AccountStore
from app.replay import EXTENSION
from app.services import services
from app.testing import log_in, run_config, wait_for
from streaming.records import parse_post
from tests.test_replay import write_posts

PASSWORD = "correct horse battery"
CSRF_DATA = re.compile(r'data-csrf="([^"]+)"')


@pytest.fixture
def replay_app(model_dir, bundle, tmp_path):
    folder = tmp_path / "replays"
    folder.mkdir()
    write_posts(folder / "posts.jsonl", count=200, spread=60.0)
    config = run_config(
        model_dir,
        tmp_path / "instance",
        replay_dir=str(folder),
        emit_interval=0.2,
        wordcloud_interval=0.5,
    )
    flask_app = create_app(config)
    flask_app.config.update(TESTING=True)
    yield flask_app
    flask_app.extensions[EXTENSION].close()


def token(client) -> str:
    return CSRF_DATA.search(client.get("/replay").get_data(as_text=True)).group(1)


def start(client, **body):
    body.setdefault("source", "file")
    body.setdefault("file", "posts.jsonl")
    return client.post("/replay/sessions", json=body, headers={"X-CSRFToken": token(client)})


def wait_ended(client, session_id: str) -> dict:
    return wait_for(
        lambda: (
            (s := client.get(f"/replay/sessions/{session_id}").get_json())["state"]
            in ("finished", "stopped", "failed")
            and s
        ),
        30,
        "the replay to end",
        interval=0.05,
    )


def test_the_page_lists_the_replay_folder(replay_app):
    html = replay_app.test_client().get("/replay").get_data(as_text=True)
    assert "posts.jsonl" in html and 'id="replay-form"' in html
    assert 'href="/replay"' in replay_app.test_client().get("/").get_data(as_text=True)


def test_a_replay_has_its_own_room_and_never_reaches_the_live_dashboard(replay_app):
    client = replay_app.test_client()
    socketio = replay_app.extensions["socketio"]
    live = socketio.test_client(replay_app, namespace="/live", flask_test_client=client)
    live.get_received("/live")
    response = start(client)
    assert response.status_code == 201, response.get_json()
    session_id = response.get_json()["id"]
    status = wait_ended(client, session_id)
    assert status["state"] == "finished" and status["scored"] == 200
    viewer = socketio.test_client(
        replay_app, namespace="/replay", flask_test_client=client, auth={"session": session_id}
    )
    assert viewer.is_connected("/replay")
    # A viewer who comes after the end gets the charts at once, and the feed (with the
    # posts of the last update still being sent, if any, in the next update).
    updates: list[dict] = []

    def feed_full() -> bool:
        updates.extend(
            m["args"][0] for m in viewer.get_received("/replay") if m["name"] == "update"
        )
        return len({p["id"] for u in updates for p in u["posts"]}) == 50

    wait_for(feed_full, 10, "the replay's feed", interval=0.05)
    first = updates[0]
    assert first["sentiment_series"] and first["stats"]["total"] == 200
    assert first["replay"]["state"] == "finished"
    replayed = {p["id"] for u in updates for p in u["posts"]}
    with replay_app.app_context():
        live_state = services().aggregates.state()
        latest = {p["id"] for p in services().aggregates.latest_posts()}
        services().hub.emit_once()
    assert live_state["stats"]["total"] == 0 and not latest & replayed
    for message in live.get_received("/live"):
        assert not {p["id"] for p in message["args"][0].get("posts", [])} & replayed
    refused = socketio.test_client(
        replay_app, namespace="/replay", flask_test_client=client, auth={"session": "f" * 16}
    )
    assert not refused.is_connected("/replay")


def test_pause_resume_and_stop_through_the_endpoints(replay_app):
    client = replay_app.test_client()
    session_id = start(client, speed=1).get_json()["id"]  # a minute of posts at ×1
    headers = {"X-CSRFToken": token(client)}
    paused = client.post(f"/replay/sessions/{session_id}/pause", headers=headers).get_json()
    assert paused["state"] == "paused" and paused["progress"]["paused"]
    resumed = client.post(f"/replay/sessions/{session_id}/resume", headers=headers).get_json()
    assert resumed["state"] == "running"
    client.post(f"/replay/sessions/{session_id}/stop", headers=headers)
    status = wait_ended(client, session_id)
    assert status["state"] == "stopped" and status["scored"] < 200
    assert client.post(f"/replay/sessions/{session_id}/explode", headers=headers).status_code == 404


def test_too_many_replays_are_refused(replay_app):
    client = replay_app.test_client()
    ids = [start(client, speed=1).get_json()["id"] for _ in range(2)]
    refused = start(client, speed=1)
    assert refused.status_code == 429 and "stop one first" in refused.get_json()["error"]
    for session_id in ids:
        client.post(f"/replay/sessions/{session_id}/stop", headers={"X-CSRFToken": token(client)})


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"file": "../instance/secret_key"}, 400, "not a path"),
        ({"file": "/etc/passwd"}, 400, "not a path"),
        ({"file": "missing.csv"}, 404, "no file"),
        ({"file": "x" * 10_000}, 400, "longer than"),
        ({"source": "gopher"}, 400, "unknown source"),
        ({"speed": -3}, 400, "speed"),
        ({"speed": 1e12}, 400, "speed"),
        ({"speed": "fast"}, 400, "speed"),
        ({"speed": True}, 400, "speed"),
        ({"colour": "red"}, 400, "unknown field"),
        ({"source": "archive", "start": "2015-02-17", "end": "last tuesday"}, 400, "not a time"),
        ({"source": "archive", "start": "2015-02-18", "end": "2015-02-17"}, 400, "end after"),
        ({"source": "archive", "start": "1970-01-01", "end": "2100-01-01"}, 400, "366 days"),
        ({"source": "kafka", "start": "1", "end": "2"}, 409, "no Kafka"),
        ({"to_archive": "yes"}, 400, "to_archive"),
        ({"encoding": "rot13"}, 400, "encoding"),
        ({"time_col": ["a"]}, 400, "must be text"),
        ({"learning": "always"}, 400, "learning must be"),
        ({"learning": "checkpoints", "learn_every": "hourly"}, 400, "learn_every"),
        ({"learning": "checkpoints", "learn_every": 1e300}, 400, "learn_every"),
    ],
)
def test_bad_replays_get_a_clear_error(replay_app, body, status, message):
    response = start(replay_app.test_client(), **body)
    assert response.status_code == status
    assert message in response.get_json()["error"]


def test_malformed_bodies_and_unknown_sessions(replay_app):
    client = replay_app.test_client()
    headers = {"X-CSRFToken": token(client)}
    for data in (b"not json", b"[1, 2]", b'"text"', b"{" * 10_000):
        response = client.post(
            "/replay/sessions", data=data, headers=headers, content_type="application/json"
        )
        assert response.status_code == 400
    assert client.get("/replay/sessions/../../etc/passwd").status_code == 404
    assert client.get("/replay/sessions/" + "a" * 5000).status_code == 404
    assert client.get("/replay?session=" + "<script>" * 100).status_code == 200


def test_cross_site_posts_are_refused(replay_app):
    client = replay_app.test_client()
    response = client.post("/replay/sessions", json={"source": "file", "file": "posts.jsonl"})
    assert response.status_code == 400  # no CSRF token: a forged request
    assert replay_app.extensions[EXTENSION].list() == []
    forged = client.post(
        "/replay/sessions",
        json={"source": "file", "file": "posts.jsonl"},
        headers={"X-CSRFToken": "forged"},
    )
    assert forged.status_code == 400


def test_replays_are_for_analysts(model_dir, bundle, tmp_path):
    config = run_config(model_dir, tmp_path / "instance", replay_dir=str(tmp_path))
    store = AccountStore(config.accounts_path)
    store.add_user("vera", PASSWORD, "viewer")
    store.add_user("ann", PASSWORD, "analyst")
    flask_app = create_app(config)
    flask_app.config.update(TESTING=True)
    shutil.copy(write_posts(tmp_path / "p.jsonl", 10), tmp_path / "posts.jsonl")
    viewer = flask_app.test_client()
    log_in(viewer, "vera", PASSWORD)
    assert viewer.get("/replay").status_code == 403
    assert viewer.post("/replay/sessions", json={}).status_code in (400, 403)
    socketio = flask_app.extensions["socketio"]
    watcher = socketio.test_client(
        flask_app, namespace="/replay", flask_test_client=viewer, auth={"session": "a" * 16}
    )
    assert not watcher.is_connected("/replay")
    analyst = flask_app.test_client()
    log_in(analyst, "ann", PASSWORD)
    assert analyst.get("/replay").status_code == 200
    assert start(analyst).status_code == 201
    anonymous = flask_app.test_client()
    assert anonymous.get("/replay").status_code in (302, 303)
    flask_app.extensions[EXTENSION].close()


@pytest.mark.parametrize(
    "auth", [None, "session", {"session": 5}, {"session": "x" * 100_000}, {"other": "a" * 16}]
)
def test_hostile_socket_handshakes_are_refused(replay_app, auth):
    client = replay_app.test_client()
    socketio = replay_app.extensions["socketio"]
    viewer = socketio.test_client(
        replay_app, namespace="/replay", flask_test_client=client, auth=auth
    )
    assert not viewer.is_connected("/replay")
    assert client.get("/replay").status_code == 200  # and the server goes on


def test_replay_an_archived_time_range_from_the_page(replay_app, pipeline, sample_posts):
    from archive.store import ArchiveStore

    with replay_app.app_context():
        url = services().config.archive_database_url
    store = ArchiveStore(url)
    store.migrate()
    store.write(pipeline.score_batch(sample_posts))
    store.close()
    times = sorted(p.created_at for p in sample_posts)
    client = replay_app.test_client()
    response = start(
        client,
        source="archive",
        start=str(times[0].timestamp() - 1),
        end=(times[-1] + timedelta(seconds=1)).isoformat(),
    )
    assert response.status_code == 201, response.get_json()
    status = wait_ended(client, response.get_json()["id"])
    assert status["state"] == "finished" and status["scored"] == len(sample_posts)
    # A range before them all holds none.
    empty = start(client, source="archive", start="2000-01-01", end="2000-01-02")
    assert wait_ended(client, empty.get_json()["id"])["scored"] == 0
    with replay_app.app_context():
        assert services().aggregates.total == 0  # the live dashboard saw none of it


def test_a_served_file_is_sorted_and_its_windows_fit_its_span(model_dir, bundle, tmp_path):
    """`serve --source file`: the file is replayed oldest first, and the dashboard's
    windows grow to show its two days whole, trending over all of it."""
    from app.services import build_source

    path = write_posts(tmp_path / "two-days.jsonl", count=300, spread=2 * 86400.0)
    config = run_config(
        model_dir, tmp_path / "instance", source="file", file=str(path), file_speed=0
    )
    flask_app = create_app(config)
    with flask_app.app_context():
        svc = services()
    source = build_source(config)
    svc.show_span(source)
    assert svc.aggregates.window_seconds == 1800  # 96 half-hour bars for two days
    assert svc.aggregates.trending_windows == svc.aggregates.windows_kept >= 96
    records = source.read_batch(1000, 0.1)
    times = [r.value["created_at"] for r in records]
    assert len(records) == 300 and times == sorted(times)
    svc.dashboard_sink.write(svc.pipeline.score_batch([parse_post(r.value) for r in records]))
    series = svc.aggregates.state()["sentiment_series"]
    assert sum(w["count"] for w in series) == 300 and len(series) >= 90
