"""The alerts page: history with filters, and acknowledging an alert."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from app.alerting import STATUSES, AlertFilter, AlertFilterError
from app.auth import require_role
from app.services import services
from insights.alerts import ALERT_KINDS, SEVERITIES

bp = Blueprint("alerts", __name__)


def explore_available() -> bool:
    """Whether links to Explore can be followed on this server."""
    return any(rule.rule == "/explore" for rule in current_app.url_map.iter_rules())


@bp.get("/alerts")
def alerts_page():
    alerts = services().hub.alerts
    error = None
    try:
        wanted = AlertFilter.parse(request.args)
    except AlertFilterError as exc:
        error, wanted = str(exc), AlertFilter()
    rows = alerts.recent(wanted) if alerts is not None else []
    page = render_template(
        "alerts.html",
        alerts=rows,
        wanted=wanted,
        error=error,
        kinds=ALERT_KINDS,
        severities=SEVERITIES,
        statuses=STATUSES,
        window_seconds=services().config.alert_window,
        explore=explore_available(),
    )
    return page, 400 if error else 200


@bp.post("/alerts/<alert_id>/acknowledge")
@require_role("analyst")
def acknowledge(alert_id: str):
    alerts = services().hub.alerts
    if alerts is None or len(alert_id) > 64 or alerts.acknowledge(alert_id) is None:
        abort(404)
    return redirect(url_for("alerts.alerts_page"), 303)
