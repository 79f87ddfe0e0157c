"""The Audiences page: segment profiles and recommendations, the map of authors, the elbow
chart, and a form that says which segment an author or a few posts belong to."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import Length, Optional

from app.audiences import MAX_HANDLE, AudienceInputError
from app.services import services

bp = Blueprint("audiences", __name__)
MAX_FORM_CHARS = 20_000  # the text box as a whole (the per-post limits apply as well)


class AssignForm(FlaskForm):
    handle = StringField("Author handle", validators=[Optional(), Length(max=MAX_HANDLE)])
    texts = TextAreaField(
        "Or post texts",
        description="one post per line",
        validators=[Optional(), Length(max=MAX_FORM_CHARS)],
    )


@bp.get("/audiences")
def audiences_page():
    return _page(AssignForm())


@bp.post("/audiences")
def assign():
    """The assign form (CSRF-checked like every form)."""
    form = AssignForm()
    if not form.validate_on_submit():
        return _page(form, status=400)
    handle = (form.handle.data or "").strip()
    texts = [line for line in (form.texts.data or "").splitlines() if line.strip()]
    if bool(handle) == bool(texts):
        return _page(form, error="Enter an author handle, or post texts, not both.", status=400)
    audiences = services().audiences
    try:
        answer = audiences.assign_handle(handle) if handle else audiences.assign_texts(texts)
    except AudienceInputError as exc:
        # An unknown handle is bad form input here (the API says 404: no such author).
        return _page(form, error=exc.message, status=400 if exc.status == 404 else exc.status)
    return _page(form, answer=answer)


@bp.get("/audiences/summary.json")
def summary():
    """Segment names and sizes, for the dashboard's live panel."""
    return jsonify(services().audiences.summary())


def _page(form: AssignForm, answer=None, error: str | None = None, status: int = 200):
    audiences = services().audiences
    segmentation = audiences.segmentation
    data = None
    segments = []
    if segmentation is not None:
        segments = [segmentation.segments[i] for i in segmentation.ids]
        data = {
            "segments": [{"id": s["id"], "name": s["name"], "size": s["size"]} for s in segments],
            "map": segmentation.map,
            "k_curve": segmentation.metrics.get("k_curve", []),
            "k": segmentation.metrics.get("k"),
        }
    content = (
        {i: segmentation.content(i, audiences.book, top=3) for i in segmentation.ids}
        if segmentation is not None
        else {}
    )
    page = render_template(
        "audiences.html",
        form=form,
        answer=answer,
        error=error,
        segmentation=segmentation,
        segments=segments,
        content=content,
        status=audiences.status(),
        data=data,
    )
    return page, status
