"""Health for load balancers and people: liveness, readiness (with the reasons), metrics."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app.auth import metrics_refusal, sees_details
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
    code = 503 if status["problems"] else 200
    if not sees_details():
        # Strangers (load balancers) get the verdict and which parts fail, not the reasons,
        # versions or counts: reasons may name internal hosts.
        problems = [{"component": p["component"]} for p in status["problems"]]
        return jsonify(status=status["status"], problems=problems), code
    return jsonify(status), code


@bp.get("/metrics")
def metrics():
    """Prometheus text format: consumed, scored, dead-lettered, lag, batch latency. With
    access control on, only for SOCIALPULSE_METRICS_TOKEN."""
    from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

    refusal = metrics_refusal()
    if refusal:
        message, status = refusal
        headers = {"WWW-Authenticate": 'Bearer realm="metrics"'} if status == 401 else {}
        return Response(message + "\n", status, headers, content_type="text/plain")

    return Response(services().metrics.render(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
