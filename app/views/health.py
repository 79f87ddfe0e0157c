"""Health check for load balancers and people."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify

from app.services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    svc = services()
    runner = svc.runner
    return jsonify(
        status="ok",
        model_version=svc.pipeline.model_version,
        source=svc.hub.source_name or None,
        streaming=svc.streaming,
        scored=runner.stats.scored if runner else 0,
        dead_lettered=runner.stats.dead_lettered if runner else 0,
        uptime_s=round(time.time() - svc.started_at, 1),
    )


@bp.get("/metrics")
def metrics():
    """Prometheus text format: consumed, scored, dead-lettered, lag, batch latency."""
    from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

    return Response(services().metrics.render(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
