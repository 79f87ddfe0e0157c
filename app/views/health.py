"""Health check for load balancers and people."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app.services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok", **services().status())


@bp.get("/metrics")
def metrics():
    """Prometheus text format: consumed, scored, dead-lettered, lag, batch latency."""
    from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

    return Response(services().metrics.render(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
