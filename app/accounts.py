"""Who may use SocialPulse: users (name, password hash, role) and API tokens, kept in SQLite.

No Flask here: the web app (`app.auth`) and the `users` / `tokens` commands share this store.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

# Lowest to highest: each role may do everything the ones before it may.
ROLES = ("viewer", "analyst", "admin")
# What an API token may call: `read` for GET endpoints that return data, `analyze` for
# POST /api/v1/analyze and /audience, `correct` for POST /api/v1/posts/<id>/corrections.
SCOPES = ("read", "analyze", "correct")
MIN_PASSWORD = 12
# Hashing cost grows with the password; a cap keeps one login attempt's cost bounded.
MAX_PASSWORD = 1024
MAX_TOKEN_NAME = 100
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
TOKEN_PREFIX = "sp_"
TOKEN_ID = re.compile(r"[0-9a-f]{12}")
# token_urlsafe(32) gives 43 characters; anything much longer is not one of ours.
MAX_SECRET = 64
# A token's last use is written at most this often (s), so a busy client costs no writes.
LAST_USED_RESOLUTION = 60.0
PASSWORD_METHOD = "scrypt"  # memory-hard; werkzeug's parameters (N=2**15, r=8, p=1)

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    session_key TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    scopes TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_used_at REAL,
    revoked_at REAL
);
"""


class AccountError(ValueError):
    """A user or token request that cannot be done, with a message for the person asking."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    created_at: float
    # Random, replaced when the password changes: sessions that carry an older one end.
    session_key: str

    def may(self, role: str) -> bool:
        """True if this user's role is `role` or above."""
        return role_rank(self.role) >= role_rank(role)


@dataclass(frozen=True)
class ApiToken:
    id: str
    name: str
    scopes: tuple[str, ...]
    role: str
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def may(self, role: str) -> bool:
        return role_rank(self.role) >= role_rank(role)


def role_rank(role: str) -> int:
    return ROLES.index(role)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise AccountError(
            "a user name is 1 to 64 letters, digits or . _ @ -, starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(
            f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters long "
            "(a passphrase of a few words is easy to remember)"
        )
    return password


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"a role is one of {', '.join(ROLES)}, not {role!r}")
    return role


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(scopes))
    if not chosen:
        raise AccountError(f"give a token at least one scope: {', '.join(SCOPES)}")
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise AccountError(f"unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}")
    return chosen


@cache
def _dummy_hash() -> str:
    return generate_password_hash("not the password of anyone", method=PASSWORD_METHOD)


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class AccountStore:
    """Users and API tokens in one SQLite file (WAL), a connection per call: safe to share
    between threads, and between the web server and the CLI."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=5.0)
        db.row_factory = sqlite3.Row
        try:
            with db:  # commits, or rolls back on an error
                yield db
        finally:
            db.close()

    # -- users -------------------------------------------------------------------------------

    def has_users(self) -> bool:
        with self._connect() as db:
            return db.execute("SELECT EXISTS (SELECT 1 FROM users)").fetchone()[0] == 1

    def add_user(self, name: str, password: str, role: str = "viewer") -> User:
        check_name(name)
        check_role(role)
        hashed = generate_password_hash(check_password(password), method=PASSWORD_METHOD)
        user = User(name, role, time.time(), secrets.token_hex(16))
        try:
            with self._connect() as db:
                db.execute(
                    "INSERT INTO users (name, password_hash, role, session_key, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (name, hashed, role, user.session_key, user.created_at),
                )
        except sqlite3.IntegrityError:
            raise AccountError(f"user {name!r} already exists") from None
        return user

    def remove_user(self, name: str) -> None:
        with self._connect() as db:
            if db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise AccountError(f"no user {name!r}")

    def set_role(self, name: str, role: str) -> None:
        check_role(role)
        with self._connect() as db:
            if db.execute("UPDATE users SET role = ? WHERE name = ?", (role, name)).rowcount == 0:
                raise AccountError(f"no user {name!r}")

    def set_password(self, name: str, password: str) -> None:
        """A new password also ends every session of the user."""
        hashed = generate_password_hash(check_password(password), method=PASSWORD_METHOD)
        with self._connect() as db:
            changed = db.execute(
                "UPDATE users SET password_hash = ?, session_key = ? WHERE name = ?",
                (hashed, secrets.token_hex(16), name),
            ).rowcount
        if not changed:
            raise AccountError(f"no user {name!r}")

    def users(self) -> list[User]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT name, role, created_at, session_key FROM users ORDER BY name"
            ).fetchall()
        return [User(r["name"], r["role"], r["created_at"], r["session_key"]) for r in rows]

    def user(self, name: str) -> User | None:
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            return None
        with self._connect() as db:
            row = db.execute(
                "SELECT name, role, created_at, session_key FROM users WHERE name = ?", (name,)
            ).fetchone()
        return (
            User(row["name"], row["role"], row["created_at"], row["session_key"]) if row else None
        )

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is theirs, else None. Takes as long for an unknown name
        as for a wrong password, so timing does not tell which names exist."""
        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            return None  # said before any lookup: it depends on the input alone
        row = None
        if isinstance(name, str) and NAME_PATTERN.fullmatch(name):
            with self._connect() as db:
                row = db.execute(
                    "SELECT name, role, created_at, session_key, password_hash FROM users "
                    "WHERE name = ?",
                    (name,),
                ).fetchone()
        stored = row["password_hash"] if row else _dummy_hash()
        if not check_password_hash(stored, password) or row is None:
            return None
        return User(row["name"], row["role"], row["created_at"], row["session_key"])

    # -- API tokens --------------------------------------------------------------------------

    def create_token(
        self, name: str, scopes: Iterable[str], role: str = "viewer"
    ) -> tuple[ApiToken, str]:
        """A new token and its full value, which is shown once and never stored."""
        name = name.strip() if isinstance(name, str) else ""
        if not name or len(name) > MAX_TOKEN_NAME or not name.isprintable():
            raise AccountError(f"a token name is 1 to {MAX_TOKEN_NAME} printable characters")
        token = ApiToken(
            secrets.token_hex(6), name, check_scopes(scopes), check_role(role), time.time()
        )
        secret = secrets.token_urlsafe(32)
        with self._connect() as db:
            db.execute(
                "INSERT INTO tokens (id, name, secret_sha256, scopes, role, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (token.id, name, _sha256(secret), " ".join(token.scopes), role, token.created_at),
            )
        return token, f"{TOKEN_PREFIX}{token.id}_{secret}"

    def revoke_token(self, token_id: str) -> None:
        with self._connect() as db:
            row = db.execute("SELECT revoked_at FROM tokens WHERE id = ?", (token_id,)).fetchone()
            if row is None:
                raise AccountError(f"no token {token_id!r}")
            if row["revoked_at"] is None:
                db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (time.time(), token_id))

    def tokens(self) -> list[ApiToken]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM tokens ORDER BY created_at").fetchall()
        return [_token(row) for row in rows]

    def verify_token(self, value: str) -> ApiToken | None:
        """The active token `value` is, else None. A SHA-256 of the secret is right here: the
        secret is 256 random bits, so no slow hash is needed against guessing."""
        if not isinstance(value, str) or not value.startswith(TOKEN_PREFIX):
            return None
        token_id, _, secret = value[len(TOKEN_PREFIX) :].partition("_")
        if not TOKEN_ID.fullmatch(token_id) or not 0 < len(secret) <= MAX_SECRET:
            return None
        with self._connect() as db:
            row = db.execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
            if row is None or row["revoked_at"] is not None:
                return None
            if not hmac.compare_digest(row["secret_sha256"], _sha256(secret)):
                return None
            now = time.time()
            if row["last_used_at"] is None or now - row["last_used_at"] > LAST_USED_RESOLUTION:
                db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (now, token_id))
        return _token(row)


def _token(row: sqlite3.Row) -> ApiToken:
    return ApiToken(
        row["id"],
        row["name"],
        tuple(row["scopes"].split()),
        row["role"],
        row["created_at"],
        row["last_used_at"],
        row["revoked_at"],
    )
