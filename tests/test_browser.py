"""The dashboard and the form in Debian's headless Chromium, driven by Playwright."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from app.testing import running_server

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def server(bundle, model_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("browser")
    with running_server(
        model_dir,
        workdir,
        "--rate",
        "100",
        SOCIALPULSE_EMIT_INTERVAL="0.3",
        SOCIALPULSE_WORDCLOUD_INTERVAL="1",
    ) as live:
        yield live.url


def _attr(page, selector: str, name: str) -> int:
    value = page.get_attribute(selector, name)
    return int(value or 0)


def test_dashboard_shows_live_feed_charts_and_word_cloud(server, page, tmp_path):
    page.goto(server + "/")
    page.wait_for_function(
        "() => document.querySelectorAll('#feed .post').length >= 10", timeout=20000
    )
    assert page.locator("#feed .post").count() <= 50

    page.wait_for_function(
        "() => Number(document.querySelector('#sentiment-chart').dataset.points || 0) > 0 && "
        "Number(document.querySelector('#cluster-chart').dataset.points || 0) > 0",
        timeout=20000,
    )
    updates = _attr(page, "body", "data-updates")
    first_post = page.get_attribute("#feed .post", "data-id")
    page.wait_for_function(
        f"() => Number(document.body.dataset.updates) > {updates + 2}", timeout=20000
    )
    page.wait_for_function(
        f"() => document.querySelector('#feed .post').dataset.id !== {first_post!r}", timeout=20000
    )

    page.wait_for_function(
        "() => Number(document.querySelector('#wordcloud').dataset.version) >= 1", timeout=30000
    )
    version = _attr(page, "#wordcloud", "data-version")
    page.wait_for_function(
        f"() => Number(document.querySelector('#wordcloud').dataset.version) > {version}",
        timeout=30000,
    )
    assert page.evaluate("document.querySelector('#wordcloud').naturalWidth") > 100

    assert (
        page.inner_text("#status").strip().lower().startswith("live")
        or "connected" in page.inner_text("#status").lower()
    )
    # Shown compact past a thousand ("1.1k", "2.3M", "4B").
    total = re.fullmatch(r"([\d.,]+)\s*([kMB]?)", page.inner_text("#stat-total").strip())
    assert total is not None and float(total.group(1).replace(",", "")) > 0

    shot = Path(os.environ.get("SOCIALPULSE_SCREENSHOT") or tmp_path / "dashboard.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert not page.dialogs
    assert not page.problems, page.problems


def test_form_shows_markup_as_text_and_runs_no_script(server, page):
    page.goto(server + "/analyze")
    page.fill("#text", XSS + " what a GREAT game!!! #nba")
    page.fill("#hashtags", "#nba #playoffs")
    page.click("#analyze-submit")
    page.wait_for_selector("#result", timeout=15000)

    assert page.inner_text("#result-text").strip() == XSS + " what a GREAT game!!! #nba"
    assert page.locator("#result img").count() == 0
    assert page.inner_text("#result-sentiment").strip() == "positive"
    assert "#" in page.inner_text("#result-cluster")
    assert page.inner_text("#result-engagement").strip()
    page.wait_for_timeout(500)  # an injected onerror handler would have fired by now
    assert not page.dialogs
    assert not page.problems, page.problems


def _post(i: int) -> dict:
    return {"id": f"burst-{i}", "author": "fan", "text": f"post {i}", "hashtags": ["nba"]}


def _series(points: int, positive: int) -> list[dict]:
    return [
        {
            "start": f"2026-01-01T00:{m:02d}:00+00:00",
            "mean": 0.1,
            "positive": positive,
            "neutral": 1,
            "negative": 1,
        }
        for m in range(points)
    ]


def test_a_busy_stream_redraws_charts_twice_a_second_and_adds_a_few_posts_a_frame(server, page):
    """Updates are fed to the page by hand (its Socket.IO library is blocked), as fast as a
    busy stream sends them: the charts end on the latest data without redrawing for every
    update, and a filled feed takes the newest ten posts of a frame."""
    page.route("**/socket.io.min.js", lambda route: route.abort())
    page.goto(server + "/")
    page.wait_for_function("() => window.SocialPulseDashboard !== undefined")
    page.problems.clear()  # the blocked script
    page.evaluate(
        "(posts) => SocialPulseDashboard.handleUpdate({posts: posts})",
        [_post(i) for i in range(60, 10, -1)],
    )
    page.wait_for_function("() => document.querySelectorAll('#feed .post').length === 50")
    draws = page.evaluate(
        """async (series) => {
            const start = SocialPulseDashboard.perf.chartDraws;
            for (let i = 0; i < series.length; i++) {
                SocialPulseDashboard.handleUpdate({sentiment_series: series[i]});
                await new Promise((done) => setTimeout(done, 30));
            }
            await new Promise((done) => setTimeout(done, 700));
            return SocialPulseDashboard.perf.chartDraws - start;
        }""",
        [_series(3 + (k % 5), k) for k in range(40)],  # 40 updates over about 1.2 s
    )
    assert 1 <= draws <= 4
    assert _attr(page, "#sentiment-chart", "data-points") == 3 + (39 % 5)  # the last one

    page.evaluate(
        "(posts) => SocialPulseDashboard.handleUpdate({posts: posts})",
        [_post(i) for i in range(100, 70, -1)],
    )
    page.wait_for_function("() => document.querySelector('#feed .post').dataset.id === 'burst-100'")
    ids = page.eval_on_selector_all("#feed .post", "nodes => nodes.map(n => n.dataset.id)")
    assert ids[:10] == [f"burst-{i}" for i in range(100, 90, -1)]
    assert ids[10] == "burst-60" and len(ids) == 50
    assert not page.problems, page.problems


BROWSER_PASSWORD = "a browser-test passphrase"


@pytest.fixture(scope="module")
def secured_server(bundle, model_dir, tmp_path_factory):
    """A live server with one user: every page asks for a login."""
    from app.accounts import AccountStore

    workdir = tmp_path_factory.mktemp("browser-auth")
    AccountStore(workdir / "instance" / "accounts.sqlite3").add_user(
        "vera", BROWSER_PASSWORD, "viewer"
    )
    with running_server(
        model_dir, workdir, "--rate", "100", SOCIALPULSE_EMIT_INTERVAL="0.3"
    ) as live:
        yield live.url


def test_login_live_updates_and_logout(secured_server, page):
    page.goto(secured_server + "/")
    assert page.url.startswith(secured_server + "/login")
    page.fill("#name", "vera")
    page.fill("#password", "not the right one")
    page.click("#login-submit")
    assert "Wrong user name or password." in page.inner_text("#login-error")
    page.problems.clear()  # the refused login's own 400

    page.fill("#name", "vera")
    page.fill("#password", BROWSER_PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(secured_server + "/", timeout=15000)
    assert page.inner_text("#user-name").strip() == "vera"
    assert page.inner_text("#user-role").strip() == "viewer"
    # Socket.IO joined with the same session: live updates arrive.
    page.wait_for_function(
        "() => Number(document.body.dataset.updates) > 2 && "
        "document.querySelectorAll('#feed .post').length >= 5",
        timeout=20000,
    )

    page.click("#logout")
    # The logout's own redirect, or the sign-out it sends this login's live tabs.
    page.wait_for_url(re.compile(re.escape(secured_server) + r"/login(\?.*)?$"), timeout=15000)
    page.goto(secured_server + "/analyze")
    assert page.url.startswith(secured_server + "/login")
    assert not page.dialogs
    assert not page.problems, page.problems
