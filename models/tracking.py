"""Training runs logged to MLflow as well, when it is installed and a tracking URI is set.

The local experiment log (models/experiments.py) stays the record SocialPulse itself reads;
MLflow is for teams that already compare runs there. A run gets the version's parameters
(flattened, `engagement.max_depth`), its numeric metrics (`engagement_holdout.spearman`),
tags (version, data fingerprint and source) and the manifest and report as artifacts.
An MLflow that is missing or failing never fails a training run: it is logged and skipped.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from models.registry import REPORT_FILE

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "socialpulse"
# MLflow refuses longer parameter values; longer ones (grids, feature lists) are cut.
MAX_PARAM_CHARS = 500


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, leaf) of a nested mapping; lists are leaves."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten(value, name + ".")
        else:
            yield name, value


def run_params(manifest: Mapping[str, Any]) -> dict[str, str]:
    params = {}
    for key, value in flatten(manifest.get("params", {})):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        params[key] = text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 1] + "…"
    return params


def run_metrics(manifest: Mapping[str, Any]) -> dict[str, float]:
    """Every finite number among the metrics (booleans and confusion tables are not)."""
    return {
        key: float(value)
        for key, value in flatten(manifest.get("metrics", {}))
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }


def log_to_mlflow(
    manifest: Mapping[str, Any],
    folder: Path,
    tracking_uri: str,
    experiment: str = DEFAULT_EXPERIMENT,
) -> str | None:
    """Log the saved version in `folder` as one MLflow run; its run id, or None when MLflow
    is not installed or the tracking server failed (a warning says why)."""
    try:
        import mlflow
    except ImportError:
        log.warning(
            "an MLflow tracking URI is set but mlflow is not installed "
            "(pip install mlflow-skinny); the run is only in the local experiment log"
        )
        return None
    data = manifest.get("data", {})
    tags = {
        "socialpulse.version": str(manifest.get("version")),
        "socialpulse.data_source": str(data.get("source")),
        "socialpulse.data_fingerprint": str(data.get("fingerprint")),
    }
    try:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        run = client.create_run(experiment_id, run_name=str(manifest.get("version")), tags=tags)
        run_id = run.info.run_id
        params = [mlflow.entities.Param(k, v) for k, v in run_params(manifest).items()]
        now_ms = int(time.time() * 1000)
        metrics = [
            mlflow.entities.Metric(k, v, timestamp=now_ms, step=0)
            for k, v in run_metrics(manifest).items()
        ]
        client.log_batch(run_id, metrics=metrics, params=params)
        with tempfile.TemporaryDirectory() as scratch:
            # The manifest as saved; the report only when it was built.
            shown = Path(scratch) / "manifest.json"
            shown.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
            client.log_artifact(run_id, str(shown))
        if (folder / REPORT_FILE).is_file():
            client.log_artifact(run_id, str(folder / REPORT_FILE))
        client.set_terminated(run_id)
    except Exception as exc:  # any tracking failure leaves the training run alone
        log.warning("could not log the run to MLflow at %s: %s", tracking_uri, exc)
        return None
    return run_id
