"""The web app through Flask's test client: pages, security headers, form, JSON API, live."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from urllib.parse import urlsplit

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app
from app.testing import run_config
from streaming.records import POST_FIELDS, parse_post

XSS = "<img src=x onerror=alert(1)>"


class PageParser(HTMLParser):
    """Collects script sources, inline scripts, link hrefs and hidden inputs of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.script_srcs: list[str] = []
        self.inline_scripts = 0
        self.link_hrefs: list[str] = []
        self.inputs: dict[str, str] = {}
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.handlers += [name for name in attributes if name.startswith("on")]
        if tag == "script":
            self._in_script = True
            if attributes.get("src"):
                self.script_srcs.append(attributes["src"])
        elif tag == "link" and attributes.get("href"):
            self.link_hrefs.append(attributes["href"])
        elif tag == "input" and attributes.get("name"):
            self.inputs[attributes["name"]] = attributes.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


def csrf_token(client) -> str:
    page = client.get("/analyze")
    assert page.status_code == 200
    token = parse_page(page.get_data(as_text=True)).inputs.get("csrf_token")
    assert token
    return token


@pytest.fixture(scope="module")
def shared_app(model_dir, bundle, tmp_path_factory):
    """One app for the property tests (hypothesis cannot use function-scoped fixtures)."""
    config = run_config(model_dir, tmp_path_factory.mktemp("instance"), max_body_bytes=20_000)
    flask_app = create_app(config)
    flask_app.config.update(TESTING=True)
    return flask_app


# -- pages and headers ------------------------------------------------------------------------


def test_dashboard_has_a_strict_content_security_policy(client):
    response = client.get("/")
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert directives["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_batch_over_the_text_budget_is_refused_unscored(client, config, app):
    text = "😀" * config.max_text_length  # the emoji-heavy text that was once quadratic
    fits = config.api_max_chars // config.max_text_length
    posts = [{"text": text}] * (fits + 1)

    def post(batch):  # UTF-8 as is: four bytes an emoji keep the body under its own limit
        body = json.dumps({"posts": batch}, ensure_ascii=False).encode()
        return client.post("/api/v1/analyze", data=body, content_type="application/json")

    response = post(posts)
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert f"at most {config.api_max_chars}" in error and "index" not in response.get_json()
    response = post(posts[:fits])
    assert response.status_code == 200
    assert len(response.get_json()["results"]) == fits


@pytest.mark.parametrize("path", ["/", "/analyze"])
def test_pages_load_only_local_scripts_and_styles(client, path):
    page = parse_page(client.get(path).get_data(as_text=True))
    if path == "/":
        # socket.io, chart.js, dashboard.js, audience_sizes.js
        assert len(page.script_srcs) == 4
    assert page.inline_scripts == 0  # the policy would block them
    assert page.handlers == []  # inline event handlers too
    for url in page.script_srcs + page.link_hrefs:
        parts = urlsplit(url)
        assert parts.netloc == "", url
        assert parts.scheme in ("", "data"), url
    for url in page.script_srcs + [h for h in page.link_hrefs if not h.startswith("data:")]:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.content_length > 0


def test_healthz_reports_json(client, app):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["model_version"] == app.extensions["socialpulse"].pipeline.model_version
    assert body["streaming"] is False  # the stream is started by `serve`, not by the factory
    assert body["scored"] == 0


def test_no_word_cloud_before_posts_arrive(client):
    assert client.get("/wordcloud.png").status_code == 404


def test_the_word_cloud_is_drawn_in_a_child_process_that_comes_back(app):
    """The drawing process gives the PNG the library draws, and a killed one is replaced."""
    from app.wordcloud_image import WordcloudRenderer, render_wordcloud

    words = {"delayed": 40, "#refund": 25, "bags": 12, "crew": 7}
    renderer = WordcloudRenderer()
    try:
        png = renderer.render(words)
        assert png.startswith(b"\x89PNG") and png == render_wordcloud(words)
        renderer._child.kill()
        renderer._child.wait()
        assert renderer.render(words) == png
    finally:
        renderer.close()


def test_the_word_cloud_is_laid_out_coarser_but_drawn_at_full_size():
    from PIL import Image

    from app.wordcloud_image import render_wordcloud

    words = {f"word{i}": 150 - i for i in range(150)}
    image = Image.open(io.BytesIO(render_wordcloud(words, width=800, height=360)))
    assert image.size == (800, 360)
    # Words cover the image, not only the top-left quarter the coarse grid spans.
    pixels = np.asarray(image.convert("L"))
    assert (pixels[180:, 400:] < 250).mean() > 0.05


@pytest.mark.parametrize(
    "hostile",
    [
        {"x" * 5000: 10, "delayed": 3},  # the longest word a post may hold, most frequent
        {"y" * 300: 10},  # too long for the grid, and nothing else
        {"a" * 40: 10**12, "b": 1},
        {"😀" * 50: 5, "e\u0301" * 300: 4, "\u202eevil\u202c": 3, "שלום": 2},
        {f"w{i}": i + 1 for i in range(2000)},
    ],
)
def test_hostile_words_still_give_a_word_cloud(hostile):
    from PIL import Image

    from app.wordcloud_image import render_wordcloud

    image = Image.open(io.BytesIO(render_wordcloud(hostile)))
    assert image.size == (800, 360)


def test_live_viewers_get_a_word_cloud(app, raw_posts):
    hub = app.extensions["socialpulse"].hub
    app.extensions["socialpulse"].dashboard_sink.write(
        app.extensions["socialpulse"].pipeline.score_batch(
            [parse_post(raw) for raw in raw_posts[:50]]
        )
    )
    hub.clients = 1  # as if a viewer were connected
    try:
        assert hub.render_wordcloud_once() is True
        response = app.test_client().get(f"/wordcloud.png?v={hub.wordcloud_version}")
        assert response.status_code == 200 and response.data.startswith(b"\x89PNG")
        assert hub.render_wordcloud_once() is False  # nothing new: not drawn again
    finally:
        hub.stop()


# -- JSON API ---------------------------------------------------------------------------------


def test_analyze_one_post(client):
    response = client.post(
        "/api/v1/analyze", json={"text": "I love this amazing game! #nba", "author_followers": 50}
    )
    assert response.status_code == 200
    body = response.get_json()
    for key in ("sentiment", "cluster", "engagement", "model_version", "latency_ms", "explanation"):
        assert key in body
    assert body["sentiment"]["label"] == "positive"
    assert body["sentiment"]["calibrated_label"] == "positive"
    assert 0.0 < body["sentiment"]["calibrated_probability"] <= 1.0
    assert body["hashtags"] == ["nba"]
    assert body["engagement"]["predicted"] >= 0
    assert {"sentiment_drivers", "cluster_terms", "engagement_contributions"} <= set(
        body["explanation"]
    )
    assert any(d["token"] == "love" for d in body["explanation"]["sentiment_drivers"])


def test_analyze_batch_keeps_order(client):
    texts = ["This is awful and broken", "What a wonderful day", "Meeting at noon"]
    response = client.post("/api/v1/analyze", json={"posts": [{"text": t} for t in texts]})
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["text"] for r in results] == texts
    assert [r["sentiment"]["label"] for r in results] == ["negative", "positive", "neutral"]


def test_analyze_batch_over_the_limit_is_rejected(client, config):
    posts = [{"text": f"post {i}"} for i in range(config.api_max_batch + 1)]
    response = client.post("/api/v1/analyze", json={"posts": posts})
    assert response.status_code == 400
    assert response.get_json()["error"] == f"at most {config.api_max_batch} posts per request"
    posts.pop()
    assert client.post("/api/v1/analyze", json={"posts": posts}).status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"", "request body is empty"),
        (b"\xff\xfe", "request body is not valid UTF-8"),
        (b"[1, 2]", "request body must be a JSON object, not list"),
        (b'"hello"', "request body must be a JSON object, not str"),
        (b"{}", "missing 'text'"),
        (b'{"text": ""}', "'text' is empty"),
        (b'{"text": 5}', "'text' must be a string, got int"),
        (b'{"text": "hi", "author_followers": "12"}', "'author_followers' must be a whole"),
        (b'{"text": "hi", "author_followers": 10000000000000}', "'author_followers' is larger"),
        (b'{"text": "hi", "hashtags": "nba"}', "'hashtags' must be a list"),
        (b'{"text": "hi", "likes": 1}', "unknown field(s) 'likes'"),
        (b'{"posts": []}', "'posts' must be a non-empty list"),
        (b'{"posts": {"text": "hi"}}', "'posts' must be a non-empty list"),
        (b'{"posts": [{"text": "hi"}], "text": "x"}', "only the key 'posts'"),
        (b"[" * 100_000, "request body is not valid JSON"),
    ],
)
def test_bad_requests_get_400_with_a_message(client, body, message):
    response = client.post("/api/v1/analyze", data=body, content_type="application/json")
    assert response.status_code == 400
    assert message in response.get_json()["error"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"text": "hi", "author_followers": ' + b"9" * 400 + b"}",
        b'{"text": "hi", "author_followers": ' + b"9" * 5000 + b"}",
        b'{"text": "hi", "id": ' + b"9" * 5000 + b"}",
        b'{"text": "hi", "created_at": 1e400}',
        b'{"text": "hi", "created_at": ' + b"9" * 300 + b"}",
    ],
)
def test_huge_numbers_are_a_400_not_a_crash(client, body):
    response = client.post("/api/v1/analyze", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]


def test_text_longer_than_the_limit_is_rejected(client, config):
    response = client.post("/api/v1/analyze", json={"text": "x" * (config.max_text_length + 1)})
    assert response.status_code == 400
    assert f"the limit is {config.max_text_length}" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("item", "message"),
    [({"text": 5}, "post 1: 'text' must be a string"), ("hello", "post 1 must be a JSON object")],
)
def test_bad_batch_item_is_named_by_index(client, item, message):
    response = client.post("/api/v1/analyze", json={"posts": [{"text": "fine"}, item]})
    assert response.status_code == 400
    body = response.get_json()
    assert body["index"] == 1
    assert message in body["error"]


def test_body_over_the_limit_gets_413_json(config):
    small = create_app(config.with_overrides(max_body_bytes=300))
    small.config.update(TESTING=True)
    client = small.test_client()
    assert client.post("/api/v1/analyze", json={"text": "short"}).status_code == 200
    response = client.post("/api/v1/analyze", json={"text": "x" * 400})
    assert response.status_code == 413
    assert response.get_json()["error"] == "request body is larger than the limit of 300 bytes"


def test_api_needs_no_csrf_token_but_the_form_does(client):
    assert client.post("/api/v1/analyze", json={"text": "hi"}).status_code == 200
    response = client.post("/analyze", data={"text": "hi"})
    assert response.status_code == 400
    assert 'id="result"' not in response.get_data(as_text=True)


def test_api_accepts_only_post(client):
    response = client.get("/api/v1/analyze")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["posts", *sorted(POST_FIELDS)]) | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=15,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_api_never_answers_500_for_any_json(shared_app, value):
    response = shared_app.test_client().post(
        "/api/v1/analyze", data=json.dumps(value), content_type="application/json"
    )
    assert response.status_code in (200, 400, 413), response.get_data(as_text=True)
    if response.status_code != 200:
        assert response.get_json()["error"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | st.text(max_size=100).map(lambda t: t.encode("utf-8")))
def test_api_never_answers_500_for_any_bytes(shared_app, body):
    response = shared_app.test_client().post(
        "/api/v1/analyze", data=body, content_type="application/json"
    )
    assert response.status_code in (200, 400, 413)
    if response.status_code != 200:
        assert response.get_json()["error"]


# -- analysis form ----------------------------------------------------------------------------


def test_analyze_page_has_a_csrf_token(client):
    assert len(csrf_token(client)) > 20


def test_form_without_csrf_token_is_rejected(client):
    response = client.post("/analyze", data={"text": "I love it"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'id="result"' not in html
    assert "I love it" not in html


def test_form_with_a_wrong_csrf_token_is_rejected(client):
    csrf_token(client)
    response = client.post("/analyze", data={"csrf_token": "forged", "text": "I love it"})
    assert response.status_code == 400
    assert 'id="result"' not in response.get_data(as_text=True)


def test_form_shows_the_result(client):
    response = client.post(
        "/analyze",
        data={
            "csrf_token": csrf_token(client),
            "text": "Awful service, I hate it",
            "hashtags": "#Travel, airport",
            "author_followers": "120",
        },
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="result"' in html
    assert '<span class="label negative" id="result-sentiment">negative</span>' in html
    assert '<span class="label negative" id="result-calibrated">negative</span>' in html
    assert "#travel" in html and "#airport" in html


def test_form_escapes_the_text_it_shows(client):
    response = client.post("/analyze", data={"csrf_token": csrf_token(client), "text": XSS})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="result"' in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert XSS not in html
    assert parse_page(html).handlers == []


def test_form_with_empty_text_says_what_is_missing(client):
    response = client.post("/analyze", data={"csrf_token": csrf_token(client), "text": ""})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Enter the text of a post." in html
    assert 'id="result"' not in html


@pytest.mark.parametrize(
    ("followers", "message"),
    [
        ("-3", "Author followers must be between 0 and 1,000,000,000,000."),
        ("9" * 400, "Author followers must be between 0 and 1,000,000,000,000."),
        ("many", "Not a valid integer value."),
    ],
)
def test_form_with_bad_followers_says_why(client, followers, message):
    response = client.post(
        "/analyze",
        data={"csrf_token": csrf_token(client), "text": "hello", "author_followers": followers},
    )
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


# -- live updates -----------------------------------------------------------------------------


def test_live_client_gets_an_update_on_connect(socketio_client):
    assert socketio_client.is_connected("/live")
    events = socketio_client.get_received("/live")
    updates = [e for e in events if e["name"] == "update"]
    assert len(updates) == 1
    payload = updates[0]["args"][0]
    assert {"posts", "stats", "sentiment_series", "clusters", "trending"} <= set(payload)
    assert payload["posts"] == []
    assert payload["stats"]["total"] == 0


def test_a_connect_sends_the_snapshot_to_the_new_client_only(app, client, socketio_client):
    socketio = app.extensions["socketio"]
    socketio_client.get_received("/live")
    newcomers = [
        socketio.test_client(app, namespace="/live", flask_test_client=client) for _ in range(5)
    ]
    try:
        for newcomer in newcomers:
            updates = [e for e in newcomer.get_received("/live") if e["name"] == "update"]
            assert len(updates) == 1
        # Nothing changed meanwhile, so the first viewer got nothing from their connects.
        assert [e for e in socketio_client.get_received("/live") if e["name"] == "update"] == []
    finally:
        for newcomer in newcomers:
            newcomer.disconnect(namespace="/live")


def test_live_update_reflects_scored_posts(app, socketio_client, pipeline, sample_posts):
    socketio_client.get_received("/live")
    app.extensions["socialpulse"].aggregates.add(pipeline.score_batch(sample_posts[:5]))
    socketio_client.disconnect(namespace="/live")
    socketio_client.connect(namespace="/live")
    (update,) = [e for e in socketio_client.get_received("/live") if e["name"] == "update"]
    assert update["args"][0]["stats"]["total"] == 5
    assert sum(c["count"] for c in update["args"][0]["clusters"]) == 5


def test_updates_go_out_at_once_after_a_lull_and_at_most_once_per_interval(
    app, socketio_client, pipeline, sample_posts
):
    hub = app.extensions["socialpulse"].hub
    aggregates = app.extensions["socialpulse"].aggregates
    hub.emit_interval = 0.5
    socketio_client.get_received("/live")
    assert hub.emit_if_due(100.0) is True  # the first state
    aggregates.add(pipeline.score_batch(sample_posts[:2]))
    assert hub.emit_if_due(100.1) is False  # a busy stream waits for the interval
    assert hub.emit_if_due(100.5) is True
    assert hub.emit_if_due(101.0) is False  # nothing new: nothing sent
    aggregates.add(pipeline.score_batch(sample_posts[2:3]))
    assert hub.emit_if_due(200.0) is True  # after a lull, at once
    updates = [e for e in socketio_client.get_received("/live") if e["name"] == "update"]
    assert len(updates) == 3
    assert [len(u["args"][0]["posts"]) for u in updates] == [0, 2, 1]
