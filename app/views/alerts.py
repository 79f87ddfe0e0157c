"""The alerts page: history with filters, acknowledging an alert, and the rules."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user

from app.alerting import STATUSES, AlertFilter, AlertFilterError, AlertPage
from app.auth import may, require_role
from app.services import services
from insights.alert_rules import MAX_RULES_BYTES, AlertRulesError
from insights.alerts import ALERT_KINDS, SEVERITIES

bp = Blueprint("alerts", __name__)


def explore_available() -> bool:
    """Whether links to Explore can be followed on this server."""
    return any(rule.rule == "/explore" for rule in current_app.url_map.iter_rules())


@bp.get("/alerts")
def alerts_page():
    error = None
    try:
        wanted = AlertFilter.parse(request.args)
    except AlertFilterError as exc:
        error, wanted = str(exc), AlertFilter()
    return _page(wanted, filter_error=error, status=400 if error else 200)


@bp.post("/alerts/rules")
@require_role("admin")
def save_rules():
    """Replace the alert rules; bad rules are refused with the reason, the old ones stay."""
    alerts = services().hub.alerts
    text = request.form.get("rules", "")
    if alerts is None:
        abort(404)
    if len(text.encode()) > MAX_RULES_BYTES:
        return _page(
            AlertFilter(),
            rules_text=text[:MAX_RULES_BYTES],
            rules_error=f"the rules are larger than {MAX_RULES_BYTES:,} bytes",
            status=400,
        )
    try:
        alerts.save_rules(text)
    except AlertRulesError as exc:
        return _page(AlertFilter(), rules_text=text, rules_error=str(exc), status=400)
    return redirect(url_for("alerts.alerts_page") + "#rules", 303)


def _page(
    wanted: AlertFilter,
    filter_error: str | None = None,
    rules_text: str | None = None,
    rules_error: str | None = None,
    status: int = 200,
):
    alerts = services().hub.alerts
    listed = alerts.page(wanted) if alerts is not None else AlertPage()
    older = None
    if listed.next is not None:
        kept = {k: v for k, v in request.args.items() if k in ("kind", "severity", "status")}
        kept.update(subject=wanted.subject or "", limit=wanted.limit, before=listed.next)
        older = url_for("alerts.alerts_page", **{k: v for k, v in kept.items() if v})
    page = render_template(
        "alerts.html",
        alerts=listed.alerts,
        older=older,
        from_memory=alerts is not None and alerts.archive is not None and not listed.stored,
        wanted=wanted,
        error=filter_error,
        kinds=ALERT_KINDS,
        severities=SEVERITIES,
        statuses=STATUSES,
        window_seconds=services().config.alert_window,
        explore=explore_available(),
        rules_text=rules_text
        if rules_text is not None
        else (alerts.rule_set.to_json() if alerts is not None else ""),
        rules_error=rules_error,
        file_error=alerts.rules_error if alerts is not None else None,
        may_edit_rules=may("admin"),
    )
    return page, status


@bp.post("/alerts/<alert_id>/acknowledge")
@require_role("analyst")
def acknowledge(alert_id: str):
    alerts = services().hub.alerts
    if alerts is None or len(alert_id) > 64:
        abort(404)
    by = current_user.name if current_user.is_authenticated else None
    if alerts.acknowledge(alert_id, by) is None:
        abort(404)
    return redirect(url_for("alerts.alerts_page"), 303)
