"""The live dashboard page and its word-cloud image."""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template

from app.services import services
from app.views.alerts import explore_available

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def index():
    return render_template("dashboard.html", explore=explore_available())


@bp.get("/wordcloud.png")
def wordcloud():
    png = services().hub.wordcloud_png
    if png is None:
        abort(404, "no word cloud yet: it appears once posts arrive")
    response = Response(png, mimetype="image/png")
    response.cache_control.max_age = 3600  # the URL carries the version
    return response
