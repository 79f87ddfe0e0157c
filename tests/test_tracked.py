"""Tracked topics: matching, the dashboard's counts, the archive's copy shared by every node,
the page, the API, and what hostile input gets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app import create_app
from app.accounts import AccountStore
from app.aggregates import LiveAggregates
from app.services import services
from app.testing import csrf_from, log_in, run_config
from archive.store import ArchiveStore
from archive.tracked_store import TrackedTopicConflict, TrackedTopicStore
from insights.tracked import (
    MAX_TERMS,
    MAX_TOPICS,
    TopicMatcher,
    TrackedTopic,
    TrackedTopicError,
)
from tests.test_aggregates import T0, scored

PASSWORD = "correct horse battery"
ACME = TrackedTopic.parse("Acme", ["acme", "acme air"], ["acme"])
ZENITH = TrackedTopic.parse("Zenith", ["zenith"], ["flyzenith"])


# -- topics and matching ------------------------------------------------------------------
def test_a_topic_is_cleaned_and_checked():
    topic = TrackedTopic.from_text(
        "  Acme   Air ", " Acme ,acme  AIR,, acme", "#Acme, acmeair #acme"
    )
    assert topic == TrackedTopic("Acme Air", ("acme", "acme air"), ("acme", "acmeair"))
    for name, keywords, hashtags, wanted in [
        ("", "acme", "", "needs a name"),
        ("x" * 61, "acme", "", "the name must be"),
        ("<script>", "acme", "", "the name must be"),
        ("Acme", "", "", "at least one keyword or hashtag"),
        ("Acme", ",".join(f"w{i}" for i in range(MAX_TERMS + 1)), "", f"at most {MAX_TERMS}"),
        ("Acme", "a" * 61, "", "keyword"),
        ("Acme", "!!!", "", "keyword"),
        ("Acme", "", "#no-dash", "hashtag"),
    ]:
        with pytest.raises(TrackedTopicError, match=wanted):
            TrackedTopic.from_text(name, keywords, hashtags)
    with pytest.raises(TrackedTopicError, match="lists of strings"):
        TrackedTopic.from_dict({"name": "Acme", "keywords": "acme"})


def test_posts_match_whole_words_phrases_and_hashtags_in_any_case():
    matcher = TopicMatcher([ZENITH, ACME, TrackedTopic.parse("C++", ["c++", "a.b"], [])])
    assert matcher.names == ("Acme", "C++", "Zenith")  # name order, whatever was given

    def topics(text: str) -> list[str]:
        return matcher.match(scored(text))

    assert topics("Flying ACME today") == ["Acme"]
    assert topics("acme\n  air was late") == ["Acme"]
    assert topics("acmeville is not a brand") == []  # whole words only
    assert topics("loving #FlyZenith and acme") == ["Acme", "Zenith"]
    assert topics("zenith,acme!") == ["Acme", "Zenith"]
    assert topics("I write c++ daily") == ["C++"]
    assert topics("axb is not a.b") == ["C++"]
    assert topics("aXb only") == []  # regex characters in keywords are literal
    assert topics("nothing here") == []
    assert TopicMatcher([]).match(scored("acme")) == []
    with pytest.raises(TrackedTopicError, match=f"at most {MAX_TOPICS}"):
        TopicMatcher([TrackedTopic.parse(f"t{i}", [f"w{i}"], []) for i in range(MAX_TOPICS + 1)])


def test_the_dashboard_counts_volume_sentiment_and_share_of_voice_per_window():
    aggregates = LiveAggregates(window_seconds=10, windows_kept=6)
    aggregates.track(TopicMatcher([ACME, ZENITH]))
    aggregates.add(
        [
            scored("acme is great", T0, compound=0.6),
            scored("acme air lost my bag #acme", T0, compound=-0.4),
            scored("zenith on time", T0 + timedelta(seconds=10), compound=0.2),
            scored("acme and zenith both late", T0 + timedelta(seconds=10), compound=-0.5),
            scored("unrelated", T0 + timedelta(seconds=10)),
        ]
    )
    state = aggregates.state()
    assert len(state["sentiment_series"]) == 2
    acme, zenith = state["tracked"]["topics"]
    assert acme["name"] == "Acme" and zenith["name"] == "Zenith"
    assert acme["counts"] == [2, 1] and zenith["counts"] == [0, 2]
    assert acme["means"] == [0.1, -0.5] and zenith["means"] == [None, -0.15]
    assert (acme["total"], zenith["total"]) == (3, 2)
    assert (acme["share"], zenith["share"]) == (0.6, 0.4)
    assert acme["mean_sentiment"] == round((0.6 - 0.4 - 0.5) / 3, 3)
    aggregates.track(TopicMatcher([]))
    assert aggregates.state()["tracked"] == {"topics": []}


# -- the archive's copy -------------------------------------------------------------------
@pytest.fixture
def topic_store(archive_url):
    archive = ArchiveStore(archive_url)
    archive.migrate()
    yield TrackedTopicStore(archive)
    archive.close()


def row(topic: TrackedTopic):
    return topic.name, topic.keywords, topic.hashtags


def test_topics_are_saved_renamed_replaced_and_removed_on_each_engine(topic_store):
    assert topic_store.topics() == [] and topic_store.version() == (0, 0.0)
    topic_store.save(row(ZENITH), "ann")
    topic_store.save(row(ACME), "ann")
    assert topic_store.topics() == [row(ACME), row(ZENITH)]
    before = topic_store.version()
    with pytest.raises(TrackedTopicConflict, match="exists already"):
        topic_store.save(("ACME", ("x",), ()), "bob")  # names are unique in any case
    renamed = TrackedTopic.parse("Acme Airlines", ["acme"], [])
    topic_store.save(row(renamed), "bob", replaces="acme")
    assert topic_store.topics() == [row(renamed), row(ZENITH)]
    assert topic_store.version() != before
    with pytest.raises(TrackedTopicConflict, match="at most 2"):
        topic_store.save(("Third", ("third",), ()), "bob", limit=2)
    assert topic_store.remove("ZENITH") and not topic_store.remove("Zenith")
    assert topic_store.topics() == [row(renamed)]


# -- on a node ----------------------------------------------------------------------------
def test_a_topic_saved_on_the_page_is_counted_shown_and_served(node):
    client = node.test_client()
    page = client.get("/tracked")
    assert page.status_code == 200 and "No tracked topics yet" in page.get_data(as_text=True)
    token = csrf_from(page.get_data(as_text=True))
    answer = client.post(
        "/tracked",
        data={
            "csrf_token": token,
            "name": "Acme",
            "keywords": "acme, acme air",
            "hashtags": "#acme",
        },
    )
    assert answer.status_code == 303
    with node.app_context():
        services().dashboard_sink.write(
            [scored("acme air again", T0, compound=-0.5), scored("plain post", T0)]
        )
        payload = services().hub.current_state()
    assert payload["tracked"]["topics"][0]["counts"] == [1]
    api = client.get("/api/v1/tracked-topics").get_json()
    assert api == {
        "topics": [
            {
                "name": "Acme",
                "keywords": ["acme", "acme air"],
                "hashtags": ["acme"],
                "posts": 1,
                "mean_sentiment": -0.5,
                "share_of_voice": 1.0,
            }
        ]
    }
    listed = client.get("/tracked").get_data(as_text=True)
    assert "acme, acme air" in listed and "100.0 %" in listed
    edit = client.get("/tracked?edit=acme").get_data(as_text=True)
    assert "Edit Acme" in edit and 'value="acme, acme air"' in edit
    assert (
        client.post("/tracked/remove", data={"csrf_token": token, "name": "Acme"}).status_code
        == 303
    )
    assert client.get("/api/v1/tracked-topics").get_json() == {"topics": []}
    assert (
        client.post("/tracked/remove", data={"csrf_token": token, "name": "Acme"}).status_code
        == 404
    )


def test_bad_hostile_and_cross_site_topics_are_refused_with_the_reason(node):
    client = node.test_client()
    token = csrf_from(client.get("/tracked").get_data(as_text=True))
    good = {"csrf_token": token, "name": "Acme", "keywords": "acme", "hashtags": ""}
    assert client.post("/tracked", data={**good, "csrf_token": ""}).status_code == 400
    for changes, reason in [
        ({"name": ""}, "needs a name"),
        ({"name": "<img src=x onerror=alert(1)>"}, "the name must be"),
        ({"keywords": "x" * 100_000}, "longer than"),
        ({"keywords": "", "hashtags": "#bad-tag"}, "hashtag"),
        ({"keywords": ",".join(f"w{i}" for i in range(50))}, "at most 20"),
        ({"keywords": "\x00\u202e"}, "keyword"),
    ]:
        answer = client.post("/tracked", data={**good, **changes})
        body = answer.get_data(as_text=True)
        assert answer.status_code == 400, changes
        assert reason in body, (changes, body[:300])
        assert "<img src=x" not in body
    assert client.post("/tracked", data=good).status_code == 303
    clash = client.post("/tracked", data={**good, "name": "ACME"})
    assert clash.status_code == 400 and "exists already" in clash.get_data(as_text=True)
    assert (
        client.post("/tracked/remove", data={"csrf_token": token, "name": "x" * 500}).status_code
        == 404
    )
    assert client.get("/tracked?edit=" + "x" * 10_000).status_code == 200


def test_editing_needs_an_analyst_and_the_api_a_read_token(config):
    accounts = AccountStore(config.accounts_path)
    accounts.add_user("vera", PASSWORD, "viewer")
    accounts.add_user("ann", PASSWORD, "analyst")
    _, secret = accounts.create_token("reader", ["read"])
    flask_app = create_app(config)
    viewer = flask_app.test_client()
    assert log_in(viewer, "vera", PASSWORD).status_code == 303
    page = viewer.get("/tracked").get_data(as_text=True)
    assert "Track a topic" not in page  # no form for viewers
    data = {"csrf_token": csrf_from(page), "name": "Acme", "keywords": "acme"}
    assert viewer.post("/tracked", data=data).status_code == 403
    analyst = flask_app.test_client()
    assert log_in(analyst, "ann", PASSWORD).status_code == 303
    data["csrf_token"] = csrf_from(analyst.get("/tracked").get_data(as_text=True))
    assert analyst.post("/tracked", data=data).status_code == 303
    api = flask_app.test_client()
    assert api.get("/api/v1/tracked-topics").status_code == 401
    answer = api.get("/api/v1/tracked-topics", headers={"Authorization": f"Bearer {secret}"})
    assert [t["name"] for t in answer.get_json()["topics"]] == ["Acme"]
    with flask_app.app_context():
        assert services().tracked.store.topics()[0][0] == "Acme"


def test_another_node_and_a_restart_count_the_same_topics(config):
    first = create_app(config)
    with first.app_context():
        assert services().restore_history() is False  # an empty archive, migrated
        services().tracked.save(ACME, "ann")
    archive = ArchiveStore(config.archive_database_url)
    archive.write([scored("acme one", T0), scored("acme two", T0), scored("other", T0)])
    archive.close()
    second = create_app(config)  # the same archive: a second node, or the first restarted
    with second.app_context():
        assert services().restore_history()
        (acme,) = services().hub.current_state()["tracked"]["topics"]
        assert acme["total"] == 2
    with first.app_context():
        services().tracked.save(ZENITH, "ann")
    with second.app_context():
        assert services().tracked.refresh()  # what the node's poll does every few seconds
        assert [t.name for t in services().tracked.topics] == ["Acme", "Zenith"]
        assert not services().tracked.refresh()


def test_without_an_archive_the_page_says_why_and_the_api_answers_404(model_dir, tmp_path, bundle):
    flask_app = create_app(run_config(model_dir, tmp_path / "instance", archive_url="off"))
    client = flask_app.test_client()
    page = client.get("/tracked")
    assert page.status_code == 200 and "the archive is off" in page.get_data(as_text=True)
    assert client.get("/api/v1/tracked-topics").status_code == 404


@pytest.mark.browser
def test_the_dashboard_draws_tracked_topics_saved_on_the_page(bundle, model_dir, tmp_path, page):
    from app.testing import running_server

    with running_server(
        model_dir, tmp_path, "--rate", "100", SOCIALPULSE_EMIT_INTERVAL="0.3"
    ) as live:
        for name, keywords, hashtags in [
            ("Crypto", "bitcoin, crypto", "#crypto #bitcoin"),
            ("Travel", "flight", "#travel #airport"),
        ]:
            page.goto(live.url + "/tracked")
            page.fill("#topic-name", name)
            page.fill("#topic-keywords", keywords)
            page.fill("#topic-hashtags", hashtags)
            page.click("#topic-form button[type=submit]")
            page.wait_for_selector(f"#tracked-topics tr[data-name={name}]")
        page.goto(live.url + "/")
        page.wait_for_function(
            "() => document.querySelectorAll('#tracked-share tr.tracked-row').length === 2 && "
            "Number(document.querySelector('#tracked-chart').dataset.points) > 0 && "
            "[...document.querySelectorAll('#tracked-share tr.tracked-row')].every("
            "  r => parseFloat(r.querySelector('.tracked-share__value').textContent) > 0)",
            timeout=30000,
        )
        assert page.is_hidden("#tracked-empty")
        shares = [
            float(text.split()[0])
            for text in page.locator("#tracked-share .tracked-share__value").all_text_contents()
        ]
        assert abs(sum(shares) - 100.0) < 0.2  # share of voice among the tracked topics
        page.screenshot(path=str(tmp_path / "tracked.png"), full_page=True)


def test_a_new_topic_is_counted_at_once_over_the_kept_windows_and_a_removed_one_forgotten(
    config,
):
    node = create_app(config)
    archive = ArchiveStore(config.archive_database_url)
    archive.migrate()
    archive.write([scored("acme one", T0), scored("acme two #acme", T0), scored("zenith", T0)])
    archive.close()
    with node.app_context():
        assert services().restore_history()
        tracked, hub = services().tracked, services().hub
        tracked.save(ACME, "ann")
        (acme,) = hub.current_state()["tracked"]["topics"]
        assert acme["counts"] == [2]  # the archived posts, before anything new arrives
        services().dashboard_sink.write([scored("acme three", T0)])
        tracked.save(ZENITH, "ann")  # Acme is not counted again
        assert [t["counts"] for t in hub.current_state()["tracked"]["topics"]] == [[3], [1]]
        tracked.remove("Acme")
        tracked.save(ACME, "ann")  # back: counted afresh from the archive, not added twice
        assert [t["counts"] for t in hub.current_state()["tracked"]["topics"]] == [[2], [1]]


def test_a_burst_of_a_tracked_topic_raises_its_own_alert_linked_to_explore(config):
    from tests.test_alerts_web import burst_posts

    node = create_app(config)
    with node.app_context():
        tracked = services().tracked
        tracked.save(TrackedTopic.parse("Telco", ["no signal"], []), "ann")
        services().dashboard_sink.write(burst_posts())
        alerts = services().hub.alerts.recent()
    (telco,) = [a for a in alerts if a["subject"] == "topic:Telco"]
    assert telco["kind"] == "emerging"
    assert telco["explanation"].startswith("tracked topic Telco: new, 60 posts")
    assert "tracked=Telco" in telco["explore_url"]
