"""Network-facing checks around the whole WSGI app, Socket.IO included.

- `HostCheck`: only the host names this server is meant to be reached by. A DNS-rebinding
  page reaches us with its own name in `Host` (and a matching `Origin`), so checking
  `Origin` alone never catches it.
- `TlsAwareSessions`: the session cookie is `Secure` whenever the request came over HTTPS
  (directly, or through trusted reverse proxies: see `behind_proxies`).
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterable

from flask import request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

# A Host header: a name or a bracketed IPv6 address, then an optional port.
_HOST_HEADER = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::(\d{1,5}))?")
LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")  # IPv6 as the Host header writes it
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")


def default_allowed_hosts(bound_host: str) -> list[str]:
    """Localhost names, plus the bound address, or the machine's name on a wildcard bind."""
    names = list(LOCAL_NAMES)
    if bound_host in WILDCARD_ADDRESSES:
        names.append(socket.gethostname())
    else:
        name = f"[{bound_host}]" if ":" in bound_host else bound_host
        if name not in names:
            names.append(name)
    return names


def _idna(name: str) -> str:
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether a Host header names one of `allowed` (port ignored; `.example.com` also
    allows its subdomains). Written out because Werkzeug's own check cannot match IPv6."""
    match = _HOST_HEADER.fullmatch(host.lower())
    if match is None:
        return False
    name = match.group(1).rstrip(".")
    for ref in allowed:
        if ref.startswith("."):
            if name == ref[1:] or name.endswith(ref):
                return True
        elif name == ref:
            return True
    return False


class HostCheck:
    """WSGI middleware: 400 for a request whose Host is not one of `allowed` (`*`: any)."""

    def __init__(self, app: Callable, allowed: Iterable[str], api_prefix: str = "/api/") -> None:
        self.app = app
        self.allowed = [_idna(name.strip().lower()) for name in allowed if name.strip()]
        self.any_host = "*" in self.allowed
        self.api_prefix = api_prefix

    def __call__(self, environ: dict, start_response: Callable):
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        if self.any_host or host_allowed(host, self.allowed):
            return self.app(environ, start_response)
        message = (
            f"host {host[:100]!r} is not served here; the operator can allow it with "
            "SOCIALPULSE_ALLOWED_HOSTS"
        )
        if environ.get("PATH_INFO", "").startswith(self.api_prefix):
            body, kind = json.dumps({"error": message}).encode(), "application/json"
        else:
            body, kind = message.encode(), "text/plain; charset=utf-8"
        start_response(
            "400 Bad Request", [("Content-Type", kind), ("Content-Length", str(len(body)))]
        )
        return [body]


def behind_proxies(app: Callable, hops: int) -> Callable:
    """Trust X-Forwarded-For/-Proto/-Host/-Prefix from `hops` reverse proxies (0: none)."""
    if hops <= 0:
        return app
    return ProxyFix(app, x_for=hops, x_proto=hops, x_host=hops, x_prefix=hops)


class TlsAwareSessions(SecureCookieSessionInterface):
    """Session cookies marked `Secure` on HTTPS requests, as well as when configured so."""

    _serializer: tuple | None = None  # (the keys, the serializer signing with them)

    def get_cookie_secure(self, app) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    def get_signing_serializer(self, app):
        # Flask builds a new serializer for every request, which costs more than the rest
        # of the session's work; one per set of keys does the same signing.
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached = self._serializer
        if cached is None or cached[0] != keys:
            cached = self._serializer = (keys, super().get_signing_serializer(app))
        return cached[1]
