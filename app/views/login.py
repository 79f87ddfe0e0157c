"""Logging in and out of the pages."""

from __future__ import annotations

import math
import secrets

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired

from app.auth import LoginUser, access, safe_next
from app.server import off_loop
from app.services import services

bp = Blueprint("login", __name__)
FAILED = "Wrong user name or password."


class LoginForm(FlaskForm):
    name = StringField("User name", validators=[DataRequired("Enter your user name.")])
    password = PasswordField("Password", validators=[DataRequired("Enter your password.")])
    next = HiddenField()


@bp.route("/login", methods=["GET", "POST"])
def login_page():
    policy = access()
    form = LoginForm()
    target = safe_next(form.next.data if form.is_submitted() else request.args.get("next"))
    if not policy.required() or (request.method == "GET" and current_user.is_authenticated):
        return redirect(target, 303)
    form.next.data = target
    error, status, headers = None, 200, {}
    if form.validate_on_submit():
        key = policy.throttle.key(form.name.data, request.remote_addr)
        wait = policy.throttle.retry_after(key)
        if wait:  # refused before hashing anything: a throttled attempt costs nothing
            retry = math.ceil(wait)
            error, status = f"Too many failed logins: try again in {retry} s.", 429
            headers["Retry-After"] = str(retry)
        else:
            # The password hash takes ~80 ms of CPU: on a native thread, the server serves on.
            user = off_loop(policy.store.authenticate, form.name.data, form.password.data)
            if user is None:
                policy.throttle.failed(key)
                error, status = FAILED, 400
            else:
                policy.throttle.succeeded(key)
                session.clear()  # nothing from before the login survives it (fixation)
                login_user(LoginUser(user))
                session["login_id"] = secrets.token_hex(8)  # names this login's live tabs
                return redirect(target, 303)
    elif form.is_submitted():
        status = 400
    form.password.data = ""
    return render_template("login.html", form=form, error=error), status, headers


@bp.post("/logout")
def logout():
    """POST only, with the CSRF token (CSRFProtect checks it): no page can log you out."""
    if "login_id" in session:  # its open dashboards, on whichever node, go too
        services().hub.sign_out(session["login_id"])
    logout_user()
    session.clear()
    return redirect(url_for("login.login_page") if access().required() else "/", 303)
