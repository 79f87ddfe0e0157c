"""The audience section of the HTML report: elbow chart, map and segment profiles."""

from __future__ import annotations

import re
import shutil

import pytest
from click.testing import CliRunner

from app.cli import main
from app.report import build_report
from app.testing import run_manifest_key
from insights.audience_evaluation import planted_stream, score_stream
from insights.audiences import fit_segmentation
from insights.profiles import profiles_from_posts
from insights.segment_store import SegmentStore
from insights.segments import SegmentParams
from models.registry import load_evaluation, read_manifest

IMAGE = re.compile(r'<img alt="[^"]*" src="data:image/png;base64,[A-Za-z0-9+/=]{200,}">')


@pytest.fixture(scope="module")
def segmentation(bundle):
    raw, _ = planted_stream(n_posts=6_000, n_authors=100, seed=6)
    posts = score_stream(raw, bundle.pipeline().score_batch)
    return fit_segmentation(profiles_from_posts(posts), SegmentParams(min_posts=10))


def test_the_report_has_an_audience_section_with_its_figures(model_dir, bundle, segmentation):
    manifest = read_manifest(model_dir, bundle.version)
    evaluation = load_evaluation(model_dir, bundle.version)
    plain = build_report(manifest, evaluation)
    assert 'id="audiences"' not in plain
    html = build_report(manifest, evaluation, segmentation)
    assert len(IMAGE.findall(html)) == len(IMAGE.findall(plain)) + 2
    assert '<img alt="map of authors coloured by segment"' in html
    assert '<img alt="inertia and silhouette by number of segments"' in html
    for segment in segmentation.segments.values():
        assert segment["distinguishing"][0]["words"].split(" (")[0] in html
    assert "<script" not in html.lower()


def test_hostile_segment_names_are_escaped(model_dir, bundle, segmentation):
    segment = segmentation.segments[segmentation.ids[0]]
    original = segment["name"]
    segment["name"] = "<script>alert(1)</script>"
    try:
        html = build_report(
            read_manifest(model_dir, bundle.version),
            load_evaluation(model_dir, bundle.version),
            segmentation,
        )
    finally:
        segment["name"] = original
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html


def test_the_report_command_adds_the_newest_segmentation(model_dir, bundle, segmentation, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(model_dir, models, ignore=shutil.ignore_patterns("audiences"))
    SegmentStore(models, run_manifest_key()).save(segmentation)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        main,
        ["report", "--version", bundle.version, "--out", str(out), "--model-dir", str(models)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert 'id="audiences"' in out.read_text()
