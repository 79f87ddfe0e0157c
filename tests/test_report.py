"""The HTML report, the `report` command and the dashboard's Models page."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from app.cli import main
from app.report import build_report
from app.testing import run_config, run_manifest_key
from app.views.models import REPORT_CSP
from models.registry import (
    EVALUATION_FILE,
    MANIFEST,
    REPORT_FILE,
    load_evaluation,
    read_manifest,
    save_bundle,
)

IMAGE = re.compile(r'<img alt="[^"]*" src="data:image/png;base64,[A-Za-z0-9+/=]{200,}">')


@pytest.fixture
def evaluation(model_dir, bundle) -> dict:
    return load_evaluation(model_dir, bundle.version)


@pytest.fixture
def manifest(model_dir, bundle) -> dict:
    return read_manifest(model_dir, bundle.version)


def test_report_is_self_contained_with_every_figure(manifest, evaluation):
    html = build_report(manifest, evaluation)
    assert html.startswith("<!doctype html>")
    # Nothing is fetched: no scripts, no links, no external sources.
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    for alt in (
        "correlation heatmap",
        "posts per cluster",
        "predicted against actual",
        "residuals",
        "feature importance",
        "band confusion matrices",
    ):
        assert re.search(rf'<img alt="{alt}" src="data:image/png;base64,', html), alt
    assert len(IMAGE.findall(html)) == 6  # no network in the default models: no comparison
    assert manifest["version"] in html
    rf = manifest["metrics"]["engagement_holdout"]
    assert f"{rf['spearman']:.3f}" in html and f"{rf['r2']:.3f}" in html
    # One profile row per cluster, with its top terms.
    terms = [str(t) for t in evaluation["cluster_terms"]]
    assert all(t.split(" · ")[0] in html for t in terms if t)


def test_report_compares_forest_and_network_when_both_are_there(manifest, evaluation):
    with_nn = dict(evaluation, test_nn=evaluation["test_rf"] + 0.3)
    metrics = dict(manifest["metrics"])
    metrics["neural_holdout"] = dict(metrics["engagement_holdout"], r2=0.123456)
    html = build_report(dict(manifest, metrics=metrics), with_nn)
    assert '<img alt="forest against network"' in html
    assert "neural network" in html and "0.123" in html
    assert len(IMAGE.findall(html)) == 7


def test_text_from_the_data_is_escaped(manifest, evaluation):
    labels = evaluation["cluster_labels"].copy().astype(object)
    labels[0] = "<script>alert(1)</script>"
    hostile = dict(evaluation, cluster_labels=np.array(labels.tolist()))
    html = build_report(dict(manifest, data={"source": "<img src=x onerror=alert(1)>"}), hostile)
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html


# -- the command ----------------------------------------------------------------------------------
def test_report_command_writes_the_newest_version(model_dir, bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIALPULSE_MODEL_DIR", str(model_dir))
    monkeypatch.delenv("SOCIALPULSE_MODEL_VERSION", raising=False)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        main, ["report", "--version", bundle.version, "--out", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert bundle.version in html and len(IMAGE.findall(html)) == 6
    missing = CliRunner().invoke(main, ["report", "--version", "19990101T000000000000Z"])
    assert missing.exit_code != 0 and "not found" in missing.output


def test_report_command_refuses_tampered_evaluation_data(model_dir, bundle, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(model_dir / bundle.version, root / bundle.version)
    path = root / bundle.version / EVALUATION_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(
        main, ["report", "--model-dir", str(root), "--out", str(tmp_path / "r.html")]
    )
    assert result.exit_code != 0
    assert "does not match its manifest" in result.output
    assert not (tmp_path / "r.html").exists()


# -- the Models page ------------------------------------------------------------------------------
def test_models_page_shows_the_running_version_and_its_metrics(client, bundle, manifest):
    page = client.get("/models")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert bundle.version in html
    rf = manifest["metrics"]["engagement_holdout"]
    assert f"{rf['r2']:.3f}" in html and f"{rf['spearman']:.3f}" in html
    assert 'src="/models/report"' in html and "sandbox" in html
    assert 'href="/models" aria-current="page"' in html
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    # The nav link is on every page.
    assert 'href="/models"' in client.get("/analyze").get_data(as_text=True)


def test_report_is_served_with_its_own_policy_and_others_keep_theirs(client, bundle, app):
    response = client.get("/models/report")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == REPORT_CSP
    assert "script-src" not in REPORT_CSP and "'unsafe-inline'" in REPORT_CSP
    assert "sandbox" in REPORT_CSP and "frame-ancestors 'self'" in REPORT_CSP
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert bundle.version in response.get_data(as_text=True)
    # The default models have no report.html: it was drawn once and kept in instance/.
    cached = Path(app.instance_path) / "reports" / f"{bundle.version}.html"
    assert cached.read_text(encoding="utf-8") == response.get_data(as_text=True)
    for path in ("/", "/analyze", "/models", "/healthz"):
        policy = client.get(path).headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in policy and "frame-ancestors 'none'" in policy, path


def test_a_version_with_a_tampered_report_is_not_shown(bundle, tmp_path):
    from app import create_app

    root = tmp_path / "models"
    folder = save_bundle(
        type(bundle)(bundle.clusterer, bundle.engagement),
        root,
        extra_files={REPORT_FILE: b"<!doctype html><p>the real report</p>"},
        key=run_manifest_key(),
    )
    config = run_config(root, tmp_path / "instance")
    client = create_app(config).test_client()
    assert b"the real report" in client.get("/models/report").data
    (folder / REPORT_FILE).write_bytes(b"<!doctype html><p>swapped in</p>")
    response = client.get("/models/report")
    assert response.status_code == 409
    assert b"swapped in" not in response.data
    manifest = json.loads((folder / MANIFEST).read_text())
    assert set(manifest["files"]) == {"clusterer.joblib", "engagement.joblib", REPORT_FILE}
