"""Access control of the web app: logins for the pages (flask-login), roles, bearer tokens for
`/api/v1`, the `/metrics` token, and the rule that only a loopback bind may run open.

Every route needs a logged-in user (pages) or a token (JSON API) unless it is in
`OPEN_ENDPOINTS`: one gate in front of every request, so a new route cannot be forgotten.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app, g, jsonify, redirect, request, url_for
from flask_login import LoginManager, UserMixin, current_user
from werkzeug.exceptions import Forbidden

from app.accounts import AccountStore, ApiToken, User
from app.config import Config

log = logging.getLogger(__name__)
EXTENSION = "socialpulse.access"

# Routes anyone may reach. /metrics checks its own token and /readyz tells strangers less.
OPEN_ENDPOINTS = frozenset(
    {
        "static",
        "health.livez",
        "health.readyz",
        "health.metrics",
        "login.login_page",
        "login.logout",
        "api.openapi",
    }
)
FIX_HINT = "add an account with `socialpulse users add NAME --role admin`"
MAX_NEXT = 2000
MAX_AUTHORIZATION = 200
USERS_CHECK_INTERVAL = 1.0  # seconds an answer of `has_users` is reused


class AccessSetupError(ValueError):
    """The server would start open to the network: what is wrong and how to fix it."""


class LoginUser(UserMixin):
    """The flask-login face of a stored user. Its id carries the user's session key, so a
    removed user, or one whose password changed, is logged out on the next request."""

    def __init__(self, user: User) -> None:
        self.user = user

    def get_id(self) -> str:
        return f"{self.user.name}:{self.user.session_key}"

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def role(self) -> str:
        return self.user.role

    def may(self, role: str) -> bool:
        return self.user.may(role)


class LoginThrottle:
    """Failed logins per (user name, client address): after `free` failures, each further
    attempt waits twice as long as the last (up to `max_delay` s). At most `max_entries` keys
    are kept, the least recently used dropped first, so memory stays bounded under a flood."""

    def __init__(
        self,
        free: int = 5,
        max_delay: float = 900.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = free
        self.max_delay = max_delay
        self.max_entries = max_entries
        self.clock = clock
        self._failures: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(name: str, address: str | None) -> tuple[str, str]:
        return (name[:64].casefold(), address or "")

    def retry_after(self, key: tuple[str, str]) -> float:
        """Seconds before `key` may try again (0: now)."""
        with self._lock:
            entry = self._failures.get(key)
        return max(0.0, entry[1] - self.clock()) if entry else 0.0

    def failed(self, key: tuple[str, str]) -> None:
        with self._lock:
            count = self._failures.pop(key, (0, 0.0))[0] + 1
            delay = 0.0 if count < self.free else min(2.0 ** (count - self.free), self.max_delay)
            self._failures[key] = (count, self.clock() + delay)
            while len(self._failures) > self.max_entries:
                self._failures.popitem(last=False)

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)


class AccessPolicy:
    """Whether logins are required now, and the store and throttle behind them."""

    def __init__(self, store: AccountStore, config: Config) -> None:
        self.store = store
        self.mode = config.auth
        self.loopback = is_loopback(config.host)
        self.metrics_token = config.metrics_token
        self.throttle = LoginThrottle()
        self._users = False
        self._users_checked_at = float("-inf")

    def required(self) -> bool:
        """Logins are required when configured so, once a user exists (`auto`), and always
        off loopback: removing the last user of a public server must not open it."""
        if "auth_required" not in g:
            g.auth_required = (
                self.mode == "required"
                or not self.loopback
                or (self.mode == "auto" and self._users_exist())
            )
        return g.auth_required

    def _users_exist(self) -> bool:
        # Asked on every request: the answer is kept a second rather than queried each time
        # (a first account added by the CLI takes effect within that second).
        now = time.monotonic()
        if now >= self._users_checked_at + USERS_CHECK_INTERVAL:
            self._users = self.store.has_users()
            self._users_checked_at = now
        return self._users

    def session_valid(self, name: str, session_key: str) -> bool:
        """True while the user exists with this session key (not removed, same password)."""
        user = self.store.user(name)
        return user is not None and hmac.compare_digest(user.session_key, session_key)

    def load_user(self, user_id: str) -> LoginUser | None:
        name, _, key = user_id.partition(":")
        user = self.store.user(name)
        if user is None or not hmac.compare_digest(user.session_key.encode(), key.encode()):
            return None
        return LoginUser(user)


def access() -> AccessPolicy:
    return current_app.extensions[EXTENSION]


def init_access(app: Flask, config: Config) -> AccessPolicy:
    """Hang the account store, flask-login and the gate off `app`."""
    policy = AccessPolicy(AccountStore(config.accounts_path), config)
    app.extensions[EXTENSION] = policy
    manager = LoginManager(app)
    manager.user_loader(policy.load_user)
    app.before_request(_gate)
    app.context_processor(lambda: {"access_required": policy.required()})
    app.add_template_filter(_utc_time, "datetime")
    return policy


def _utc_time(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp)) if timestamp else "–"


# -- the gate ---------------------------------------------------------------------------------


def api_access(scope: str, role: str = "viewer") -> Callable:
    """Mark a JSON API view as reached with a bearer token holding `scope`, acting as `role`
    or above. Session cookies are not accepted there: no cookies, no cross-site forgery."""

    def mark(view: Callable) -> Callable:
        view.token_scope = scope  # type: ignore[attr-defined]
        view.token_role = role  # type: ignore[attr-defined]
        return view

    return mark


def page(view: Callable) -> Callable:
    """Mark a view of the API blueprint as a page for logged-in people (e.g. the docs)."""
    view.is_page = True  # type: ignore[attr-defined]
    return view


def require_role(role: str) -> Callable:
    """A page for users of `role` or above (403 for the others). Open while access control
    is off, like every page."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any):
            if access().required():
                if not current_user.is_authenticated:
                    return _to_login()
                if not current_user.may(role):
                    raise Forbidden(f"this page is for the {role} role and above")
            return view(*args, **kwargs)

        guarded.min_role = role  # type: ignore[attr-defined]
        return guarded

    return decorate


def _gate():
    endpoint = request.endpoint
    # Unknown paths and methods go on to their 404/405; open routes need nobody.
    if endpoint is None or endpoint in OPEN_ENDPOINTS or not access().required():
        return None
    view = current_app.view_functions.get(endpoint)
    if request.blueprint == "api" and not getattr(view, "is_page", False):
        return _api_gate(view)
    if not current_user.is_authenticated:
        return _to_login()
    return None


def _api_gate(view: Callable | None):
    scope = getattr(view, "token_scope", None)
    if scope is None:  # an API route nobody said how to reach: closed, never open
        return _api_error("this endpoint is not available while access control is on", 403)
    value = bearer_token()
    if value is None:
        return _api_error(
            "send an API token as `Authorization: Bearer sp_…` (an admin creates one with "
            "`socialpulse tokens create`)",
            401,
        )
    token = access().store.verify_token(value)
    if token is None:
        return _api_error("the API token is unknown or revoked", 401, invalid=True)
    if scope not in token.scopes:
        return _api_error(f"the API token lacks the {scope!r} scope", 403)
    role = getattr(view, "token_role", "viewer")
    if not token.may(role):
        return _api_error(f"the API token acts as {token.role}; this needs {role}", 403)
    g.api_token = token
    return None


def current_token() -> ApiToken | None:
    """The API token the request came with, once the gate accepted it."""
    return g.get("api_token")


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    if len(header) > MAX_AUTHORIZATION:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _api_error(message: str, status: int, invalid: bool = False):
    response = jsonify(error=message)
    response.status_code = status
    if status == 401:
        error = ', error="invalid_token"' if invalid else ""
        response.headers["WWW-Authenticate"] = f'Bearer realm="socialpulse"{error}'
    return response


def _to_login():
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("login.login_page", next=target), 303)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site, else the dashboard. Refuses what
    a browser would read as another host (`//evil`, `/\\evil`, `https://…`)."""
    if not target or len(target) > MAX_NEXT or not target.startswith("/"):
        return "/"
    if target.startswith("//") or "\\" in target or not target.isprintable():
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


# -- metrics, readiness, Socket.IO ------------------------------------------------------------


def metrics_refusal() -> tuple[str, int] | None:
    """Why `/metrics` is refused to this request (message, status), or None to serve it."""
    policy = access()
    if not policy.metrics_token:
        if not policy.required():
            return None
        return "set SOCIALPULSE_METRICS_TOKEN and send it as `Authorization: Bearer …`", 403
    value = bearer_token()
    if value is None or not hmac.compare_digest(value.encode(), policy.metrics_token.encode()):
        return "send the metrics token as `Authorization: Bearer …`", 401
    return None


def may(role: str) -> bool:
    """True if this request's person may act as `role` (anyone while access control is
    off): what a page shows of the forms `require_role(role)` guards."""
    return not access().required() or (current_user.is_authenticated and current_user.may(role))


def sees_details() -> bool:
    """True if this request may see reasons and versions in `/readyz`, not just the status."""
    return not access().required() or current_user.is_authenticated


def socket_allowed() -> bool:
    """True if a Socket.IO connection may join: access control off, or a logged-in session."""
    return not access().required() or current_user.is_authenticated


# -- binding ----------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True for addresses only this machine reaches: 127.0.0.0/8, ::1 and `localhost`."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything


def bind_refusal(host: str, auth_mode: str, users_exist: bool) -> str | None:
    """Why serving on `host` must not start (one message saying how to fix it), or None."""
    if is_loopback(host):
        return None
    if auth_mode == "off":
        return (
            f"SOCIALPULSE_AUTH=off runs open, which is allowed only on a loopback address, "
            f"not {host}: bind 127.0.0.1, or {FIX_HINT} and unset SOCIALPULSE_AUTH"
        )
    if not users_exist:
        return (
            f"refusing to serve on {host} with no accounts, which would let anyone in: "
            f"{FIX_HINT} (or bind 127.0.0.1)"
        )
    return None


def check_bind(config: Config) -> None:
    """Refuse (AccessSetupError) to serve open off loopback; log one line when open on it."""
    users_exist = AccountStore(config.accounts_path).has_users()
    refusal = bind_refusal(config.host, config.auth, users_exist)
    if refusal:
        raise AccessSetupError(refusal)
    if config.auth == "off" or (config.auth == "auto" and not users_exist):
        log.warning(
            "access control is off: the dashboard and API are open to anyone on this "
            "machine; %s to require logins",
            FIX_HINT,
        )
