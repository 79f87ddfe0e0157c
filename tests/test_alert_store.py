"""Alerts in the archive, on both engines: stored once by id, newer states win, the
acknowledgement kept, pages and filters; a restarted node and a second node on the same
archive see the same history and acknowledgements; a database outage loses nothing."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError

from app import create_app
from app.accounts import AccountStore
from app.alerting import AlertFilter
from app.services import services
from app.testing import csrf_from, log_in, run_config, wait_for
from archive.alert_store import AlertStore, AlertWriter
from archive.sink import ArchiveKeeper
from archive.store import ArchiveStore
from tests.test_aggregates import scored
from tests.test_alerts import T0
from tests.test_alerts_web import PASSWORD, XSS, burst_posts, feed

WINDOW = T0.timestamp()


def record(alert_id: str = "a1", **changes) -> dict:
    """An alert as the engine shows it."""
    base = {
        "id": alert_id,
        "kind": "volume_spike",
        "subject": "#delayed",
        "first_window": WINDOW,
        "window_start": WINDOW,
        "window_end": WINDOW + 600,
        "observed": 400.0,
        "expected": 54.0,
        "score": 12.5,
        "p_value": 3e-13,
        "severity": "critical",
        "explanation": "#delayed: 400 posts in 10 min, about 7.4× the usual 54",
        "samples": [
            {
                "id": "p1",
                "author": "ann",
                "text": "stuck again",
                "compound": -0.6,
                "created_at": 1.0,
            }
        ],
        "explore_url": "/explore?from=1&to=2&hashtag=delayed",
        "status": "open",
        "occurrences": 1,
        "resolved_at": None,
    }
    return base | changes


@pytest.fixture
def alert_store(archive_url):
    archive = ArchiveStore(archive_url)
    archive.migrate()
    yield AlertStore(archive)
    archive.close()


def test_an_alert_is_stored_once_and_every_field_reads_back(alert_store):
    alert_store.save([record()])
    alert_store.save([record(), record()])  # written again by another node, and twice
    (back,) = alert_store.query()
    assert {k: back[k] for k in record()} == record()
    assert back["acknowledged_at"] is None and back["provisional"] is False


def test_a_newer_state_wins_and_an_older_one_written_late_changes_nothing(alert_store):
    extended = record(window_end=WINDOW + 1200, occurrences=2)
    resolved = record(window_end=WINDOW + 1200, occurrences=2, status="resolved")
    resolved["resolved_at"] = WINDOW + 2400
    alert_store.save([extended])
    alert_store.save([resolved])
    alert_store.save([record()])  # the first state, delivered late
    (back,) = alert_store.query()
    assert back["status"] == "resolved" and back["occurrences"] == 2
    # At the same window, the closed window's verdict replaces the provisional one.
    alert_store.save([record("a2", provisional=True, observed=90.0)])
    alert_store.save([record("a2", observed=120.0)])
    alert_store.save([record("a2", provisional=True, observed=90.0)])
    assert alert_store.get("a2")["observed"] == 120.0 and not alert_store.get("a2")["provisional"]


def test_an_acknowledgement_is_kept_when_the_alert_fires_again(alert_store):
    from archive.alert_store import Acknowledgement

    alert_store.save([record()])
    assert alert_store.save(acknowledgements={"a1": Acknowledgement("ann", 100.0)}) == 1
    assert alert_store.save(acknowledgements={"a1": Acknowledgement("bob", 200.0)}) == 1
    alert_store.save([record(window_end=WINDOW + 1200, occurrences=2)])  # fires again
    back = alert_store.get("a1")
    assert (back["status"], back["acknowledged_by"], back["acknowledged_at"]) == (
        "acknowledged",
        "ann",  # the first acknowledgement stays
        100.0,
    )
    assert alert_store.save(acknowledgements={"nope": Acknowledgement("ann", 1.0)}) == 0


def test_filters_and_pages_in_the_archive(alert_store):
    alert_store.save(
        [
            record(f"{i:02x}", first_window=WINDOW + 600 * (i // 2), subject=f"#s{i % 3}")
            for i in range(9)
        ]
    )
    seen, before = [], None
    while True:
        page = alert_store.query(before=before, limit=4)
        seen += page
        if len(page) < 4:
            break
        before = (page[-1]["first_window"], page[-1]["id"])
    keys = [(r["first_window"], r["id"]) for r in seen]
    assert len(seen) == 9 and keys == sorted(keys, reverse=True)  # each once, newest first
    assert {r["id"] for r in alert_store.query(subject="#s1")} == {"01", "04", "07"}
    assert alert_store.query(kind="viral") == []


def test_hostile_text_is_stored_as_given_or_replaced(alert_store):
    odd = record(
        "b1",
        subject="#" + "\u202e" + "x" * 1000,
        explanation=XSS + "\x00 \ud800",
        samples=[{"id": "q", "author": "\x00", "text": "t" * 5000, "compound": 0, "created_at": 0}],
    )
    alert_store.save([odd])
    back = alert_store.get("b1")
    assert back["explanation"] == XSS + "\ufffd ?" and len(back["subject"]) == 300
    assert back["samples"][0]["author"] == "\ufffd"


class FlakyAlertStore(AlertStore):
    down = False

    def __init__(self, store: ArchiveStore) -> None:
        super().__init__(store)
        self.answering = threading.Event()  # clear: the database hangs
        self.entered = threading.Event()

    def save(self, *args, **kwargs):
        self.entered.set()
        self.answering.wait()
        if self.down:
            raise OperationalError("INSERT", {}, Exception("the database is unreachable"))
        return super().save(*args, **kwargs)


def test_the_database_down_keeps_alerts_waiting_and_stores_them_when_back(archive_url):
    archive = ArchiveStore(archive_url)
    keeper = ArchiveKeeper(archive)
    writer = AlertWriter(keeper, max_backoff=0.2)
    flaky = writer.store = FlakyAlertStore(archive)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    writer.put([record("c1")])
    wait_for(flaky.entered.is_set, 10, "the writer to reach the (hanging) database")
    # The writer is stuck in the database; the detectors' side still hands changes over.
    writer.put([record("c2")])
    writer.put([record("c1", window_end=WINDOW + 1200, occurrences=2)])  # merged, newest kept
    writer.acknowledge("c2", "ann")
    assert writer.waiting == 3  # two alerts and an acknowledgement
    flaky.down = True  # then it refuses
    flaky.answering.set()
    deadline = time.monotonic() + 5
    while keeper.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert keeper.error and "cannot store alerts" in keeper.error
    assert writer.waiting == 3  # two alerts and an acknowledgement
    flaky.down = False
    assert writer.drain(10)
    assert flaky.get("c1")["occurrences"] == 2
    assert flaky.get("c2")["status"] == "acknowledged"
    writer.close()
    thread.join(5)
    assert not thread.is_alive() and keeper.error is None
    archive.close()


# -- on a live node ---------------------------------------------------------------------------
def acknowledge_on_page(client, alert_id: str) -> int:
    token = csrf_from(client.get("/alerts").get_data(as_text=True))
    return client.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": token}).status_code


def store_now(flask_app) -> None:
    with flask_app.app_context():
        assert services().hub.alerts.archive.write_pending()


def test_a_restart_keeps_the_alerts_and_their_acknowledgements(config):
    first = create_app(config)
    feed(first, burst_posts())
    store_now(first)
    client = first.test_client()
    outage = next(
        a for a in client.get("/api/v1/alerts").get_json()["alerts"] if a["subject"] == "#outage"
    )
    assert acknowledge_on_page(client, outage["id"]) == 303
    with first.app_context():
        services().stop()  # stores what waits

    again = create_app(config)  # nothing replayed: the history is the archive's
    alerts = again.test_client().get("/api/v1/alerts").get_json()["alerts"]
    assert {a["subject"]: a["status"] for a in alerts} == {
        "#outage": "acknowledged",
        "cluster:1": "open",
    }
    (kept,) = [a for a in alerts if a["subject"] == "#outage"]
    assert kept["samples"] == outage["samples"] and kept["explanation"] == outage["explanation"]
    html = again.test_client().get("/alerts?status=acknowledged").get_data(as_text=True)
    assert "#outage: new, 60 posts" in html and "cluster:1" not in html
    # An alert only the archive knows can be acknowledged too.
    cluster = next(a for a in alerts if a["subject"] == "cluster:1")
    assert acknowledge_on_page(again.test_client(), cluster["id"]) == 303
    with again.app_context():
        store = services().hub.alerts.archive.store
        assert store.get(cluster["id"])["status"] == "acknowledged"


@pytest.fixture
def shared_archive_config(model_dir, tmp_path, bundle, archive_url):
    return lambda name: run_config(model_dir, tmp_path / name, archive_url=archive_url)


def test_two_nodes_on_one_archive_see_the_same_acknowledgements(shared_archive_config):
    one = create_app(shared_archive_config("one"))
    two = create_app(shared_archive_config("two"))
    store = AccountStore(shared_archive_config("one").accounts_path)
    store.add_user("ann", PASSWORD, "analyst")
    posts = burst_posts()
    for node in (one, two):  # every node detects the alerts from the whole stream
        feed(node, posts)
        store_now(node)
    first = one.test_client()
    assert log_in(first, "ann", PASSWORD).status_code == 303
    with one.app_context():
        (outage,) = services().hub.alerts.recent(AlertFilter(subject="#outage"))
    assert acknowledge_on_page(first, outage["id"]) == 303
    with two.app_context():
        seen = services().hub.alerts.recent()
    assert {a["subject"]: a["status"] for a in seen} == {
        "#outage": "acknowledged",
        "cluster:1": "open",
    }
    assert next(a for a in seen if a["subject"] == "#outage")["acknowledged_by"] == "ann"
    # The second node's detectors go on extending the alert: the acknowledgement stays.
    later = [scored(p.post.text, p.post.created_at + timedelta(minutes=10)) for p in posts[-80:]]
    feed(two, later)
    store_now(two)
    with one.app_context():
        (outage_now,) = [a for a in services().hub.alerts.recent() if a["subject"] == "#outage"]
    assert outage_now["status"] == "acknowledged"


def test_the_api_pages_through_the_archive_and_refuses_bad_cursors(config):
    node = create_app(config)
    feed(node, burst_posts())
    store_now(node)
    client = node.test_client()
    first = client.get("/api/v1/alerts?limit=1").get_json()
    assert len(first["alerts"]) == 1 and first["next"]
    second = client.get(f"/api/v1/alerts?limit=1&before={first['next']}").get_json()
    assert len(second["alerts"]) == 1 and second["alerts"][0]["id"] != first["alerts"][0]["id"]
    last = client.get(f"/api/v1/alerts?limit=1&before={second['next']}").get_json()
    assert last == {"alerts": [], "next": None}
    page = client.get("/alerts?limit=1").get_data(as_text=True)
    assert 'id="older-alerts"' in page and "before=" in page
    for bad in ["nan:ab", "1e400:ab", "1:" + "a" * 65, "1:XYZ", XSS, "9" * 5000, "1:ab:cd"]:
        answer = client.get("/api/v1/alerts", query_string={"before": bad})
        assert answer.status_code == 400, bad
        assert "before must be the `next` value" in answer.get_json()["error"]


def test_an_unreadable_archive_falls_back_to_this_nodes_memory(config):
    node = create_app(config)
    feed(node, burst_posts())
    with node.app_context():
        writer = services().hub.alerts.archive

        def broken(*args, **kwargs):
            raise OperationalError("SELECT", {}, Exception("the database is unreachable"))

        writer.store.query = broken
    client = node.test_client()
    alerts = client.get("/api/v1/alerts").get_json()["alerts"]
    assert {a["subject"] for a in alerts} == {"#outage", "cluster:1"}
    assert 'id="alerts-from-memory"' in client.get("/alerts").get_data(as_text=True)


def test_the_archive_off_keeps_alerts_in_memory(model_dir, tmp_path, bundle):
    node = create_app(run_config(model_dir, tmp_path / "instance", archive_url="off"))
    feed(node, burst_posts())
    with node.app_context():
        assert services().hub.alerts.archive is None
    alerts = node.test_client().get("/api/v1/alerts").get_json()["alerts"]
    assert {a["subject"] for a in alerts} == {"#outage", "cluster:1"}
    assert 'id="alerts-from-memory"' not in node.test_client().get("/alerts").get_data(as_text=True)


def test_hostile_alerts_read_back_from_the_archive_are_shown_as_text(config):
    first = create_app(config)
    feed(first, burst_posts(tag="x", text=XSS))
    store_now(first)
    again = create_app(config).test_client()  # knows them from the archive only
    html = again.get("/alerts").get_data(as_text=True)
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    paged = again.get("/alerts", query_string={"limit": "1", "kind": "emerging"})
    older = paged.get_data(as_text=True)
    assert 'id="older-alerts"' in older and "kind=emerging" in older
    answer = again.get("/api/v1/alerts", query_string={"subject": XSS})
    assert answer.status_code == 200 and answer.get_json() == {"alerts": [], "next": None}
