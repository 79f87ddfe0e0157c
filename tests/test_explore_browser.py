"""Explore in Debian's headless Chromium: from a click on the live dashboard to the filtered
posts, filtering there, and downloading an export of what is shown."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from app.testing import running_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(bundle, model_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("explore-browser")
    with running_server(
        model_dir,
        workdir,
        "--rate",
        "150",
        SOCIALPULSE_EMIT_INTERVAL="0.3",
        SOCIALPULSE_WORDCLOUD_INTERVAL="1",
    ) as live:
        yield live.url


def rows_shown(page, url: str, timeout: float = 15.0) -> int:
    """Open `url` until its table has posts (the archive's writer is a moment behind)."""
    waited = 0.0
    while True:
        page.goto(url)
        count = page.locator("#explore-posts tbody tr[data-id]").count()
        if count or waited >= timeout:
            return count
        page.wait_for_timeout(500)
        waited += 0.5


def test_from_a_dashboard_click_to_filtered_posts_and_an_export(server, page, tmp_path):
    page.goto(server + "/")
    page.wait_for_function(
        "() => document.querySelectorAll('#trending a.trend__tag').length > 0 && "
        "Number(document.querySelector('#cluster-chart').dataset.points || 0) > 0",
        timeout=30000,
    )

    # A hashtag on the dashboard opens Explore on that hashtag.
    # Read and clicked in one step: live updates re-rank the list at any moment.
    wanted_tag = page.evaluate(
        """() => {
          const tag = document.querySelector('#trending a.trend__tag');
          const text = tag.textContent.trim();
          tag.click();
          return text;
        }"""
    ).lstrip("#")
    page.wait_for_url("**/explore?hashtag=*", timeout=15000)
    assert parse_qs(urlsplit(page.url).query)["hashtag"] == [wanted_tag]
    assert rows_shown(page, page.url) > 0
    for text in page.locator("#explore-posts tbody tr[data-id] .post-text").all_inner_texts():
        assert "#" + wanted_tag.lower() in text.lower()
    assert page.input_value("#f-hashtag") == wanted_tag

    # A point in time on the sentiment chart opens Explore on that window; feed authors link.
    page.goto(server + "/")
    page.wait_for_function(
        "() => Number(document.querySelector('#sentiment-chart').dataset.points || 0) > 1 && "
        "document.querySelectorAll('#feed a.post__author').length > 0",
        timeout=30000,
    )
    href, name = page.evaluate(
        """() => {
          const author = document.querySelector('#feed a.post__author');
          return [author.getAttribute('href'), author.textContent.trim()];
        }"""
    )
    assert parse_qs(urlsplit(href).query)["author"] == [name.lstrip("@")]
    point = page.evaluate(
        """() => {
          const bar = Chart.getChart(document.getElementById('sentiment-chart'))
            .getDatasetMeta(1).data[0];
          return {x: bar.x, y: bar.y + 2};
        }"""
    )
    page.locator("#sentiment-chart").click(position=point)
    page.wait_for_url("**/explore?from=*", timeout=15000)
    window = parse_qs(urlsplit(page.url).query)
    assert set(window) == {"from", "to"} and window["from"][0] < window["to"][0]
    assert rows_shown(page, page.url) > 0

    # The word cloud (an image) opens Explore on the span the charts show.
    page.goto(server + "/")
    page.wait_for_function(
        "() => Number(document.querySelector('#wordcloud').dataset.version) >= 1 && "
        "Number(document.querySelector('#sentiment-chart').dataset.points || 0) > 0",
        timeout=30000,
    )
    page.click("#wordcloud")
    page.wait_for_url("**/explore?from=*", timeout=15000)
    assert rows_shown(page, page.url) > 0

    # A cluster bar on the dashboard opens Explore on that cluster.
    page.goto(server + "/")
    page.wait_for_function(
        "() => Number(document.querySelector('#cluster-chart').dataset.points || 0) > 0",
        timeout=30000,
    )
    point = page.evaluate(
        """() => {
          const bar = Chart.getChart(document.getElementById('cluster-chart'))
            .getDatasetMeta(0).data[0];
          return {x: (bar.x + bar.base) / 2, y: bar.y};
        }"""
    )
    page.locator("#cluster-chart").click(position=point)
    page.wait_for_url("**/explore?cluster=*", timeout=15000)
    cluster = parse_qs(urlsplit(page.url).query)["cluster"][0]
    assert rows_shown(page, page.url) > 0
    badges = page.locator("#explore-posts tbody tr[data-id] a.badge.cluster")
    for href in [badges.nth(i).get_attribute("href") for i in range(badges.count())]:
        assert parse_qs(urlsplit(href).query)["cluster"] == [cluster]
    page.wait_for_function(
        "() => Number(document.querySelector('#sentiment-chart').dataset.points || 0) > 0"
    )

    # Filter in Explore: a word of the first post's text, within this cluster.
    first_text = page.locator("#explore-posts tbody tr[data-id] .post-text").first.inner_text()
    word = next(w for w in first_text.lower().split() if w.isalpha() and len(w) > 3)
    page.fill("#f-q", word)
    page.click("#f-apply")
    page.wait_for_url("**/explore?*q=*", timeout=15000)
    texts = page.locator("#explore-posts tbody tr[data-id] .post-text").all_inner_texts()
    assert texts and all(word in t.lower() for t in texts)
    total = int(page.inner_text("#explore-total strong").replace(",", ""))
    assert total >= len(texts)

    shot = Path(os.environ.get("SOCIALPULSE_EXPLORE_SCREENSHOT") or tmp_path / "explore.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 1500})
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shot))  # the first screen: filters, charts, newest posts
    assert shot.stat().st_size > 10_000

    # Download what is shown: the same filters, every matching post.
    with page.expect_download(timeout=30000) as download:
        page.click("#export-csv")
    saved = tmp_path / "downloads" / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".csv"
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert len(rows) >= total  # the stream may have archived more since
    assert all(word in r["text"].lower() and r["cluster_id"] == cluster for r in rows)

    # Correct the first post: its sentiment label and its topic, kept and shown on the row.
    filtered = page.url
    row = page.locator("#explore-posts tbody tr[data-id]").first
    post_id = row.get_attribute("data-id")
    row.locator("details.correct summary").click()
    sentiment = row.locator("form.correct-form[data-field=sentiment]")
    sentiment.locator("select[name=value]").select_option("negative")
    sentiment.locator("button").click()
    page.wait_for_load_state()
    assert page.url == filtered  # back where the correction was made
    row = page.locator(f"#explore-posts tbody tr[data-id='{post_id}']")
    row.locator("details.correct summary").click()
    topic = row.locator("form.correct-form[data-field=topic]")
    topic.locator("input[name=value]").fill("Lost bags")
    topic.locator("button").click()
    page.wait_for_load_state()
    row = page.locator(f"#explore-posts tbody tr[data-id='{post_id}']")
    assert row.locator(".badge.corrected[data-field=sentiment]").inner_text() == "✓ negative"
    assert row.locator(".badge.corrected[data-field=topic]").inner_text() == "✓ Lost bags"
    assert not page.dialogs
    assert not page.problems, page.problems
