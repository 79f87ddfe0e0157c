"""Training runs in MLflow: a real local file store, read back with MLflow's own client."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner

from app.cli import main
from models.registry import list_versions, read_manifest
from models.tracking import MAX_PARAM_CHARS, log_to_mlflow, run_metrics, run_params

mlflow = pytest.importorskip("mlflow")

SMALL = ["--posts", "600", "--k", "4", "--no-search", "--no-progress"]


@pytest.fixture
def tracking(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("SOCIALPULSE_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("SOCIALPULSE_MODEL_VERSION", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3's opt-in for file stores
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("SOCIALPULSE_MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("SOCIALPULSE_MLFLOW_EXPERIMENT", "brand watch")
    return uri


def train() -> dict:
    result = CliRunner().invoke(main, ["train", *SMALL, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_training_run_is_logged_to_mlflow_and_linked_from_the_local_log(tracking, tmp_path):
    summary = train()
    client = mlflow.MlflowClient(tracking_uri=tracking)
    experiment = client.get_experiment_by_name("brand watch")
    (run,) = client.search_runs([experiment.experiment_id])
    manifest = read_manifest(tmp_path / "models", summary["version"])
    assert run.info.run_name == summary["version"]
    assert run.info.status == "FINISHED"
    assert run.data.tags["socialpulse.data_fingerprint"] == manifest["data"]["fingerprint"]
    held_out = manifest["metrics"]["engagement_holdout"]
    assert run.data.metrics["engagement_holdout.spearman"] == pytest.approx(held_out["spearman"])
    assert run.data.params["engagement.max_depth"] == str(
        manifest["params"]["engagement"]["max_depth"]
    )
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"manifest.json", "report.html"}
    runs = json.loads(CliRunner().invoke(main, ["train", "--history", "--json"]).output)
    assert runs[-1]["run"] == summary["version"]
    logged = (tmp_path / "models" / "experiments.jsonl").read_text().splitlines()
    assert json.loads(logged[-1])["mlflow_run_id"] == run.info.run_id

    second = train()  # the experiment exists now: the run joins it
    assert len(client.search_runs([experiment.experiment_id])) == 2
    assert second["version"] != summary["version"]


def test_an_unreachable_tracking_server_only_warns(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SOCIALPULSE_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("SOCIALPULSE_MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with caplog.at_level(logging.WARNING, logger="models.tracking"):
        summary = train()
    assert list_versions(tmp_path / "models") == [summary["version"]]
    assert "could not log the run to MLflow" in caplog.text
    logged = (tmp_path / "models" / "experiments.jsonl").read_text().splitlines()
    assert json.loads(logged[-1])["mlflow_run_id"] is None


def test_without_mlflow_installed_the_run_is_kept_locally(tmp_path, monkeypatch, caplog):
    import builtins

    real_import = builtins.__import__

    def no_mlflow(name, *args, **kwargs):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    with caplog.at_level(logging.WARNING, logger="models.tracking"):
        assert log_to_mlflow({"version": "v"}, tmp_path, "file:///nowhere") is None
    assert "mlflow is not installed" in caplog.text


def test_params_are_flattened_and_cut_and_metrics_keep_finite_numbers_only():
    manifest = {
        "params": {"engagement": {"max_depth": 10}, "features": ["a"] * 400, "model": "rf"},
        "metrics": {
            "engagement_holdout": {"spearman": 0.5, "confusion": [[1, 2]], "nan": float("nan")},
            "split": {"train_rows": 480, "test_from": "2024-01-01", "ok": True},
        },
    }
    params = run_params(manifest)
    assert params["engagement.max_depth"] == "10" and params["model"] == "rf"
    assert len(params["features"]) == MAX_PARAM_CHARS and params["features"].endswith("…")
    assert run_metrics(manifest) == {"engagement_holdout.spearman": 0.5, "split.train_rows": 480}
