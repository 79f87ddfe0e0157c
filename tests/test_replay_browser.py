"""The Replay page and a replayed file on the live dashboard, in headless Chromium."""

from __future__ import annotations

from datetime import datetime

import pytest

from app.testing import running_server
from tests.test_replay import write_posts

pytestmark = pytest.mark.browser

AIRLINE = "twitter_airline_sentiment/Tweets.csv"


@pytest.fixture(scope="module")
def server(bundle, model_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("replay-browser")
    folder = workdir / "replays"
    folder.mkdir()
    write_posts(folder / "posts.jsonl", count=400, spread=200.0)
    with running_server(
        model_dir,
        workdir,
        "--rate",
        "5",
        SOCIALPULSE_REPLAY_DIR=str(folder),
        SOCIALPULSE_EMIT_INTERVAL="0.3",
    ) as live:
        yield live.url


def fraction(page) -> float:
    return float(page.get_attribute("#replay-bar", "data-fraction") or 0)


def test_start_watch_pause_resume_and_stop_a_replay(server, page):
    page.goto(server + "/replay")
    page.select_option("#replay-file", "posts.jsonl")
    page.fill("#replay-speed", "10")  # 200 s of posts in 20 s
    page.click("#replay-start-button")
    page.wait_for_function(
        "() => Number(document.querySelector('#replay-bar').dataset.fraction) > 0", timeout=20000
    )
    page.wait_for_function(
        "() => document.querySelectorAll('#feed .post').length >= 3", timeout=20000
    )
    first = fraction(page)
    page.wait_for_function(
        f"() => Number(document.querySelector('#replay-bar').dataset.fraction) > {first}",
        timeout=20000,
    )
    assert "/replay?session=" in page.url
    page.wait_for_function(
        "() => document.querySelector('#stat-version').textContent.trim() !== '–'", timeout=10000
    )
    assert page.text_content("#stat-source") == "replay-file"
    assert page.text_content("#replay-clock") != "–"
    page.click("#replay-pause")
    page.wait_for_function(
        "() => document.querySelector('#replay-state').dataset.state === 'paused'", timeout=10000
    )
    held = page.get_attribute("#replay-bar", "data-handed-out")
    page.wait_for_timeout(1500)  # paused: the count does not move
    assert page.get_attribute("#replay-bar", "data-handed-out") == held
    page.click("#replay-resume")
    page.wait_for_function(
        f"() => Number(document.querySelector('#replay-bar').dataset.handedOut) > {held}",
        timeout=20000,
    )
    page.click("#replay-stop")
    page.wait_for_function(
        "() => document.querySelector('#replay-state').dataset.state === 'stopped'", timeout=10000
    )
    assert fraction(page) < 1.0
    assert int(page.get_attribute("#sentiment-chart", "data-points") or 0) > 0
    # The live dashboard never saw the replay's posts.
    replayed = set(page.eval_on_selector_all("#feed .post", "els => els.map(e => e.dataset.id)"))
    page.goto(server + "/")
    page.wait_for_function(
        "() => document.querySelectorAll('#feed .post').length >= 1", timeout=20000
    )
    live = set(page.eval_on_selector_all("#feed .post", "els => els.map(e => e.dataset.id)"))
    assert replayed and not replayed & live
    assert not page.problems


def test_a_bad_replay_shows_its_error(server, page):
    page.goto(server + "/replay")
    page.fill("#replay-speed", "-4")
    page.click("#replay-start-button")
    page.wait_for_selector("#replay-error:not([hidden])", timeout=10000)
    assert "speed" in page.text_content("#replay-error")


def test_the_airline_file_replayed_on_the_dashboard_spans_its_eight_days(
    shared_data, bundle, model_dir, tmp_path, page
):
    """`serve --source file` on the shared airline tweets (newest first, in blocks per
    airline): replayed in event-time order into two-hour windows, trending with real
    counts, and a browser that connects after the end sees the feed and the charts."""
    path = shared_data / AIRLINE
    if not path.exists():
        pytest.skip(f"{AIRLINE} is not in ../shared/data")
    import requests

    from app.testing import wait_for

    # As an analyst runs it, at ×600: in event-time order from the first tweets, in
    # two-hour windows, the feed filling at once.
    paced = ["--source", "file", "--file", str(path), "--id-col", "tweet_id"]
    paced += ["--author-col", "name", "--time-col", "tweet_created", "--file-speed", "600"]
    (tmp_path / "paced").mkdir()
    (tmp_path / "fast").mkdir()
    with running_server(model_dir, tmp_path / "paced", *paced) as live:
        page.goto(live.url + "/")
        page.wait_for_function(
            "() => Number(document.querySelector('#sentiment-chart').dataset.points) >= 3",
            timeout=60000,
        )
        first = datetime.fromisoformat(page.get_attribute("#sentiment-chart", "data-first"))
        last = datetime.fromisoformat(page.get_attribute("#sentiment-chart", "data-last"))
        assert (last - first).total_seconds() % 7200 == 0 and last > first
        # The oldest tweet (16 Feb, 23:36 -08:00) comes first: its window opens the chart.
        assert first.isoformat() == "2015-02-17T06:00:00+00:00"
        assert page.locator("#feed .post").count() >= 1
        page.goto("about:blank")  # before the server stops: no reconnect attempts
    args = ["--source", "file", "--file", str(path), "--id-col", "tweet_id"]
    args += ["--author-col", "name", "--time-col", "tweet_created", "--file-speed", "0"]
    with running_server(model_dir, tmp_path / "fast", *args) as live:
        wait_for(
            lambda: (
                requests.get(live.url + "/healthz", timeout=5).json().get("scored", 0) >= 14_000
            ),
            120,
            "the file to be replayed",
            interval=1.0,
        )
        page.goto(live.url + "/")  # after the replay ended
        page.wait_for_function(
            "() => document.querySelectorAll('#feed .post').length >= 50", timeout=20000
        )
        page.wait_for_function(
            "() => Number(document.querySelector('#sentiment-chart').dataset.points) > 80",
            timeout=20000,
        )
        first = page.get_attribute("#sentiment-chart", "data-first")
        last = page.get_attribute("#sentiment-chart", "data-last")
        span = datetime.fromisoformat(last.replace("Z", "+00:00")) - datetime.fromisoformat(
            first.replace("Z", "+00:00")
        )
        assert span.days >= 7  # 16–24 February 2015
        counts = [
            int(text.replace(",", ""))
            for text in page.eval_on_selector_all(
                "#trending .trend__count", "els => els.map(e => e.textContent)"
            )
        ]
        assert counts and max(counts) >= 20 and len(counts) >= 5
        assert not page.problems
