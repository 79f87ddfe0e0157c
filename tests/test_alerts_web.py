"""Alerts on a live node: detectors fed from the dashboard's stream, the dashboard's panel
payloads, the /alerts page, GET /api/v1/alerts, acknowledging, metrics and webhooks."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from werkzeug.datastructures import MultiDict

from app import create_app
from app.accounts import AccountStore
from app.alerting import AlertFilter, AlertFilterError, LiveAlerts
from app.services import services
from app.testing import csrf_from, log_in, run_config, wait_for
from app.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from archive.store import ArchiveStore
from insights.alerts import AlertRules
from tests.test_aggregates import scored
from tests.test_alerts import T0

PASSWORD = "correct horse battery"
XSS = "<img src=x onerror=alert(1)>"


def burst_posts(tag: str = "outage", text: str = "no signal at all") -> list:
    """Two hours of calm #travel posts, then a burst of `#tag` (an emerging subject)."""
    posts = []
    for minute in range(130):
        at = T0 + timedelta(minutes=minute)
        posts += [scored(f"flight {k} was fine #travel", at) for k in range(6)]
        if minute >= 120:
            posts += [scored(f"{text} #{tag}", at, compound=-0.6, cluster=1) for _ in range(6)]
    posts.append(scored("much later #travel", T0 + timedelta(minutes=200)))  # closes windows
    return posts


def feed(flask_app, posts) -> None:
    with flask_app.app_context():
        services().dashboard_sink.write(posts)


def test_a_burst_reaches_the_dashboard_payloads_the_page_and_the_api(node):
    feed(node, burst_posts())
    with node.app_context():
        hub = services().hub
        snapshot = hub.current_state()["alerts"]
        # The hashtag and its topic cluster are both new.
        assert {(a["kind"], a["subject"]) for a in snapshot} == {
            ("emerging", "#outage"),
            ("emerging", "cluster:1"),
        }
        assert hub.emit_once()
        assert hub.alerts.take_changes() == []  # the update took them, watched or not
        metrics = services().metrics.render().decode()
    assert 'socialpulse_alerts_total{kind="emerging",severity="critical"} 2.0' in metrics
    client = node.test_client()
    page = client.get("/alerts").get_data(as_text=True)
    assert "#outage: new, 60 posts in 10 min with no earlier history" in page
    assert "no signal at all #outage" in page  # a sample post
    api = client.get("/api/v1/alerts?kind=emerging").get_json()["alerts"]
    assert sorted(a["subject"] for a in api) == ["#outage", "cluster:1"]
    assert client.get("/api/v1/alerts?kind=volume_spike").get_json() == {"alerts": [], "next": None}
    assert 'href="/alerts"' in client.get("/").get_data(as_text=True)


def test_the_dashboard_update_carries_alert_changes_once(node):
    with node.app_context():
        hub = services().hub
        hub.clients = 1  # someone is watching
        emitted = []
        hub.emit_here = lambda payload, to=None: emitted.append(payload)
        feed(node, burst_posts())
        assert hub.emit_once()
        assert sorted(a["subject"] for a in emitted[-1]["alerts"]) == ["#outage", "cluster:1"]
        feed(node, [scored("one more #travel", T0 + timedelta(minutes=201))])
        assert hub.emit_once()
        assert emitted[-1]["alerts"] == []  # nothing new about alerts


def test_filters_are_checked():
    assert AlertFilter.parse(MultiDict({"kind": "viral", "limit": "5"})) == AlertFilter(
        kind="viral", limit=5
    )
    for args, message in [
        ({"colour": "red"}, "unknown filter 'colour'"),
        ({"kind": "<script>"}, "kind must be one of"),
        ({"status": "closed"}, "status must be one of"),
        ({"limit": "0"}, "limit must be a whole number from 1 to 500"),
        ({"limit": "1e9"}, "limit must be"),
        ({"limit": "99999999999999999999"}, "limit must be"),
        ({"subject": "#" * 201}, "subject is at most 200"),
    ]:
        with pytest.raises(AlertFilterError, match=message):
            AlertFilter.parse(MultiDict(args))


def test_bad_filters_get_400_with_the_reason(node):
    client = node.test_client()
    api = client.get("/api/v1/alerts?kind=nonsense")
    assert api.status_code == 400 and "kind must be one of" in api.get_json()["error"]
    page = client.get("/alerts?limit=-1&kind=" + XSS)
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert 'id="filter-error"' in html and XSS not in html


def test_hostile_subjects_and_samples_are_shown_as_text(node):
    feed(node, burst_posts(tag="x", text=XSS))
    html = node.test_client().get("/alerts").get_data(as_text=True)
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    with node.app_context():
        (alert,) = services().hub.alerts.recent(AlertFilter(subject="#x"))
    assert alert["explore_url"].startswith("/explore?")


def test_acknowledging_needs_an_analyst_and_the_csrf_token(config):
    store = AccountStore(config.accounts_path)
    store.add_user("vera", PASSWORD, "viewer")
    store.add_user("ann", PASSWORD, "analyst")
    flask_app = create_app(config)
    feed(flask_app, burst_posts())
    with flask_app.app_context():
        (alert,) = services().hub.alerts.recent(AlertFilter(subject="#outage"))
    path = f"/alerts/{alert['id']}/acknowledge"
    assert flask_app.test_client().get("/api/v1/alerts").status_code == 401  # no token
    viewer = flask_app.test_client()
    assert log_in(viewer, "vera", PASSWORD).status_code == 303
    token = csrf_from(viewer.get("/alerts").get_data(as_text=True))
    assert viewer.post(path, data={"csrf_token": token}).status_code == 403
    analyst = flask_app.test_client()
    assert log_in(analyst, "ann", PASSWORD).status_code == 303
    assert analyst.post(path).status_code == 400  # no CSRF token: a cross-site form
    token = csrf_from(analyst.get("/alerts").get_data(as_text=True))
    assert analyst.post(path, data={"csrf_token": token}).status_code == 303
    assert (
        analyst.post("/alerts/unknown/acknowledge", data={"csrf_token": token}).status_code == 404
    )
    long_id = "a" * 5000
    assert (
        analyst.post(f"/alerts/{long_id}/acknowledge", data={"csrf_token": token}).status_code
        == 404
    )
    with flask_app.app_context():
        (acknowledged,) = services().hub.alerts.recent(AlertFilter(status="acknowledged"))
    assert acknowledged["id"] == alert["id"]


@pytest.mark.parametrize("archive", ["off", None])
def test_history_in_memory_is_bounded_and_the_archive_keeps_it_all(
    model_dir, tmp_path, bundle, archive
):
    flask_app = create_app(
        run_config(model_dir, tmp_path / "instance", alert_history=2, archive_url=archive)
    )
    for number, tag in enumerate(["one", "two", "three"]):
        start = T0 + timedelta(hours=3 * number)
        posts = [scored(p.post.text, start + (p.post.created_at - T0)) for p in burst_posts(tag)]
        feed(flask_app, posts)
    with flask_app.app_context():
        kept = {a["subject"] for a in services().hub.alerts.recent()}
    if archive == "off":  # this node's memory only: the newest `alert_history`
        assert len(kept) == 2 and "#three" in kept and "#one" not in kept
    else:
        assert {"#one", "#two", "#three"} <= kept


def test_bad_alert_settings_are_refused(model_dir, tmp_path):
    from app.config import ConfigError

    with pytest.raises(ConfigError, match="webhook_secret"):
        run_config(model_dir, tmp_path, webhook_urls="http://127.0.0.1:9/hook")
    with pytest.raises(ConfigError, match="http"):
        run_config(model_dir, tmp_path, webhook_urls="file:///etc/passwd", webhook_secret="s" * 16)
    with pytest.raises(ConfigError, match="alert_window"):
        run_config(model_dir, tmp_path, alert_window=0)


def test_an_alert_is_posted_to_a_webhook_signed(model_dir, tmp_path, bundle):
    received: list[tuple] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret = "webhook secret of this test"
    config = run_config(
        model_dir,
        tmp_path / "instance",
        webhook_urls=f"http://127.0.0.1:{server.server_address[1]}/hook",
        webhook_secret=secret,
    )
    flask_app = create_app(config)
    try:
        with flask_app.app_context():
            services().hub.alerts.webhooks.start()
        feed(flask_app, burst_posts())
        wait_for(lambda: received, 10, "the webhook")
    finally:
        with flask_app.app_context():
            services().stop()
        server.shutdown()
        server.server_close()
    headers, body = received[0]
    assert verify_signature(
        secret.encode(), headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER]
    )
    assert json.loads(body)["subject"] in {"#outage", "cluster:1"}


def test_warming_from_history_equals_having_seen_it_and_raises_nothing_new(node):
    posts = burst_posts()
    cut = len(posts) // 2
    with node.app_context():
        alerts = services().hub.alerts
        alerts.warm(posts[:cut])
        assert alerts.take_changes() == []  # history: no toasts, no webhooks
        alerts.write(posts[cut:])
        warmed = {a["id"]: a for a in alerts.recent()}
    straight = LiveAlerts(AlertRules())
    straight.write(posts)
    assert warmed == {a["id"]: a for a in straight.recent()}


def test_a_restarted_node_gets_its_alert_baselines_back_from_the_archive(config):
    first = create_app(config)
    posts = burst_posts()
    store = ArchiveStore(config.archive_database_url)
    store.migrate()
    store.write(posts[:-1])  # everything but the post that closes the burst's window
    store.close()
    with first.app_context():
        assert services().restore_history()
        alerts = services().hub.alerts
        assert alerts.engine.windows_seen >= 12  # two hours of windows learned
        feed(first, posts[-1:])
        assert {a["subject"] for a in alerts.recent()} == {"#outage", "cluster:1"}
