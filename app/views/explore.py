"""The Explore page: archived posts filtered, a page at a time, with the charts of the
filtered set, and the same set exported as CSV, JSON Lines or Parquet (streamed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    stream_with_context,
)
from flask_login import current_user

from app import corrections, explore
from app.auth import may, require_role, safe_next
from archive import queries
from archive.correction_store import UnknownPost
from archive.export import FORMATS, export_format
from archive.queries import ENGAGEMENT_BANDS, SENTIMENT_LABELS, PostFilter
from models.corrections import MAX_TOPIC_CHARS, CorrectionError

bp = Blueprint("explore", __name__)
MAX_EXPORTS = 2
EXPORT_SLOTS = "socialpulse.export_slots"


def _href(args: dict[str, str], **extra: str) -> str:
    return "?" + urlencode({**args, **extra})


@bp.app_template_filter("explore_with")
def explore_with(args: dict[str, str], **extra: object) -> str:
    """The query string of these filters with some set (a click narrows the set)."""
    return urlencode({**args, **{k: str(v) for k, v in extra.items()}})


@bp.get("/explore")
def explore_page():
    error = summary_error = None
    status = 200
    wanted, limit, cursor = PostFilter(), queries.DEFAULT_PAGE_SIZE, None
    found = summary = None
    try:
        wanted = explore.parse_filter(request.args, explore.PAGE_NAMES)
        limit = queries.parse_limit(request.args.get("limit"))
        cursor = request.args.get("cursor") or None
        found = explore.read_page(wanted, cursor, limit)
    except queries.FilterError as exc:
        error, status = str(exc), 400
    except queries.ArchiveUnavailable as exc:
        error, status = str(exc), 503
    if found is not None:
        try:
            summary = explore.read_summary(wanted)
        except queries.FilterError as exc:  # too many posts or too slow: the table stays
            summary_error = str(exc)
        except queries.ArchiveUnavailable as exc:
            error, status = str(exc), 503
    corrected, topic_choices = {}, []
    if found is not None and found.rows:
        try:
            corrected = corrections.of_posts([row.id for row in found.rows])
            if may("analyst"):  # only the correction forms offer them
                topic_choices = corrections.topic_choices()
        except queries.ArchiveUnavailable as exc:
            error, status = str(exc), 503
    args = wanted.to_args()
    sized = {"limit": str(limit)} if limit != queries.DEFAULT_PAGE_SIZE else {}
    page = render_template(
        "explore.html",
        wanted=wanted,
        args=args,
        error=error,
        summary=summary.to_dict() if summary is not None else None,
        summary_error=summary_error,
        posts=explore.explain(found.rows) if found is not None else [],
        next_href=_href(args, cursor=found.next_cursor, **sized)
        if found is not None and found.next_cursor
        else None,
        first_href=_href(args, **sized) if cursor else None,
        export_hrefs={name: "/explore/export" + _href(args, format=name) for name in FORMATS},
        sentiments=SENTIMENT_LABELS,
        bands=ENGAGEMENT_BANDS,
        limit=limit,
        corrected=corrected,
        topic_choices=topic_choices,
        may_correct=may("analyst"),
        topic_chars=MAX_TOPIC_CHARS,
    )
    return page, status


@bp.post("/explore/corrections")
@require_role("analyst")
def correct():
    """Correct a post's sentiment label or topic (an empty value takes the correction
    back), then go back to the Explore page the form was on."""
    form = {k: request.form.get(k, "") for k in ("post_id", "field", "value", "next")}
    back = safe_next(form["next"])
    if not back.startswith("/explore"):
        back = "/explore"
    if not form["post_id"] or len(form["post_id"]) > corrections.MAX_POST_ID_CHARS:
        return _refused("no archived post has this id", 404, back)
    if len(form["value"]) > corrections.MAX_VALUE_CHARS:
        return _refused(f"a topic name has at most {MAX_TOPIC_CHARS} characters", 400, back)
    by = current_user.name if current_user.is_authenticated else "anonymous"
    try:
        corrections.save(form["post_id"], form["field"], form["value"], by)
    except CorrectionError as exc:
        return _refused(str(exc), 400, back)
    except UnknownPost as exc:
        return _refused(str(exc), 404, back)
    except queries.ArchiveUnavailable as exc:
        return _refused(str(exc), 503, back)
    return redirect(back, 303)


def _refused(message: str, status: int, back: str):
    page = render_template("correction_refused.html", message=message, back=back)
    return page, status


def export_slots() -> threading.BoundedSemaphore:
    """At most `MAX_EXPORTS` exports stream at once on a node: each may read the whole
    archive, so more wait their turn (429) rather than share the database and the CPU."""
    return current_app.extensions.setdefault(EXPORT_SLOTS, threading.BoundedSemaphore(MAX_EXPORTS))


@bp.get("/explore/export")
@require_role("analyst")
def export():
    """The filtered set as a file, streamed a chunk of rows at a time."""
    slots = export_slots()
    if not slots.acquire(blocking=False):
        response = Response(
            f"{MAX_EXPORTS} exports are running on this server: try again when one ends\n",
            429,
            mimetype="text/plain",
        )
        response.headers["Retry-After"] = "10"
        return response
    try:
        fmt = export_format(request.args.get("format", "csv"))
        wanted = explore.parse_filter(request.args, ("format",))
        body = explore.export_stream(wanted, fmt)
    except (queries.FilterError, ValueError) as exc:
        slots.release()
        return Response(f"{exc}\n", 400, mimetype="text/plain")
    except queries.ArchiveUnavailable as exc:
        slots.release()
        return Response(f"{exc}\n", 503, mimetype="text/plain")

    def released() -> Iterator[bytes]:
        try:
            yield from body
        finally:  # finished, failed, or the client went away
            slots.release()

    name = time.strftime("socialpulse-posts-%Y%m%dT%H%M%SZ", time.gmtime())
    response = Response(stream_with_context(released()), content_type=fmt.media_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt.extension}"'
    response.headers["Cache-Control"] = "no-store"
    return response
