"""Topic lineage on the dashboard: the newest births, merges and retirements, and which
live topics are new; sent when they change, and to every new viewer."""

from __future__ import annotations

import json

import pytest

from app.live import NEW_TOPIC_SECONDS, TOPIC_EVENTS_SHOWN
from app.services import services
from app.testing import running_server
from models.clustering import TopicEvent

NOW = 1_800_000_000.0


def event(seq: int, kind: str, ids: tuple[int, ...], age: float) -> TopicEvent:
    terms = tuple((f"term{i}", "other") for i in ids)
    return TopicEvent(seq, NOW - age, seq * 10, kind, ids, terms)  # type: ignore[arg-type]


def test_new_topics_are_those_born_lately_and_still_alive(app):
    events = [
        event(1, "birth", (4,), NEW_TOPIC_SECONDS + 60),  # too long ago to be new
        event(2, "birth", (7,), 300),
        event(3, "birth", (8,), 200),
        event(4, "birth", (9,), 100),
        event(5, "merge", (7, 8), 50),  # 8 lives on as part of 7
        event(6, "retirement", (9,), 10),
        event(7, "split", (4, 11), 5),  # 11 is new, 4 goes on as it was
    ]
    with app.app_context():
        hub = services().hub
        hub.topic_events = lambda: events
        changes = hub.topic_changes(now=NOW)
    assert changes["new_topics"] == [7, 11]
    assert [e["seq"] for e in changes["topic_events"]] == [7, 6, 5, 4, 3, 2, 1]  # newest first
    assert changes["topic_events"][2] == {
        "seq": 5,
        "time": NOW - 50,
        "posts_seen": 50,
        "kind": "merge",
        "cluster_ids": [7, 8],
        "top_terms": [["term7", "other"], ["term8", "other"]],
    }


def test_only_the_newest_events_are_sent_and_only_when_they_change(app):
    events = [event(i, "birth", (i,), 1000 - i) for i in range(1, 40)]
    with app.app_context():
        hub = services().hub
        hub.topic_events = lambda: events
        hub.clients = 1
        sent = []
        hub.emit_here = lambda payload, to=None: sent.append(payload)
        assert len(hub.current_state()["topic_events"]) == TOPIC_EVENTS_SHOWN
        assert hub.emit_once()
        assert [e["seq"] for e in sent[-1]["topic_events"]][:2] == [39, 38]
        services().aggregates.add_dead_letters(1)  # other news: no topic payload again
        assert hub.emit_once()
        assert "topic_events" not in sent[-1]
        events.append(event(40, "birth", (40,), 0))
        assert hub.emit_once()
        assert sent[-1]["topic_events"][0]["seq"] == 40


def test_the_embedded_stream_shows_its_topics_being_born(app):
    with app.app_context():
        clusterer = services().pipeline.clusterer
        assert services().hub.topic_events() is clusterer.lineage_


@pytest.mark.browser
def test_new_topics_appear_on_the_dashboard(bundle, model_dir, tmp_path, page):
    lines = []
    subjects = [
        "volcano eruption grounds flights ash cloud",
        "chess championship final endgame blunder",
        "sourdough starter bakery flour hydration",
    ]
    for i in range(900):
        words = subjects[i % 3]
        lines.append({"id": f"t{i}", "text": f"{words} {i % 7} #{words.split()[0]}"})
    path = tmp_path / "topics.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    workdir = tmp_path / "web"
    workdir.mkdir()
    with running_server(
        model_dir,
        workdir,
        "--source",
        "file",
        "--file",
        str(path),
        "--file-speed",
        "0",
        SOCIALPULSE_EMIT_INTERVAL="0.2",
    ) as live:
        page.goto(live.url + "/")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#topic-events .topic-event__what')]"
            ".some(e => e.textContent.endsWith('born'))",
            timeout=30000,
        )
        terms = page.locator("#topic-events .topic-event__terms").all_inner_texts()
        assert any("volcano" in t or "chess" in t or "sourdough" in t for t in terms), terms
        labels = page.evaluate("() => window.Chart && Chart.getChart('cluster-chart').data.labels")
        assert any(str(label).startswith("★ ") for label in labels), labels
        assert not page.problems, page.problems
