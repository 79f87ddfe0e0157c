"""The admin page: users, and the API tokens created and revoked here or with the CLI."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from app.accounts import MAX_TOKEN_NAME, ROLES, SCOPES, TOKEN_ID, AccountError
from app.auth import access, require_role

bp = Blueprint("admin", __name__)


class TokenForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired("Name the token."), Length(max=MAX_TOKEN_NAME)],
        description="who or what uses it, e.g. reporting-job",
    )
    scopes = SelectMultipleField(
        "Scopes",
        choices=list(SCOPES),
        default=["analyze"],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )
    role = SelectField("Acts as", choices=list(ROLES), default="viewer")


def _page(form: TokenForm, new_token: str | None = None, status: int = 200):
    store = access().store
    response = render_template(
        "admin.html",
        users=store.users(),
        tokens=list(reversed(store.tokens())),
        form=form,
        new_token=new_token,
    )
    return response, status, {"Cache-Control": "no-store"}


@bp.get("/admin")
@require_role("admin")
def admin_page():
    return _page(TokenForm(formdata=None))


@bp.post("/admin/tokens")
@require_role("admin")
def create_token():
    """Shows the new token once, in this answer only: it is not kept anywhere to show again."""
    form = TokenForm()
    if not form.validate_on_submit():
        return _page(form, status=400)
    try:
        _, value = access().store.create_token(form.name.data, form.scopes.data, form.role.data)
    except AccountError as exc:
        form.name.errors = [str(exc)]
        return _page(form, status=400)
    return _page(TokenForm(formdata=None), new_token=value)


@bp.post("/admin/tokens/<token_id>/revoke")
@require_role("admin")
def revoke_token(token_id: str):
    if not TOKEN_ID.fullmatch(token_id):
        abort(404)
    try:
        access().store.revoke_token(token_id)
    except AccountError:
        abort(404)
    return redirect(url_for("admin.admin_page"), 303)
