"""Tracked topics: the page that lists, adds, edits and removes them."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_login import current_user

from app.auth import may, require_role
from app.services import services
from archive.tracked_store import TrackedTopicConflict
from insights.tracked import (
    MAX_NAME_CHARS,
    MAX_TERM_CHARS,
    MAX_TERMS,
    TrackedTopic,
    TrackedTopicError,
)

bp = Blueprint("tracked", __name__)
log = logging.getLogger(__name__)
# Generous for MAX_TERMS terms of MAX_TERM_CHARS each, with separators.
MAX_FIELD_CHARS = MAX_TERMS * (MAX_TERM_CHARS + 2)


@bp.get("/tracked")
def tracked_page():
    tracked = services().tracked
    editing = None
    name = request.args.get("edit", "")[: MAX_NAME_CHARS + 1]
    if tracked is not None and name:
        editing = tracked.get(name)
    return _page(editing=editing)


@bp.post("/tracked")
@require_role("analyst")
def save_topic():
    """Add a topic or replace one (`replaces`): a bad one is refused with the reason."""
    tracked = services().tracked
    if tracked is None:
        abort(404)
    form = {k: request.form.get(k, "") for k in ("name", "keywords", "hashtags", "replaces")}
    if any(len(v) > MAX_FIELD_CHARS for v in form.values()):
        return _page(
            form=form, error=f"a field is longer than {MAX_FIELD_CHARS} characters", status=400
        )
    try:
        topic = TrackedTopic.from_text(form["name"], form["keywords"], form["hashtags"])
        by = current_user.name if current_user.is_authenticated else "anonymous"
        tracked.save(topic, by, replaces=form["replaces"] or None)
    except (TrackedTopicError, TrackedTopicConflict) as exc:
        return _page(form=form, error=str(exc), status=400)
    except Exception as exc:  # the database: nothing saved, say so, keep serving
        log.warning("saving a tracked topic failed: %s", exc)
        return _page(form=form, error="the archive is unavailable; nothing was saved", status=503)
    return redirect(url_for("tracked.tracked_page"), 303)


@bp.post("/tracked/remove")
@require_role("analyst")
def remove_topic():
    tracked = services().tracked
    name = request.form.get("name", "")
    if tracked is None or not name or len(name) > MAX_NAME_CHARS:
        abort(404)
    try:
        removed = tracked.remove(name)
    except Exception as exc:
        log.warning("removing a tracked topic failed: %s", exc)
        return _page(error="the archive is unavailable; nothing was removed", status=503)
    if not removed:
        abort(404)
    return redirect(url_for("tracked.tracked_page"), 303)


def _page(editing=None, form: dict | None = None, error: str | None = None, status: int = 200):
    tracked = services().tracked
    if form is None and editing is not None:
        form = {
            "name": editing.name,
            "keywords": ", ".join(editing.keywords),
            "hashtags": " ".join("#" + t for t in editing.hashtags),
            "replaces": editing.name,
        }
    page = render_template(
        "tracked.html",
        available=tracked is not None,
        topics=tracked.summaries() if tracked is not None else [],
        form=form or {},
        error=error,
        limits={"name": MAX_NAME_CHARS, "field": MAX_FIELD_CHARS, "terms": MAX_TERMS},
        may_edit=may("analyst"),
    )
    return page, status
