"""The Audiences page in headless Chromium: the map drawn with hover details, the elbow
chart, the assign form answering with recommendations, and the dashboard's segment sizes."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from app.cli import main
from app.testing import TEST_MODEL_KEY, running_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(bundle, model_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("audiences-browser")
    models = workdir / "models"
    shutil.copytree(model_dir, models, ignore=shutil.ignore_patterns("audiences"))
    env = {
        "SOCIALPULSE_MODEL_DIR": str(models),
        "SOCIALPULSE_INSTANCE_DIR": str(workdir / "instance"),
        "SOCIALPULSE_MODEL_KEY": TEST_MODEL_KEY,
    }
    fitted = CliRunner().invoke(
        main, ["audiences", "fit", "--synthetic", "12000", "--min-posts", "20"], env=env
    )
    assert fitted.exit_code == 0, fitted.output
    with running_server(models, workdir, "--rate", "50") as live:
        yield live.url


def test_the_audiences_page_draws_the_map_and_answers_the_form(server, page):
    page.goto(server + "/audiences")
    page.wait_for_function(
        "() => Number(document.querySelector('#audience-map').dataset.points || 0) > 100",
        timeout=20000,
    )
    segments = int(page.get_attribute("#audience-map", "data-segments"))
    assert segments >= 2
    assert page.locator("section.segment").count() == segments
    assert int(page.get_attribute("#audience-elbow", "data-points")) == 7  # k = 2..8
    assert page.locator("section.segment .recs--topics tbody tr").count() >= segments

    # Hovering a point shows who it is.
    point = page.evaluate(
        "() => { const c = Chart.getChart(document.querySelector('#audience-map'));"
        " const p = c.getDatasetMeta(0).data[0]; return {x: p.x, y: p.y}; }"
    )
    box = page.locator("#audience-map").bounding_box()
    page.mouse.move(box["x"] + point["x"], box["y"] + point["y"])
    page.wait_for_function(
        "() => Chart.getChart(document.querySelector('#audience-map')).tooltip.opacity > 0",
        timeout=5000,
    )
    lines = page.evaluate(
        "() => Chart.getChart(document.querySelector('#audience-map'))"
        ".tooltip.body.flatMap(b => b.lines)"
    )
    assert any(" posts" in line for line in lines) and any("segment" in line for line in lines)

    page.fill("#texts", "What a buzzer beater from the Lakers #nba #playoffs\nGG in ranked #gaming")
    page.click("#assign-submit")
    page.wait_for_selector("#assign-result", timeout=20000)
    assert page.inner_text("#assign-segment-name").strip()
    assert page.locator("#assign-result .recs--hours").count() == 1
    assert page.locator("#assign-result .recs--topics tbody tr").count() >= 1

    assert not page.problems, page.problems

    # A bad answer is a 400 page with the reason (the browser logs its status; nothing else).
    page.fill("#texts", "")
    page.fill("#handle", "<b>nobody</b>")
    page.click("#assign-submit")
    page.wait_for_selector("#assign-error", timeout=20000)
    assert "has been seen" in page.inner_text("#assign-error")
    assert not page.dialogs
    assert all("status of 400" in problem for problem in page.problems), page.problems


def test_the_dashboard_shows_live_segment_sizes(server, page):
    page.goto(server + "/")
    page.wait_for_function(
        "() => document.querySelectorAll('#audience-sizes-list li').length >= 2", timeout=20000
    )
    sizes = page.locator("#audience-sizes-list li strong").all_inner_texts()
    assert sum(int(s) for s in sizes) > 100
    page.click("#audience-sizes a")
    page.wait_for_url("**/audiences")
    assert not page.problems, page.problems
