"""The analysis form: text and hashtags in, sentiment, cluster and engagement out."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, Optional, ValidationError

from app.analysis import AnalysisError, analyze
from app.services import services
from streaming.records import MAX_COUNT

bp = Blueprint("analyze", __name__)


def follower_count(form: FlaskForm, field: IntegerField) -> None:
    """0 to MAX_COUNT (NumberRange fails on integers too large for a float)."""
    if field.data is not None and not 0 <= field.data <= MAX_COUNT:
        raise ValidationError(f"Author followers must be between 0 and {MAX_COUNT:,}.")


class AnalyzeForm(FlaskForm):
    text = TextAreaField("Post text", validators=[DataRequired("Enter the text of a post.")])
    hashtags = StringField("Hashtags", description="space or comma separated, e.g. #nba #playoffs")
    author_followers = IntegerField("Author followers", validators=[Optional(), follower_count])


@bp.route("/analyze", methods=["GET", "POST"])
def analyze_page():
    form = AnalyzeForm()
    result = error = None
    if form.validate_on_submit():
        raw = {"text": form.text.data}
        tags = (form.hashtags.data or "").replace(",", " ").split()
        if tags:
            raw["hashtags"] = tags
        if form.author_followers.data is not None:
            raw["author_followers"] = form.author_followers.data
        config = services().config
        try:
            result = analyze([raw], services().request_scorer, config.max_text_length)[0]
        except AnalysisError as exc:
            error = exc.message
    status = 400 if form.errors or error else 200
    return render_template("analyze.html", form=form, result=result, error=error), status
