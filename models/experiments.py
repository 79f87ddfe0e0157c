"""The experiment log: one JSON line per training run, next to the versions it produced.

`<model dir>/experiments.jsonl` gets the run's version, data fingerprint, parameters and
held-out metrics appended after each save. Runs are compared with `socialpulse train
--history`, on the dashboard's Models page, or with `pandas.read_json(path, lines=True)`.
Also here: the forest size/speed trade-off measurement (README, "Forest size").
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.metrics import METRIC_KEYS

log = logging.getLogger(__name__)

LOG_NAME = "experiments.jsonl"


class ExperimentLog:
    """Append-only JSONL store of training runs under a model folder."""

    def __init__(self, root: str | Path) -> None:
        self.path = Path(root) / LOG_NAME

    def append(self, record: Mapping[str, Any]) -> None:
        """Add one run; a single write of one line, so concurrent runs never interleave."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def runs(self) -> list[dict[str, Any]]:
        """Every readable run, oldest first (a damaged line is skipped with a warning)."""
        if not self.path.is_file():
            return []
        runs = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                log.warning("%s line %d is not JSON; skipped", self.path, number)
                continue
            if isinstance(record, dict):
                runs.append(record)
        return runs


def run_record(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment-log entry of a saved version, from its manifest."""
    data = manifest.get("data", {})
    params = manifest.get("params", {})
    metrics = manifest.get("metrics", {})
    compared = {}
    for name, key in (("rf", "engagement_holdout"), ("nn", "neural_holdout")):
        if key in metrics:
            compared[name] = {k: metrics[key][k] for k in METRIC_KEYS if k in metrics[key]}
    return {
        "run": manifest.get("version"),
        "created_at": manifest.get("created_at"),
        "data": {
            "source": data.get("source"),
            "fingerprint": data.get("fingerprint"),
            "rows": data.get("rows"),
            "files": [Path(f["path"]).name for f in data.get("files", [])],
            "target": data.get("target"),
        },
        "params": {
            "model": params.get("model"),
            "n_clusters": params.get("n_clusters"),
            "engagement": params.get("engagement"),
            "author_prior": params.get("author_prior"),
            "neural": params.get("neural"),
            "search": bool(params.get("search")),
        },
        "metrics": compared,
        "sentiment": _sentiment_record(params.get("sentiment"), metrics.get("sentiment_holdout")),
        "corrections": _corrections_record(data.get("corrections"), metrics.get("corrections")),
        "split": metrics.get("split"),
        "seconds": manifest.get("training_seconds"),
    }


def _sentiment_record(
    params: Mapping[str, Any] | None, holdout: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The sentiment model's kind and, per labelled file, held-out macro-F1 of VADER and it."""
    if not params:
        return None
    return {
        "kind": params.get("kind"),
        "holdout": {
            name: {
                "rows": scores.get("test_rows"),
                "vader_macro_f1": scores["vader"]["macro_f1"],
                "model_macro_f1": scores["model"]["macro_f1"],
                "model_ece": scores["model"].get("ece"),
            }
            for name, scores in (holdout or {}).items()
        },
    }


def _corrections_record(
    used: Mapping[str, Any] | None, measured: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """How many corrections the run learned from and kept aside, and its scores on those."""
    if not used:
        return None
    record: dict[str, Any] = {
        "sentiment": {**used["sentiment"], "learned": used.get("sentiment_learned", 0)},
        "topic": {**used["topic"], "seeded": len(used.get("topics_seeded", []))},
    }
    measured = measured or {}
    if "sentiment" in measured:
        record["test_macro_f1"] = {
            "vader": measured["sentiment"]["vader"]["macro_f1"],
            "model": measured["sentiment"]["model"]["macro_f1"],
        }
    if "topic" in measured:
        record["test_topic_nmi"] = measured["topic"]["nmi"]
    return record


HISTORY_COLUMNS = (
    "run",
    "data",
    "rows",
    "model",
    "forest",
    "rf R²",
    "rf ρ",
    "rf band F1",
    "nn R²",
    "nn ρ",
    "corrections",
)


def history_rows(runs: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """One row of display strings per run, keyed by `HISTORY_COLUMNS`."""
    rows = []
    for run in runs:
        data, params, metrics = run.get("data", {}), run.get("params", {}), run.get("metrics", {})
        forest = params.get("engagement") or {}
        source = data.get("source") or "?"
        if source == "file":
            source = ",".join(data.get("files") or []) or "file"
        fingerprint = str(data.get("fingerprint") or "")
        if not fingerprint.startswith("synthetic"):
            source += f" ({fingerprint[:8]})"
        rf, nn = metrics.get("rf", {}), metrics.get("nn", {})
        rows.append(
            {
                "run": str(run.get("run", "")),
                "data": source,
                "rows": str(data.get("rows", "")),
                "model": str(params.get("model", "")),
                "forest": "{}×d{} leaf{} {}".format(
                    forest.get("n_estimators", "?"),
                    forest.get("max_depth", "∞") or "∞",
                    forest.get("min_samples_leaf", "?"),
                    forest.get("baseline", "none"),
                ),
                "rf R²": _num(rf.get("r2")),
                "rf ρ": _num(rf.get("spearman")),
                "rf band F1": _num(rf.get("band_macro_f1")),
                "nn R²": _num(nn.get("r2")),
                "nn ρ": _num(nn.get("spearman")),
                "corrections": _corrections_cell(run.get("corrections")),
            }
        )
    return rows


def format_history(runs: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table of runs for the terminal."""
    rows = history_rows(runs)
    if not rows:
        return "no training runs logged yet"
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in HISTORY_COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in HISTORY_COLUMNS)]
    lines.append("  ".join("-" * widths[c] for c in HISTORY_COLUMNS))
    lines += ["  ".join(r[c].ljust(widths[c]) for c in HISTORY_COLUMNS) for r in rows]
    return "\n".join(lines)


def _corrections_cell(record: Mapping[str, Any] | None) -> str:
    """The corrections a run learned from and those it kept aside, as "41 / 9"."""
    if not record:
        return ""
    learned = record["sentiment"]["learned"] + record["topic"]["train"]
    kept = record["sentiment"]["test"] + record["topic"]["test"]
    return f"{learned} / {kept}"


def _num(value: Any) -> str:
    return "" if value is None else f"{value:.3f}"


def forest_size_tradeoff(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    settings: Sequence[tuple[int, int | None]],
    params: Mapping[str, Any] | None = None,
    batch: int = 500,
    repeats: int = 5,
) -> list[dict[str, Any]]:
    """Held-out quality against live cost for forests of several (n_estimators, max_depth).

    Cost is the fast path's time per post in micro-batches of `batch` (best of `repeats`)
    and the size of the compressed pickle a version stores.
    """
    import joblib
    from scipy.stats import spearmanr
    from sklearn.metrics import r2_score

    from models.engagement import EngagementModel

    rows = []
    reps = max(1, -(-batch // len(x_test)))  # enough rows for one full micro-batch
    batch_rows = np.ascontiguousarray(np.tile(x_test, (reps, 1))[:batch])
    for n_estimators, max_depth in settings:
        chosen = {**(params or {}), "n_estimators": n_estimators, "max_depth": max_depth}
        model = EngagementModel(**chosen).fit(x_train, y_train)
        predicted = model.predict_log(x_test)
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            model.predict_log(batch_rows)
            best = min(best, time.perf_counter() - started)
        buffer = io.BytesIO()
        joblib.dump(model, buffer, compress=3)
        rows.append(
            {
                "n_estimators": n_estimators,
                "max_depth": max_depth,
                "r2": round(float(r2_score(y_test, predicted)), 4),
                "spearman": round(float(spearmanr(y_test, predicted).statistic), 4),
                "us_per_post": round(best / len(batch_rows) * 1e6, 2),
                "size_kb": round(len(buffer.getvalue()) / 1024, 1),
            }
        )
    return rows
