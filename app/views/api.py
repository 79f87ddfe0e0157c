"""JSON API: POST /api/v1/analyze scores one post or a batch; its OpenAPI description and a
page that shows it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from app import corrections, explore
from app.alerting import AlertFilter, AlertFilterError, AlertPage
from app.analysis import AnalysisError, analyze
from app.audiences import AudienceInputError
from app.auth import api_access, current_token, page
from app.openapi import openapi_spec
from app.services import services
from archive.correction_store import UnknownPost
from archive.queries import ArchiveUnavailable
from models.corrections import FIELDS, CorrectionError, clean_value
from streaming.records import InvalidPost, decode_json_object

bp = Blueprint("api", __name__, url_prefix="/api/v1")
PREFIX = "/api/"


def _error(message: str, status: int, **extra):
    return jsonify(error=message, **extra), status


def http_error(exc: HTTPException):
    """JSON errors for every API path, including unknown routes and methods."""
    if exc.code == 413:
        return _error(
            f"request body is larger than the limit of {services().config.max_body_bytes} bytes",
            413,
        )
    response, status = _error(exc.description or exc.name, exc.code or 500)
    if getattr(exc, "valid_methods", None):  # 405 must say which methods are allowed
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response, status


class _BadBody(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def _json_body() -> dict[str, Any]:
    """The request's JSON object; raises `_BadBody` (415 or 400) with the reason."""
    if not request.is_json:
        # A page on any site can make a browser POST text/plain here; JSON needs CORS.
        raise _BadBody("send the body as JSON, with Content-Type: application/json", 415)
    try:
        return decode_json_object(request.get_data(cache=False), what="request body")
    except InvalidPost as exc:
        raise _BadBody(exc.message, 400) from None


@bp.post("/analyze")
@api_access("analyze")
def analyze_endpoint():
    """Body: a post object, or {"posts": [post, ...]} for a batch."""
    config = services().config
    try:
        body = _json_body()
    except _BadBody as exc:
        return _error(exc.message, exc.status)
    batch = "posts" in body
    raw_posts = body["posts"] if batch else [body]
    if batch:
        if len(body) > 1:
            return _error("a batch body has only the key 'posts'", 400)
        if not isinstance(raw_posts, list) or not raw_posts:
            return _error("'posts' must be a non-empty list of post objects", 400)
        if len(raw_posts) > config.api_max_batch:
            return _error(f"at most {config.api_max_batch} posts per request", 400)
    try:
        results = analyze(
            raw_posts, services().request_scorer, config.max_text_length, config.api_max_chars
        )
    except AnalysisError as exc:
        extra = {"index": exc.index} if batch and exc.index is not None else {}
        return _error(exc.message, exc.status, **extra)
    return jsonify(results=results) if batch else jsonify(results[0])


@bp.get("/alerts")
@api_access("read")
def alerts_endpoint():
    """The newest alerts first; filters: kind, severity, status, subject, limit; `before`
    (the previous page's `next`) pages back through the archive's history."""
    try:
        wanted = AlertFilter.parse(request.args)
    except AlertFilterError as exc:
        return _error(str(exc), 400)
    alerts = services().hub.alerts
    page = alerts.page(wanted) if alerts is not None else AlertPage()
    return jsonify(alerts=page.alerts, next=page.next)


@bp.get("/tracked-topics")
@api_access("read")
def tracked_topics_endpoint():
    """The tracked topics, each with its posts, mean sentiment and share of voice over the
    dashboard's kept windows."""
    tracked = services().tracked
    if tracked is None:
        return _error("tracked topics need the archive, which is off on this server", 404)
    return jsonify(topics=tracked.summaries())


@bp.post("/audience")
@api_access("analyze")
def audience_endpoint():
    """Body: {"handle": "<author seen>"} or {"texts": ["post", ...]}."""
    try:
        body = _json_body()
    except _BadBody as exc:
        return _error(exc.message, exc.status)
    unknown = sorted(str(k)[:40] for k in body if k not in ("handle", "texts"))
    if unknown or len(body) != 1:
        return _error("send exactly one of 'handle' (an author seen) or 'texts' (a list)", 400)
    audiences = services().audiences
    try:
        if "handle" in body:
            if not isinstance(body["handle"], str):
                return _error("'handle' must be a string", 400)
            answer = audiences.assign_handle(body["handle"])
        else:
            answer = audiences.assign_texts(body["texts"])
    except AudienceInputError as exc:
        return _error(exc.message, exc.status)
    segmentation = audiences.segmentation
    answer["version"] = segmentation.version if segmentation is not None else ""
    return jsonify(answer)


@bp.get("/posts")
@api_access("read")
def posts_endpoint():
    """Archived posts, newest first, filtered as on Explore, a page (cursor) at a time."""
    body, status = explore.api_posts(request.args)
    return jsonify(body), status


@bp.get("/posts/summary")
@api_access("read")
def posts_summary_endpoint():
    """Explore's charts of the filtered archived posts."""
    body, status = explore.api_summary(request.args)
    return jsonify(body), status


@bp.post("/posts/<path:post_id>/corrections")
@api_access("correct", role="analyst")
def corrections_endpoint(post_id: str):
    """Body: {"sentiment": "negative"} and/or {"topic": "a name"}; "" or null takes that
    correction back. The corrections are stored with the token's name as who made them."""
    try:
        body = _json_body()
    except _BadBody as exc:
        return _error(exc.message, exc.status)
    unknown = sorted(str(k)[:40] for k in body if k not in FIELDS)
    if unknown or not body:
        return _error(f"send one or both of {' and '.join(FIELDS)}", 400)
    if any(v is not None and not isinstance(v, str) for v in body.values()):
        return _error("a corrected value is a string (or null to take it back)", 400)
    if len(post_id) > corrections.MAX_POST_ID_CHARS:
        return _error("no archived post has this id", 404)
    token = current_token()
    by = f"token:{token.name}" if token is not None else "anonymous"
    saved = {}
    try:
        # Every value is checked before any is saved: a bad one saves neither.
        wanted = {}
        for field in FIELDS:
            if field in body:
                value = body[field] or ""
                if len(value) > corrections.MAX_VALUE_CHARS:
                    raise CorrectionError(f"a {field} value is far too long")
                wanted[field] = clean_value(field, value, allow_empty=True)
        for field, value in wanted.items():
            correction = corrections.save(post_id, field, value, by)
            saved[field] = corrections.shown(correction) if correction.value else None
    except CorrectionError as exc:
        return _error(str(exc), 400)
    except UnknownPost as exc:
        return _error(str(exc), 404)
    except ArchiveUnavailable as exc:
        return _error(str(exc), 503)
    return jsonify(post_id=post_id, corrections=saved)


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_spec(services().config))


@bp.get("/docs")
@page
def docs():
    return render_template("api_docs.html", spec=openapi_spec(services().config))
