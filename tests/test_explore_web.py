"""Explore on the web: the page, `GET /api/v1/posts` (filters, pages, every bad input,
tokens), the streamed exports (every format, no rows, bounded memory, roles) and an
archive that is off or unavailable (503, the rest of the app unharmed)."""

from __future__ import annotations

import csv
import io
import tracemalloc
from dataclasses import replace

import orjson
import pyarrow.parquet as pq
import pytest

from app import create_app
from app.accounts import AccountStore
from app.testing import csrf_from, log_in, run_config, wait_for
from app.views.explore import MAX_EXPORTS, export_slots
from archive import queries
from archive.export import write_csv
from archive.queries import PostFilter
from archive.store import ArchiveStore
from archive.tracked_store import TrackedTopicStore
from tests.test_explore_queries import T0, make_posts

PASSWORD = "correct horse battery"
XSS = "<img src=x onerror=alert(1)>"
FORMULA = f"=cmd|' /C calc'!A0 {XSS}"


@pytest.fixture
def archived(config, pipeline, sample_posts):
    posts = make_posts(pipeline, sample_posts)
    posts[3] = replace(posts[3], post=replace(posts[3].post, text=FORMULA))
    store = ArchiveStore(config.archive_database_url)
    store.migrate()
    store.write(posts)
    store.close()
    return posts


@pytest.fixture
def web(config, archived):
    flask_app = create_app(config)
    flask_app.config.update(TESTING=True)
    return flask_app.test_client()


def newest_first(items) -> list[str]:
    ordered = sorted(items, key=lambda s: (s.post.created_at, s.post.id), reverse=True)
    return [s.post.id for s in ordered]


# -- the page ---------------------------------------------------------------------------------
def test_the_page_shows_the_filtered_posts_their_scores_and_charts(web, archived):
    page = web.get("/explore?hashtag=tag1&author=author1")
    html = page.get_data(as_text=True)
    expected = [s for s in archived if "tag1" in s.post.hashtags and s.post.author == "author1"]
    assert page.status_code == 200
    assert html.count("<tr data-id=") == len(expected) > 0
    for item in expected:
        assert f'data-id="{item.post.id}"' in html
        assert f"{item.sentiment.compound:+.2f}" in html
    assert f"<strong>{len(expected)}</strong> posts match" in html
    # Charts of the filtered set; links that narrow it; exports of the same filters.
    assert 'id="sentiment-chart"' in html and 'id="cluster-chart"' in html
    assert "/explore/export?hashtag=tag1&amp;author=author1&amp;format=parquet" in html
    assert "/explore?hashtag=tag1&amp;author=author1&amp;cluster=" in html


def test_the_page_pages_through_the_set(web, archived):
    seen, url = [], "/explore?limit=25&source=file"
    while url:
        html = web.get(url).get_data(as_text=True)
        shown = [line.split('"')[1] for line in html.split("<tr data-id=")[1:]]
        assert 0 < len(shown) <= 25  # the page size holds on every page
        seen += shown
        marker = 'id="page-next"'
        url = None
        if marker in html:
            href = html.split(marker)[0].rsplit('href="', 1)[1].split('"')[0]
            url = href.replace("&amp;", "&")
    assert seen == newest_first([s for s in archived if s.post.source == "file"])


def test_post_text_is_escaped_on_the_page(web, archived):
    html = web.get("/explore?q=calc").get_data(as_text=True)
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=tomorrow", "ISO 8601"),
        ("colour=red", "unknown filter"),
        ("sentiment=joyful", "positive, neutral, negative"),
        ("cursor=garbage", "cursor"),
        ("q=" + "a" * 5000, "at most 200 characters"),
    ],
)
def test_a_bad_filter_on_the_page_is_a_400_that_says_why(web, query, message):
    page = web.get("/explore?" + query)
    assert page.status_code == 400
    assert message in page.get_data(as_text=True)
    assert 'id="explore-filters"' in page.get_data(as_text=True)  # the form, to fix it


def texts_of(html: str) -> list[str]:
    return [
        cell.split("<br>")[0].split("</td>")[0] for cell in html.split('class="post-text">')[1:]
    ]


def rows(html: str) -> list[str]:
    return [line.split('"')[1] for line in html.split("<tr data-id=")[1:]]


@pytest.fixture
def tracked_topic(config, archived):
    store = ArchiveStore(config.archive_database_url)
    TrackedTopicStore(store).save(("Power", ("battery life", "charge"), ("tag_x",)), by="test")
    store.close()
    return [
        s
        for s in archived
        if "battery life" in s.post.text.lower()
        or "charge" in s.post.text.lower().split()
        or "tag_x" in s.post.hashtags
    ]


def test_links_from_alerts_open_explore_filtered(web, archived, tracked_topic):
    from insights.alerts import explore_url

    day = (T0, T0 + 86_400)
    cases = [
        (explore_url("#tag2", *day), lambda s: "tag2" in s.post.hashtags),
        (
            explore_url(f"cluster:{archived[0].cluster.id}", *day),
            lambda s: s.cluster.id == archived[0].cluster.id,
        ),
        (explore_url("keyword:battery", *day), lambda s: "battery" in s.post.text.lower()),
        (explore_url("topic:power", *day), lambda s: s in tracked_topic),
        (
            explore_url("#tag1", *day, author="author1"),
            lambda s: "tag1" in s.post.hashtags and s.post.author == "author1",
        ),
    ]
    for url, keep in cases:
        page = web.get(url)
        assert page.status_code == 200, (url, page.get_data(as_text=True)[:300])
        expected = [
            s for s in archived if T0 <= s.post.created_at.timestamp() < T0 + 86_400 and keep(s)
        ]
        assert expected and rows(page.get_data(as_text=True)) == newest_first(expected)[:50]


def test_a_tracked_topic_filters_on_any_of_its_keywords_and_hashtags(web, tracked_topic):
    api = web.get("/api/v1/posts?tracked=POWER&limit=200").get_json()
    assert [p["id"] for p in api["posts"]] == newest_first(tracked_topic)
    unknown = web.get("/api/v1/posts?tracked=nobody")
    assert (
        unknown.status_code == 400
        and "no tracked topic is named 'nobody'" in unknown.get_json()["error"]
    )
    html = web.get("/explore?tracked=Power").get_data(as_text=True)
    assert 'name="tracked" value="Power"' in html  # kept by the form and the links
    assert "/explore/export?tracked=Power&amp;format=csv" in html
    # A topic saved on the Tracked page links to its posts in Explore.
    token = csrf_from(web.get("/tracked").get_data(as_text=True))
    saved = web.post(
        "/tracked",
        data={"csrf_token": token, "name": "Fly & Co", "keywords": "flight", "hashtags": ""},
    )
    assert saved.status_code == 303
    listing = web.get("/tracked").get_data(as_text=True)
    assert 'href="/explore?tracked=Fly+%26+Co"' in listing
    flights = web.get("/explore?tracked=Fly+%26+Co").get_data(as_text=True)
    assert rows(flights) and all("flight" in t.lower() for t in texts_of(flights))


def test_charts_over_too_many_posts_leave_the_table_and_say_why(config, archived):
    flask_app = create_app(replace(config, explore_max_rows=10))
    html = flask_app.test_client().get("/explore").get_data(as_text=True)
    assert "more than 10 posts match: narrow the time range" in html
    assert html.count("<tr data-id=") == 50


# -- the API ----------------------------------------------------------------------------------
def test_the_api_filters_and_pages_like_the_page(web, archived):
    seen, cursor = [], None
    while True:
        url = "/api/v1/posts?q=battery&limit=7" + (f"&cursor={cursor}" if cursor else "")
        body = web.get(url).get_json()
        assert len(body["posts"]) <= 7
        seen += [p["id"] for p in body["posts"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first([s for s in archived if "battery" in s.post.text.lower()])
    post = web.get("/api/v1/posts?post=p004").get_json()["posts"][0]
    assert post["created_at"].endswith("Z") and post["hashtags"] == ["tag1"]
    assert post["sentiment_compound"] == archived[4].sentiment.compound


def test_the_api_summary_draws_the_filtered_set(config, web, archived):
    body = web.get("/api/v1/posts/summary?source=kafka").get_json()
    assert body["total"] == sum(s.post.source == "kafka" for s in archived)
    assert sum(b["count"] for b in body["series"]) == body["total"]
    small = create_app(replace(config, explore_max_rows=5)).test_client()
    refused = small.get("/api/v1/posts/summary")
    assert refused.status_code == 400 and "narrow" in refused.get_json()["error"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("frm=2024-01-01", "unknown filter 'frm'"),
        ("from=2024-02-30", "ISO 8601"),
        ("from=2024-01-02&to=2024-01-01", "'from' must be before 'to'"),
        ("to=-5", "between 1970 and 9999"),
        ("from=" + "9" * 100, "too long"),
        ("limit=0", "from 1 to 200"),
        ("limit=100000", "from 1 to 200"),
        ("cursor=eyJ4Ijox", "cursor"),
        ("cluster=abc", "cluster id"),
        ("compound_min=-3", "from -1 to 1"),
        ("engagement=huge", "low, medium, high"),
        ("hashtag=%22%3B--", "'hashtag' is letters"),
        ("q=" + "x" * 100_000, "at most 200 characters"),
        ("q=" + "+".join(f"w{i}" for i in range(50)), "at most 8 words"),
        ("author=a&author=b", "give 'author' once"),
        ("%00=1", "unknown filter"),
    ],
)
def test_every_bad_input_is_a_400_with_a_message(web, query, message):
    response = web.get("/api/v1/posts?" + query)
    assert response.status_code == 400
    assert message in response.get_json()["error"]


@pytest.mark.parametrize(
    "q",
    ['"', "*", "NEAR(", "a OR b", "x' OR '1'='1", "); DROP TABLE posts; --", "col:", "^x", "%"],
)
def test_search_syntax_and_sql_in_q_only_ever_match_words(web, archived, q):
    response = web.get("/api/v1/posts", query_string={"q": q})
    assert response.status_code == 200
    found = response.get_json()["posts"]
    words = queries.parse_query(q)[0]
    assert all(set(words) <= set(queries._WORD_RE.findall(p["text"].lower())) for p in found)
    assert len(web.get("/api/v1/posts?limit=200").get_json()["posts"]) == len(archived)


def test_the_api_needs_a_token_with_the_read_scope_once_access_control_is_on(config, web, archived):
    accounts = AccountStore(config.accounts_path)
    accounts.add_user("ada", PASSWORD, "admin")
    assert web.get("/api/v1/posts").status_code == 401
    _, analyze_only = accounts.create_token("scorer", ["analyze"])
    _, reader = accounts.create_token("reader", ["read"])
    forbidden = web.get("/api/v1/posts", headers={"Authorization": f"Bearer {analyze_only}"})
    assert forbidden.status_code == 403 and "read" in forbidden.get_json()["error"]
    ok = web.get("/api/v1/posts?limit=3", headers={"Authorization": f"Bearer {reader}"})
    assert ok.status_code == 200 and len(ok.get_json()["posts"]) == 3
    # The login cookie never opens the API, and no other origin may read it.
    log_in(web, "ada", PASSWORD)
    assert web.get("/api/v1/posts").status_code == 401
    cross = web.get(
        "/api/v1/posts",
        headers={"Authorization": f"Bearer {reader}", "Origin": "https://evil.example"},
    )
    assert "Access-Control-Allow-Origin" not in cross.headers


def test_the_api_is_described_with_its_filters(web):
    spec = web.get("/api/v1/openapi.json").get_json()
    names = {p["name"] for p in spec["paths"]["/api/v1/posts"]["get"]["parameters"]}
    assert set(queries.FILTER_NAMES) | {"cursor", "limit"} == names
    assert "503" in spec["paths"]["/api/v1/posts"]["get"]["responses"]


# -- exports ----------------------------------------------------------------------------------
def download(web, query: str):
    response = web.get("/explore/export?" + query)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "attachment" in response.headers["Content-Disposition"]
    return response.get_data()


def test_exports_hold_exactly_the_filtered_set_in_every_format(web, archived):
    expected = newest_first([s for s in archived if s.post.author == "author3"])
    rows = list(csv.DictReader(io.StringIO(download(web, "author=author3").decode())))
    assert [r["id"] for r in rows] == expected
    assert rows[0]["author"] == "author3" and float(rows[0]["sentiment_compound"]) == next(
        s.sentiment.compound for s in archived if s.post.id == expected[0]
    )
    lines = download(web, "author=author3&format=jsonl").splitlines()
    assert [orjson.loads(line)["id"] for line in lines] == expected
    table = pq.read_table(io.BytesIO(download(web, "author=author3&format=parquet")))
    assert table.column("id").to_pylist() == expected
    assert table.schema.field("created_at").type.tz == "UTC"
    by_id = {s.post.id: s for s in archived}
    assert table.column("hashtags").to_pylist() == [list(by_id[i].post.hashtags) for i in expected]


def test_an_export_of_no_rows_is_a_valid_empty_file(web, archived):
    header = download(web, "q=nowhere").decode()
    assert header.strip() == ",".join(queries.EXPORT_COLUMNS)
    assert download(web, "q=nowhere&format=jsonl") == b""
    table = pq.read_table(io.BytesIO(download(web, "q=nowhere&format=parquet")))
    assert table.num_rows == 0 and table.column_names == list(queries.EXPORT_COLUMNS)


def test_csv_cells_that_spreadsheets_would_run_are_exported_as_text(web, archived):
    rows = list(csv.DictReader(io.StringIO(download(web, "post=p003").decode())))
    assert rows[0]["text"] == "'" + FORMULA
    line = download(web, "post=p003&format=jsonl")
    assert orjson.loads(line)["text"] == FORMULA  # JSON is not run: kept as it was


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("format=xlsx", 400, "'format' is one of csv, jsonl, parquet"),
        ("format=csv&from=soon", 400, "ISO 8601"),
        ("format=csv&limit=5", 400, "unknown filter 'limit'"),
    ],
)
def test_a_bad_export_request_is_refused(web, query, status, message):
    response = web.get("/explore/export?" + query)
    assert response.status_code == status and message in response.get_data(as_text=True)


def test_exports_are_for_analysts_once_access_control_is_on(config, web, archived):
    accounts = AccountStore(config.accounts_path)
    accounts.add_user("vera", PASSWORD, "viewer")
    accounts.add_user("ann", PASSWORD, "analyst")
    assert web.get("/explore/export").status_code == 303  # to the login page
    log_in(web, "vera", PASSWORD)
    assert web.get("/explore").status_code == 200  # viewers explore
    assert web.get("/explore/export").status_code == 403
    other = web.application.test_client()
    log_in(other, "ann", PASSWORD)
    assert other.get("/explore/export?format=jsonl").status_code == 200
    # Explore changes nothing, so it takes no POST (and no cross-site form can use it).
    assert other.post("/explore", data={"q": "x"}).status_code == 405
    assert other.post("/explore/export", data={"format": "csv"}).status_code == 405


def test_an_export_holds_one_chunk_in_memory_not_the_set(tmp_path, pipeline, sample_posts):
    """20,000 rows exported in chunks of 500 peak at a fraction of what reading them all at
    once takes (tracemalloc counts every Python allocation, rows and text included)."""
    store = ArchiveStore(f"sqlite:///{tmp_path / 'big.sqlite3'}")
    store.migrate()
    base = make_posts(pipeline, sample_posts, 50)
    for start in range(0, 20_000, 2000):
        store.write(
            [
                replace(s, post=replace(s.post, id=f"{start + i:06d}", text=s.post.text * 3))
                for i, s in enumerate(base * 40)
            ]
        )
    sizes: list[int] = []

    def chunks():
        for chunk in queries.chunks(store.engine.connect, PostFilter(), 500):
            sizes.append(len(chunk))
            yield chunk

    tracemalloc.start()
    total = sum(len(part) for part in write_csv(chunks()))
    streamed = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    tracemalloc.start()
    with store.engine.connect() as connection:
        everything = list(connection.execute(queries._ordered(PostFilter(), "sqlite", None, 10**9)))
    loaded = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    store.close()
    assert len(everything) == 20_000 == sum(sizes) and max(sizes) == 500
    assert total > 5_000_000
    assert streamed < loaded / 5


# -- the archive off or away ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "message"),
    [("off", "the archive is off"), ("postgresql://u@127.0.0.1:9/x", "unavailable")],
)
def test_without_the_archive_explore_says_so_and_the_rest_serves(model_dir, tmp_path, url, message):
    config = run_config(model_dir, tmp_path / "instance", archive_url=url)
    web = create_app(config).test_client()
    page = web.get("/explore?q=x")
    assert page.status_code == 503 and message in page.get_data(as_text=True)
    api = web.get("/api/v1/posts")
    assert api.status_code == 503 and message in api.get_json()["error"]
    export = web.get("/explore/export")
    assert export.status_code == 503 and message in export.get_data(as_text=True)
    assert web.get("/explore?colour=red").status_code == 400  # bad input is still bad input
    assert web.get("/").status_code == 200
    assert web.get("/livez").status_code == 200


def test_a_database_that_goes_away_is_a_503_until_it_is_back(
    model_dir, tmp_path, archived_rows, proxied_postgres
):
    """PostgreSQL cut mid-use (a proxy in front of it), then restored."""
    proxy, through = proxied_postgres.proxy, proxied_postgres.through
    store = ArchiveStore(through)
    store.migrate()
    store.write(archived_rows)
    store.close()
    web = create_app(run_config(model_dir, tmp_path / "i", archive_url=through)).test_client()
    assert web.get("/explore?q=battery").status_code == 200
    proxy.stop()
    page = web.get("/explore?q=battery")
    assert page.status_code == 503 and "unavailable" in page.get_data(as_text=True)
    assert web.get("/api/v1/posts").status_code == 503
    assert web.get("/explore/export").status_code == 503
    assert web.get("/").status_code == 200  # the live side serves on
    proxy.start()
    assert wait_for(lambda: web.get("/api/v1/posts").status_code == 200, 20, "the archive")


@pytest.fixture
def archived_rows(pipeline, sample_posts):
    return make_posts(pipeline, sample_posts, 20)


def test_paging_through_a_set_draws_its_charts_once(web, archived, monkeypatch):
    calls = []
    real = queries.summarise
    monkeypatch.setattr(queries, "summarise", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = web.get("/explore?source=file&limit=10").get_data(as_text=True)
    href = first.split('id="page-next"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = web.get(href.replace("&amp;", "&")).get_data(as_text=True)
    assert "<strong>30</strong> posts match" in first and "<strong>30</strong>" in second
    assert len(calls) == 1
    web.get("/explore?source=kafka")  # another set: its own charts
    assert len(calls) == 2


def test_exports_at_once_are_bounded_and_a_finished_one_frees_its_slot(web, archived):
    with web.application.app_context():
        slots = export_slots()
    for _ in range(MAX_EXPORTS):
        assert slots.acquire(blocking=False)  # as many exports as allowed are running
    busy = web.get("/explore/export")
    assert busy.status_code == 429 and "try again" in busy.get_data(as_text=True)
    assert busy.headers["Retry-After"]
    for _ in range(MAX_EXPORTS):
        slots.release()
    for _ in range(MAX_EXPORTS + 2):  # finished, refused and cut-short ones give theirs back
        assert web.get("/explore/export?format=jsonl").status_code == 200
        assert web.get("/explore/export?format=xlsx").status_code == 400
        partial = web.get("/explore/export", buffered=False)
        partial.close()
    assert all(slots.acquire(blocking=False) for _ in range(MAX_EXPORTS))


def test_the_summary_draws_each_tracked_topic_and_its_share_of_voice(config, web, archived):
    store = ArchiveStore(config.archive_database_url)
    TrackedTopicStore(store).save(("Power", ("battery life", "charge"), ("tag_x",)), by="test")
    TrackedTopicStore(store).save(("Tag one", (), ("tag1",)), by="test")
    store.close()
    body = web.get("/api/v1/posts/summary?source=kafka").get_json()
    kafka = [s for s in archived if s.post.source == "kafka"]
    power, tag_one = body["tracked"]
    expected = {
        "Power": [
            s
            for s in kafka
            if "battery life" in s.post.text.lower()
            or "charge" in s.post.text.lower().split()
            or "tag_x" in s.post.hashtags
        ],
        "Tag one": [s for s in kafka if "tag1" in s.post.hashtags],
    }
    starts = [b["start"] for b in body["series"]]
    for topic in (power, tag_one):
        wanted = expected[topic["name"]]
        assert topic["total"] == len(wanted) > 0
        assert len(topic["counts"]) == len(starts) and sum(topic["counts"]) == len(wanted)
        first = min(int(s.post.created_at.timestamp()) for s in wanted)
        bucket = body["bucket_seconds"]
        assert topic["counts"][starts.index(first // bucket * bucket)] >= 1
    assert power["share"] + tag_one["share"] == pytest.approx(1.0, abs=1e-3)
    assert power["share"] == pytest.approx(
        len(expected["Power"]) / (len(expected["Power"]) + len(expected["Tag one"])), abs=1e-3
    )
    html = web.get("/explore?source=kafka").get_data(as_text=True)
    assert 'id="tracked-chart"' in html and 'data-name="Tag one"' in html
    assert 'href="/explore?source=kafka&amp;tracked=Tag+one"' in html
