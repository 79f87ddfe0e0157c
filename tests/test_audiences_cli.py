"""`socialpulse audiences fit | show | export`, `socialpulse evaluate audiences`, and
profiles rebuilt from the archive."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
from click.testing import CliRunner

from app.audiences import AudienceService
from app.cli import main
from app.testing import run_config
from archive.store import ArchiveStore
from insights.audience_evaluation import planted_stream, score_stream


@pytest.fixture
def workdir(model_dir, tmp_path):
    """A copy of the run's models: saved segmentations stay out of the shared folder."""
    models = tmp_path / "models"
    shutil.copytree(model_dir, models, ignore=shutil.ignore_patterns("audiences"))
    return {
        "SOCIALPULSE_MODEL_DIR": str(models),
        "SOCIALPULSE_INSTANCE_DIR": str(tmp_path / "instance"),
        "SOCIALPULSE_ARCHIVE_URL": f"sqlite:///{tmp_path / 'archive.sqlite3'}",
    }


def run(env, *args: str):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_fit_show_and_export_a_synthetic_audience(workdir, tmp_path):
    fitted = run(workdir, "audiences", "fit", "--synthetic", "6000", "--min-posts", "10")
    assert fitted.exit_code == 0, fitted.output
    assert "segments (silhouette) over 120 authors" in fitted.output
    assert "saved " in fitted.output
    shown = run(workdir, "audiences", "show", "--json")
    data = json.loads(shown.output)
    assert len(data["segments"]) == data["metrics"]["k"] >= 2 and data["version"]
    assert data["metrics"]["k_curve"] and data["map"]["points"]
    text = run(workdir, "audiences", "show").output
    assert "recommendations (observed engagement" in text
    exported = run(workdir, "audiences", "export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    assert len(rows) == data["metrics"]["authors"]
    assert {int(r["segment"]) for r in rows} == {s["id"] for s in data["segments"]}
    out = tmp_path / "audience.json"
    assert run(workdir, "audiences", "export", "--out", str(out)).exit_code == 0
    assert len(json.loads(out.read_text())["authors"]) == len(rows)
    # A second fit is a new version whose segments keep their ids.
    again = run(workdir, "audiences", "fit", "--synthetic", "6000", "--min-posts", "10")
    assert again.exit_code == 0
    second = json.loads(run(workdir, "audiences", "show", "--json").output)
    assert second["version"] != data["version"]
    assert [s["size"] for s in second["segments"]] == [s["size"] for s in data["segments"]]


def test_fit_from_the_archive_and_too_few_authors(workdir, bundle):
    store = ArchiveStore(workdir["SOCIALPULSE_ARCHIVE_URL"])
    store.migrate()
    raw, _ = planted_stream(n_posts=600, n_authors=300, seed=4)
    store.write(score_stream(raw, bundle.pipeline().score_batch))
    store.close()
    few = run(workdir, "audiences", "fit", "--min-posts", "50")
    assert few.exit_code == 1
    assert "only 0 authors have at least 50 posts" in few.output
    fitted = run(workdir, "audiences", "fit", "--min-posts", "1", "--k", "3")
    assert fitted.exit_code == 0, fitted.output
    assert "archive (600 posts)" in fitted.output and "3 segments (fixed)" in fitted.output


def test_show_without_a_segmentation_says_what_to_do(workdir):
    result = run(workdir, "audiences", "show")
    assert result.exit_code == 1 and "run `audiences fit`" in result.output


def test_fit_refuses_bad_weights(workdir):
    result = run(workdir, "audiences", "fit", "--synthetic", "2000", "--weights", "colour=1")
    assert result.exit_code == 2 and "unknown feature block 'colour'" in result.output


def test_evaluate_audiences_reports_recovery_against_targets(workdir):
    result = run(
        workdir,
        "evaluate",
        "audiences",
        "--posts",
        "6000",
        "--authors",
        "100",
        "--rounds",
        "2",
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["figures"]["ari"] >= 0.8 and report["met"]["stability_ari"]
    assert report["k"] == 4 and len(report["segments"]) == 4


def test_profiles_are_rebuilt_from_the_archive(model_dir, tmp_path, bundle, archive_url):
    store = ArchiveStore(archive_url)
    store.migrate()
    raw, _ = planted_stream(n_posts=1_500, n_authors=50, seed=5)
    posts = score_stream(raw, bundle.pipeline().score_batch)
    store.write(posts)
    config = run_config(model_dir, tmp_path / "instance", audience_idle_days=0)
    service = AudienceService(config, None, bundle.pipeline)
    assert service.rebuild(store) == len(posts)
    author = posts[0].post.author
    assert service.book.get(author).n_posts == sum(p.post.author == author for p in posts)
    assert len(service.book) == len({p.post.author for p in posts})
    store.close()
