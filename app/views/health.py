"""Health for load balancers and people: liveness, readiness (with the reasons), metrics."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app.services import services

bp = Blueprint("health", __name__)


@bp.get("/livez")
def livez():
    """The process answers: restart it only when this fails."""
    return jsonify(status="alive")


@bp.get("/readyz")
@bp.get("/healthz")
def readyz():
    """Ready to serve what it promises: 503, with each failing part and why, when the
    broker, the scored feed or scoring fails, or the stream stalls."""
    status = services().status()
    return jsonify(status), 503 if status["problems"] else 200


@bp.get("/metrics")
def metrics():
    """Prometheus text format: consumed, scored, dead-lettered, lag, batch latency."""
    from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

    return Response(services().metrics.render(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
