"""Audiences in the running app: profiles fed by the stream, refits that version or keep the
old segmentation, POST /api/v1/audience, the Audiences page and its form, hostile input."""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app
from app.accounts import AccountStore
from app.services import services
from app.testing import csrf_from
from insights.audience_evaluation import planted_stream, score_stream
from insights.segment_store import SEGMENTATION_FILE, SegmentStore
from insights.segments import SegmentationError
from models.registry import ArtifactError
from models.signing import ManifestKey

XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def planted(bundle):
    raw, truth = planted_stream(n_posts=8_000, n_authors=120, seed=2)
    return score_stream(raw, bundle.pipeline().score_batch), truth


@pytest.fixture
def fitted(node, planted):
    """The node with profiles of the planted stream and a segmentation serving."""
    posts, _ = planted
    with node.app_context():
        audiences = services().audiences
        audiences.observe(posts)
        audiences.refit(save=False)
    return node


def assign(client, body, **kwargs):
    return client.post("/api/v1/audience", json=body, **kwargs)


def test_the_stream_feeds_author_profiles(node, planted):
    posts, _ = planted
    with node.app_context():
        services().dashboard_sink.write(posts[:300])
        audiences = services().audiences
        assert audiences.book.posts_seen == 300
        assert audiences.book.get(posts[0].post.author) is not None
        # A redelivered batch is not counted twice.
        services().dashboard_sink.write(posts[:300])
        assert audiences.book.posts_seen == 300


def test_before_any_segmentation_the_page_and_api_say_so(node):
    client = node.test_client()
    page = client.get("/audiences")
    assert page.status_code == 200 and 'id="audiences-empty"' in page.get_data(as_text=True)
    response = assign(client, {"texts": ["what a dunk #nba"]})
    assert (
        response.status_code == 409 and "no audience segments yet" in response.get_json()["error"]
    )
    assert client.get("/audiences/summary.json").get_json()["segments"] == []


def test_too_few_authors_keeps_the_old_segmentation(fitted):
    with fitted.app_context():
        audiences = services().audiences
        serving = audiences.segmentation
        audiences.book.rebuild([])  # every author gone
        with pytest.raises(SegmentationError, match="only 0 authors"):
            audiences.refit(save=False)
        assert audiences.segmentation is serving
        assert "only 0 authors" in audiences.status()["error"]
    html = fitted.test_client().get("/audiences").get_data(as_text=True)
    assert 'id="segment-0"' in html


def test_a_refit_that_cannot_be_saved_keeps_the_old_one(fitted, monkeypatch):
    with fitted.app_context():
        audiences = services().audiences

        def broken(*args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(audiences.store, "save", broken)
        serving = audiences.segmentation
        with pytest.raises(OSError):
            audiences.refit()
        assert audiences.segmentation is serving and "disk full" in audiences.error


def test_the_api_assigns_a_known_author_and_posts(fitted, planted):
    posts, truth = planted
    client = fitted.test_client()
    with fitted.app_context():
        labels = services().audiences.segmentation.labels
    handle = next(h for h, s in truth.items() if s == "tech crowd" and h in labels)
    answer = assign(client, {"handle": handle}).get_json()
    assert answer["segment"] == labels[handle] == answer["fitted_segment"]
    assert answer["why"] and answer["recommendations"]["min_posts"] == 20
    assert answer["input"]["posts"] >= 5
    texts = [p.post.text for p in posts if p.post.author == handle][:10]
    by_text = assign(client, {"texts": texts})
    assert by_text.status_code == 200
    body = by_text.get_json()
    assert body["segment"] == labels[handle] and body["input"]["texts"] == len(texts)
    assert isinstance(body["content"], list)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"handle": "nobody-seen"}, 404, "no author 'nobody-seen' has been seen"),
        ({"handle": ""}, 400, "'handle' must be 1 to 200 characters"),
        ({"handle": "x" * 5000}, 400, "'handle' must be 1 to 200 characters"),
        ({"handle": 7}, 400, "'handle' must be a string"),
        ({"texts": []}, 400, "'texts' must be a non-empty list"),
        ({"texts": "just one"}, 400, "'texts' must be a non-empty list"),
        ({"texts": ["   "]}, 400, "text 0: 'text' is empty"),
        ({"texts": ["ok", 5]}, 400, "text 1 must be a string"),
        ({"texts": ["x" * 6000]}, 400, "the limit is 5000"),
        ({"texts": ["spam"] * 21}, 400, "at most 20 texts"),
        ({"handle": "a", "texts": ["b"]}, 400, "exactly one of"),
        ({"colour": "red"}, 400, "exactly one of"),
        ({}, 400, "exactly one of"),
    ],
)
def test_bad_api_input_gets_a_clear_error(fitted, body, status, message):
    response = assign(fitted.test_client(), body)
    assert response.status_code == status
    assert message in response.get_json()["error"]


def test_the_texts_of_one_request_are_bounded_all_together(config, planted):
    node = create_app(config.with_overrides(api_max_chars=5_000))
    with node.app_context():
        services().audiences.observe(planted[0])
        services().audiences.refit(save=False)
    response = assign(node.test_client(), {"texts": ["y" * 2_000] * 3})
    assert response.status_code == 413
    assert "one request may hold at most 5000" in response.get_json()["error"]


def test_the_api_takes_json_only_and_survives_garbage(fitted):
    client = fitted.test_client()
    plain = client.post("/api/v1/audience", data="handle=x", content_type="text/plain")
    assert plain.status_code == 415
    broken = client.post("/api/v1/audience", data=b'{"texts": [', content_type="application/json")
    assert broken.status_code == 400 and broken.get_json()["error"]
    nested = client.post("/api/v1/audience", data="[" * 100_000, content_type="application/json")
    assert nested.status_code in (400, 413)
    assert assign(client, {"texts": ["still serving #nba"]}).status_code == 200


def test_hostile_text_comes_back_as_data_not_markup(fitted):
    client = fitted.test_client()
    page = client.get("/audiences")
    html = page.get_data(as_text=True)
    response = client.post(
        "/audiences", data={"csrf_token": csrf_from(html), "texts": f"{XSS} #nba great game"}
    )
    assert response.status_code == 200
    out = response.get_data(as_text=True)
    assert 'id="assign-result"' in out and XSS not in out


def test_the_page_shows_segments_map_data_and_recommendations(fitted):
    html = fitted.test_client().get("/audiences").get_data(as_text=True)
    for i in range(4):
        assert f'id="segment-{i}"' in html
    start = html.index('id="audience-data">') + len('id="audience-data">')
    data = json.loads(html[start : html.index("</script>", start)])
    assert len(data["map"]["points"]) >= 100 and data["k"] == 4
    assert {p["segment"] for p in data["map"]["points"]} == {0, 1, 2, 3}
    assert "recs--hours" in html and "lift" in html
    assert 'href="/audiences"' in html  # in the navigation


def test_the_form_needs_its_csrf_token_and_one_input(fitted):
    client = fitted.test_client()
    forged = client.post("/audiences", data={"texts": "hello #nba"})
    assert forged.status_code == 400
    # A page elsewhere cannot post the form for a visitor: it has no token.
    cross = client.post(
        "/audiences",
        data={"texts": "hello #nba", "csrf_token": "forged"},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 400 and 'id="assign-result"' not in cross.get_data(as_text=True)
    token = csrf_from(client.get("/audiences").get_data(as_text=True))
    neither = client.post("/audiences", data={"csrf_token": token})
    assert neither.status_code == 400 and "not both" in neither.get_data(as_text=True)
    unknown = client.post("/audiences", data={"csrf_token": token, "handle": "ghost"})
    assert unknown.status_code == 400 and "no author &#39;ghost&#39;" in unknown.get_data(
        as_text=True
    )
    huge = client.post("/audiences", data={"csrf_token": token, "texts": "a" * 30_000})
    assert huge.status_code == 400


def test_the_dashboard_links_audiences_and_the_summary_has_sizes(fitted):
    client = fitted.test_client()
    summary = client.get("/audiences/summary.json").get_json()
    with fitted.app_context():
        fitted_authors = len(services().audiences.segmentation.labels)
    assert sum(s["size"] for s in summary["segments"]) == fitted_authors > 100
    assert len(summary["segments"]) == 4 and all(s["name"] for s in summary["segments"])
    assert 'id="audience-sizes"' in client.get("/").get_data(as_text=True)


def test_the_openapi_spec_describes_the_endpoint(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/audience"]["post"]
    assert {"200", "400", "404", "409", "413"} <= set(operation["responses"])


def test_segmentations_are_versioned_signed_and_checked(fitted, tmp_path):
    key = ManifestKey(b"k" * 32)
    store = SegmentStore(tmp_path, key)
    with fitted.app_context():
        segmentation = services().audiences.segmentation
    folder = store.save(segmentation)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "audience-segmentation" and manifest["metrics"]["k"] == 4
    assert SEGMENTATION_FILE in manifest["files"]
    loaded = store.load()
    assert loaded.labels == segmentation.labels and loaded.version == folder.name
    assert store.experiments.runs()[-1]["run"] == folder.name
    (folder / SEGMENTATION_FILE).write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        store.load()
    with pytest.raises(ArtifactError):
        SegmentStore(tmp_path, ManifestKey(b"o" * 32)).load()


def test_the_endpoint_keeps_its_description_when_segments_serve(fitted):
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fitted)
    operation = next(
        result.ok()
        for result in schema.get_all_operations()
        if result.ok().path == "/api/v1/audience"
    )

    @given(case=operation.as_strategy())
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def keeps_its_description(case):
        case.call_and_validate(checks=checks)

    keeps_its_description()


def test_a_node_serves_the_newest_version_another_refit_saved(config, planted, tmp_path):
    shared = config.with_overrides(model_dir=str(tmp_path / "models"))
    # Both nodes share the model folder's audiences/ (the scoring models come from config).
    fitter = create_app(config)
    follower = create_app(config)
    with fitter.app_context():
        fitting = services().audiences
    with follower.app_context():
        following = services().audiences
    store = type(fitting.store)(shared.model_dir, config.manifest_key())
    fitting.store = following.store = store
    assert not following.follow()  # nothing saved yet
    fitting.observe(planted[0])
    fitted = fitting.refit()
    assert following.follow() and following.segmentation.version == fitted.version
    assert not following.follow()  # already the newest
    assert following.segmentation.labels == fitted.labels


def test_with_access_control_the_api_needs_an_analyze_token(config, planted):
    store = AccountStore(config.accounts_path)
    store.add_user("ann", "correct horse battery", "analyst")
    node = create_app(config)
    with node.app_context():
        services().audiences.observe(planted[0])
        services().audiences.refit(save=False)
    _, analyze_token = store.create_token("job", ["analyze"])
    _, read_token = store.create_token("reader", ["read"])
    client = node.test_client()
    body = {"texts": ["what a dunk #nba"]}
    assert assign(client, body).status_code == 401
    refused = assign(client, body, headers={"Authorization": f"Bearer {read_token}"})
    assert refused.status_code == 403 and "'analyze' scope" in refused.get_json()["error"]
    allowed = assign(client, body, headers={"Authorization": f"Bearer {analyze_token}"})
    assert allowed.status_code == 200 and allowed.get_json()["name"]
    # The page and its data need a login, like every page.
    assert client.get("/audiences").status_code == 303
    assert client.get("/audiences/summary.json").status_code == 303


def test_a_body_over_the_limit_is_refused_with_413(fitted):
    body = json.dumps({"texts": ["x" * 1000] * 1200})
    response = fitted.test_client().post(
        "/api/v1/audience", data=body, content_type="application/json"
    )
    assert response.status_code == 413 and "larger than the limit" in response.get_json()["error"]


def test_texts_get_the_same_segment_whatever_the_time_of_the_request(fitted, planted, monkeypatch):
    """Bare texts carry no posting times: the hour they are sent at must not decide."""
    from datetime import UTC, datetime

    import app.audiences as audiences_module

    posts, truth = planted
    with fitted.app_context():
        service = services().audiences
        labels = service.segmentation.labels
        answers = set()
        for handle in [h for h in truth if h in labels][:6]:
            texts = [p.post.text for p in posts if p.post.author == handle][:10]
            for hour in (3, 9, 15, 21):

                class Clock(datetime):
                    @classmethod
                    def now(cls, tz=None, hour=hour):
                        return datetime(2026, 3, 4, hour, 30, tzinfo=UTC)

                monkeypatch.setattr(audiences_module, "datetime", Clock)
                answers.add((handle, service.assign_texts(texts)["segment"]))
    assert len(answers) == 6  # one segment per author, at every hour
