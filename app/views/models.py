"""The Models page: the running version's metrics, its HTML report, and the training runs."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, render_template

from app.services import services
from models.registry import (
    EVALUATION_FILE,
    REPORT_FILE,
    ArtifactError,
    has_file,
    load_evaluation,
    read_manifest,
    read_verified,
)

log = logging.getLogger(__name__)
bp = Blueprint("models", __name__)

# The report has inline styles and images as data: URLs, and no script at all. Its own policy
# allows exactly that, sandboxes it, and lets only this app's pages frame it. Other pages keep
# the app's strict policy (set by the app for every response without one).
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'; sandbox"
)
_REPORT_LOCK = threading.Lock()  # drawing a report on demand happens once at a time


def _version() -> tuple[Path, str]:
    svc = services()
    return Path(svc.config.model_dir), svc.pipeline.model_version


def _key():
    return services().model_key


@bp.get("/models")
def models_page():
    from models.experiments import ExperimentLog, history_rows

    root, version = _version()
    try:
        manifest = read_manifest(root, version, _key())
        # Versions published online, or saved by hand, carry no training details.
        for section in ("data", "params", "metrics"):
            manifest.setdefault(section, {})
    except ArtifactError as exc:
        log.warning("no manifest for the running version: %s", exc)
        manifest = {}
    metrics = manifest.get("metrics", {})
    runs = ExperimentLog(root).runs()
    return render_template(
        "models.html",
        version=version,
        manifest=manifest,
        rf=metrics.get("engagement_holdout"),
        nn=metrics.get("neural_holdout"),
        has_report=bool({REPORT_FILE, EVALUATION_FILE} & set(manifest.get("files", {}))),
        runs=list(reversed(history_rows(runs[-50:]))),
        pinned=bool(services().config.model_version),
        refused=services().refused_models,
    )


@bp.get("/models/report")
def model_report():
    """The running version's report: its own report.html, else drawn once from its data."""
    root, version = _version()
    try:
        key = _key()
        if has_file(root, version, REPORT_FILE, key):
            html = read_verified(root, version, REPORT_FILE, key)
        elif has_file(root, version, EVALUATION_FILE, key):
            html = _drawn_report(root, version)
        else:
            abort(404, "this model version has no report: train one with `socialpulse train`")
    except ArtifactError as exc:
        log.error("refusing to serve the report of %s: %s", version, exc)
        abort(409, "the report does not match its manifest and is not shown")
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = REPORT_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.cache_control.no_cache = True
    return response


def _drawn_report(root: Path, version: str) -> bytes:
    """Versions trained on first start have no report.html: draw it, keep it in instance/."""
    from app.report import build_report

    cache = Path(current_app.instance_path) / "reports" / f"{version}.html"
    with _REPORT_LOCK:
        if not cache.is_file():
            key = _key()
            html = build_report(
                read_manifest(root, version, key), load_evaluation(root, version, key)
            )
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".partial")
            tmp.write_text(html, encoding="utf-8")
            tmp.replace(cache)
        return cache.read_bytes()
