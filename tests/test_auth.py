"""Access control: accounts, logins, roles, API tokens, the metrics token, Socket.IO, and the
rule that only a loopback bind runs open."""

from __future__ import annotations

import json
import logging
import sqlite3
import time

import pytest
from click.testing import CliRunner
from werkzeug.routing import Rule

from app import create_app
from app.accounts import MAX_PASSWORD, AccountError, AccountStore
from app.auth import OPEN_ENDPOINTS, LoginThrottle, bind_refusal, check_bind, safe_next
from app.cli import main
from app.testing import csrf_from, log_in, run_config, wait_for

PASSWORD = "correct horse battery staple"
USERS = {"vera": "viewer", "ann": "analyst", "ada": "admin"}
POST = {"text": "what a GREAT game #nba"}


@pytest.fixture
def store(config) -> AccountStore:
    return AccountStore(config.accounts_path)


@pytest.fixture
def secured(config, store):
    """An app on loopback with three users, one per role: logins required (auto)."""
    for name, role in USERS.items():
        store.add_user(name, PASSWORD, role)
    flask_app = create_app(config)
    flask_app.config.update(TESTING=True)
    return flask_app


@pytest.fixture
def anon(secured):
    return secured.test_client()


def client_as(app, name: str):
    client = app.test_client()
    assert log_in(client, name, PASSWORD).status_code == 303
    return client


def analyze(client, token: str | None = None, body: dict | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/api/v1/analyze", json=body or POST, headers=headers)


# -- the store --------------------------------------------------------------------------------


def test_users_are_added_listed_and_removed(store):
    store.add_user("vera", PASSWORD, "viewer")
    store.add_user("ada", PASSWORD, "admin")
    assert [(u.name, u.role) for u in store.users()] == [("ada", "admin"), ("vera", "viewer")]
    assert store.has_users()
    store.remove_user("vera")
    assert [u.name for u in store.users()] == ["ada"]
    with pytest.raises(AccountError, match="no user 'vera'"):
        store.remove_user("vera")
    with pytest.raises(AccountError, match="already exists"):
        store.add_user("ada", PASSWORD, "viewer")


def test_passwords_are_kept_as_a_modern_kdf_hash_never_in_clear(store):
    store.add_user("vera", PASSWORD)
    with sqlite3.connect(store.path) as db:
        (stored,) = db.execute("SELECT password_hash FROM users").fetchone()
    assert stored.startswith("scrypt:") and PASSWORD not in stored
    assert PASSWORD.encode() not in store.path.read_bytes()
    assert store.authenticate("vera", PASSWORD).name == "vera"
    assert store.authenticate("vera", PASSWORD + "!") is None


@pytest.mark.parametrize(
    "name", ["", " ", "a" * 65, "-dash", "x y", "<b>", "vera\x00", "vérа", "a/b", "' OR 1=1 --"]
)
def test_bad_user_names_are_refused(store, name):
    with pytest.raises(AccountError, match="user name"):
        store.add_user(name, PASSWORD)


@pytest.mark.parametrize("password", ["", "short", "x" * 11, "x" * (MAX_PASSWORD + 1)])
def test_too_short_or_too_long_passwords_are_refused(store, password):
    with pytest.raises(AccountError, match="12 to 1024"):
        store.add_user("vera", password)


def test_an_unknown_name_costs_a_hash_like_a_wrong_password(store, monkeypatch):
    """Otherwise the answer's timing tells which names exist."""
    import app.accounts as accounts

    store.add_user("vera", PASSWORD)
    checks: list[str] = []
    original = accounts.check_password_hash
    monkeypatch.setattr(
        accounts, "check_password_hash", lambda h, p: checks.append(h) or original(h, p)
    )
    assert store.authenticate("nobody", PASSWORD) is None
    assert store.authenticate("vera", "wrong password!!") is None
    assert store.authenticate("' OR 1=1 --", PASSWORD) is None
    assert len(checks) == 3 and all(h.startswith("scrypt:") for h in checks)


def test_tokens_are_stored_hashed_scoped_and_revocable(store):
    token, value = store.create_token("reporting job", ["analyze", "read"], "analyst")
    assert value.startswith(f"sp_{token.id}_") and len(value) > 50
    # The secret is URL-safe base64 and may itself hold "_": cut it by position.
    secret = value[len(f"sp_{token.id}_") :]
    assert len(secret) == 43
    assert secret.encode() not in store.path.read_bytes()
    assert value.encode() not in store.path.read_bytes()
    verified = store.verify_token(value)
    assert (verified.id, verified.scopes, verified.role) == (
        token.id,
        ("analyze", "read"),
        "analyst",
    )
    assert store.tokens()[0].last_used_at is not None
    assert store.verify_token(value[:-1] + ("A" if value[-1] != "A" else "B")) is None
    store.revoke_token(token.id)
    assert store.verify_token(value) is None
    assert store.tokens()[0].revoked_at is not None
    with pytest.raises(AccountError, match="no token"):
        store.revoke_token("000000000000")


@pytest.mark.parametrize(
    "value",
    ["", "sp_", "sp__", "Bearer", "sp_zzzzzzzzzzzz_abc", "sp_" + "a" * 12, "x" * 10_000, "sp_1_2"],
)
def test_malformed_tokens_are_unknown(store, value):
    store.create_token("t", ["analyze"])
    assert store.verify_token(value) is None


@pytest.mark.parametrize(
    ("scopes", "role", "message"),
    [
        ([], "viewer", "at least one scope"),
        (["write"], "viewer", "unknown scope"),
        (["read"], "root", "role"),
    ],
)
def test_tokens_need_known_scopes_and_roles(store, scopes, role, message):
    with pytest.raises(AccountError, match=message):
        store.create_token("t", scopes, role)


# -- every route is open on purpose or closed -------------------------------------------------


def _path(app, rule: Rule) -> str:
    values = {name: "0" * 12 for name in rule.arguments}
    return app.url_map.bind("localhost").build(rule.endpoint, values)


def test_every_route_is_listed_as_open_or_needs_a_login_or_token(secured):
    """A route added later is closed unless someone puts it in OPEN_ENDPOINTS."""
    secured.config.update(WTF_CSRF_ENABLED=False)  # the gate alone must refuse
    client = secured.test_client()
    escaped = []
    for rule in secured.url_map.iter_rules():
        if rule.endpoint in OPEN_ENDPOINTS:
            continue
        path = _path(secured, rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method)
            api = rule.endpoint.startswith("api.") and rule.endpoint != "api.docs"
            refused = (
                response.status_code == 401
                if api
                else response.status_code == 303
                and response.headers["Location"].startswith("/login?next=")
            )
            if not refused:
                escaped.append(f"{method} {path} → {response.status_code}")
    assert not escaped, escaped


def test_open_routes_are_few_and_known(secured):
    assert {rule.endpoint for rule in secured.url_map.iter_rules()} >= OPEN_ENDPOINTS
    client = secured.test_client()
    for path in ("/livez", "/readyz", "/healthz", "/api/v1/openapi.json", "/login"):
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("name", USERS)
@pytest.mark.parametrize(
    "path", ["/", "/analyze", "/models", "/api/v1/docs", "/models/report", "/admin"]
)
def test_pages_by_role(secured, name, path):
    response = client_as(secured, name).get(path)
    if path == "/admin" and USERS[name] != "admin":
        assert response.status_code == 403
    elif path == "/models/report":
        assert response.status_code in (200, 404)  # the test models may have no report
    else:
        assert response.status_code == 200, response.get_data(as_text=True)[:300]


def test_the_nav_shows_who_is_logged_in_and_a_logout_button(secured):
    html = client_as(secured, "ann").get("/").get_data(as_text=True)
    assert 'id="user-name">ann<' in html and 'id="user-role">analyst<' in html
    assert 'action="/logout"' in html and 'href="/admin"' not in html
    assert 'href="/admin"' in client_as(secured, "ada").get("/").get_data(as_text=True)


# -- logging in and out -----------------------------------------------------------------------


def test_login_goes_to_next_and_logout_ends_the_session(anon):
    response = anon.get("/models?x=1")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=/models?x%3D1"
    response = log_in(anon, "vera", PASSWORD, next_path="/models?x=1")
    assert (response.status_code, response.headers["Location"]) == (303, "/models?x=1")
    assert anon.get("/models").status_code == 200
    token = csrf_from(anon.get("/").get_data(as_text=True))
    assert anon.post("/logout", data={"csrf_token": token}).status_code == 303
    assert anon.get("/").status_code == 303


def test_a_failed_login_says_the_same_for_unknown_names_and_wrong_passwords(anon):
    unknown = log_in(anon, "nobody", PASSWORD)
    wrong = log_in(anon, "vera", "not the password at all")
    assert unknown.status_code == wrong.status_code == 400
    for response in (unknown, wrong):
        assert "Wrong user name or password." in response.get_data(as_text=True)
    assert anon.get("/").status_code == 303


def test_logging_in_starts_a_fresh_session(anon):
    """Nothing planted in the session before the login (fixation) survives it."""
    with anon.session_transaction() as session:
        session["planted"] = "by an attacker"
    log_in(anon, "vera", PASSWORD)
    with anon.session_transaction() as session:
        assert "planted" not in session
        assert session["_user_id"].startswith("vera:")


def test_repeated_failures_are_throttled_per_name_and_address(anon):
    for _ in range(5):
        assert log_in(anon, "vera", "wrong password!!").status_code == 400
    throttled = log_in(anon, "vera", PASSWORD)  # even the right password waits
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    assert "Too many failed logins" in throttled.get_data(as_text=True)
    other = anon.application.test_client()
    assert log_in(other, "ann", PASSWORD).status_code == 303  # another name is not held up
    elsewhere = anon.application.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "10.1.2.3"
    assert log_in(elsewhere, "vera", PASSWORD).status_code == 303


def test_the_throttle_backs_off_exponentially_and_keeps_bounded_memory():
    now = [0.0]
    throttle = LoginThrottle(free=3, max_delay=60, max_entries=100, clock=lambda: now[0])
    key = throttle.key("Vera", "1.2.3.4")
    for _ in range(2):
        throttle.failed(key)
    assert throttle.retry_after(key) == 0
    delays = []
    for _ in range(8):
        throttle.failed(key)
        delays.append(throttle.retry_after(key))
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    now[0] += 61
    assert throttle.retry_after(key) == 0
    throttle.succeeded(key)
    assert throttle.retry_after(key) == 0
    for i in range(10_000):
        throttle.failed(throttle.key(f"user{i}", "5.6.7.8"))
    assert len(throttle) == 100


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "///evil.example",
        "http://evil.example/",
        "https:evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        " //evil.example",
        "/\t/evil.example",
        "/ok\r\nSet-Cookie: x=1",
        "evil.example",
        "/" + "a" * 5000,
    ],
)
def test_next_never_leaves_the_site(anon, target):
    assert safe_next(target) == "/"
    response = log_in(anon, "vera", PASSWORD, next_path=target)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_next_keeps_a_path_on_the_site():
    assert safe_next("/models?tab=runs#top") == "/models?tab=runs#top"


HOSTILE = [
    "' OR '1'='1' --",
    "admin'--",
    "vera\x00",
    "\u202eareV",
    "😀" * 50,
    "Ｖｅｒａ",
    "<script>alert(1)</script>",
    "a" * 100_000,
    "%00%27",
    "\r\nvera",
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_names_and_passwords_fail_cleanly_in_bounded_time(anon, value):
    for name, password in ((value, PASSWORD), ("vera", value), (value, value)):
        started = time.monotonic()
        response = log_in(anon, name, password)
        assert response.status_code in (400, 429)
        assert time.monotonic() - started < 3
        assert "<script>alert(1)</script>" not in response.get_data(as_text=True)


def test_a_huge_login_body_is_refused_before_anything_is_hashed(anon):
    response = anon.post("/login", data={"name": "vera", "password": "x" * 2_000_000})
    assert response.status_code == 413


def test_a_login_without_the_csrf_token_is_refused(anon):
    anon.get("/login")
    response = anon.post("/login", data={"name": "vera", "password": PASSWORD})
    assert response.status_code == 400
    assert anon.get("/").status_code == 303


def test_a_cross_site_logout_does_nothing(secured):
    client = client_as(secured, "vera")
    assert client.post("/logout", headers={"Origin": "https://evil.example"}).status_code == 400
    assert client.get("/").status_code == 200


def test_removing_a_user_or_changing_a_password_ends_their_sessions(secured, store):
    vera, ann = client_as(secured, "vera"), client_as(secured, "ann")
    store.remove_user("vera")
    assert vera.get("/").status_code == 303
    store.set_password("ann", "another long passphrase")
    assert ann.get("/").status_code == 303
    store.add_user("vera", PASSWORD)  # the same name again is not the old account
    assert vera.get("/").status_code == 303


def test_a_new_role_applies_at_the_next_request(secured, store):
    vera = client_as(secured, "vera")
    assert vera.get("/admin").status_code == 403
    store.set_role("vera", "admin")
    assert vera.get("/admin").status_code == 200


# -- modes and binding ------------------------------------------------------------------------


def test_without_users_loopback_runs_open(app):
    client = app.test_client()
    assert client.get("/").status_code == 200
    assert analyze(client).status_code == 200
    assert client.get("/login").status_code == 303  # nothing to log in to


def test_required_mode_closes_even_without_users(model_dir, tmp_path, bundle):
    config = run_config(model_dir, tmp_path / "instance", auth="required")
    client = create_app(config).test_client()
    assert client.get("/").status_code == 303
    assert analyze(client).status_code == 401


def test_off_mode_opens_loopback_even_with_users(model_dir, tmp_path, bundle):
    config = run_config(model_dir, tmp_path / "instance", auth="off")
    AccountStore(config.accounts_path).add_user("vera", PASSWORD)
    assert create_app(config).test_client().get("/").status_code == 200


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_a_public_bind_is_never_open_even_when_started_another_way(
    model_dir, tmp_path, bundle, mode
):
    config = run_config(model_dir, tmp_path / "instance", host="0.0.0.0", auth=mode)
    client = create_app(config).test_client()
    assert client.get("/", headers={"Host": "127.0.0.1"}).status_code == 303


@pytest.mark.parametrize(
    ("host", "mode", "users", "refused"),
    [
        ("127.0.0.1", "auto", False, None),
        ("127.8.9.10", "off", False, None),
        ("localhost", "auto", False, None),
        ("::1", "off", True, None),
        ("[::1]", "auto", False, None),
        ("0.0.0.0", "auto", False, "no accounts"),
        ("0.0.0.0", "required", False, "no accounts"),
        ("::", "auto", False, "no accounts"),
        ("192.168.1.5", "auto", False, "no accounts"),
        ("myhost.example", "auto", False, "no accounts"),
        ("0.0.0.0", "auto", True, None),
        ("0.0.0.0", "required", True, None),
        ("0.0.0.0", "off", True, "only on a loopback"),
    ],
)
def test_bind_refusal(host, mode, users, refused):
    message = bind_refusal(host, mode, users)
    if refused is None:
        assert message is None
    else:
        assert refused in message and "socialpulse users add" in message


def test_serve_refuses_a_public_bind_without_accounts(tmp_path):
    started = time.monotonic()
    result = CliRunner().invoke(
        main,
        ["serve", "--host", "0.0.0.0"],
        env={"SOCIALPULSE_INSTANCE_DIR": str(tmp_path), "SOCIALPULSE_MODEL_DIR": str(tmp_path)},
    )
    assert result.exit_code == 2
    assert "socialpulse users add NAME --role admin" in result.output
    assert time.monotonic() - started < 5  # refused before any model is loaded or trained
    assert not (tmp_path / "model_signing.key").exists()


def test_running_open_on_loopback_says_so_in_one_line(config, caplog):
    with caplog.at_level(logging.WARNING, logger="app.auth"):
        check_bind(config)
    (record,) = caplog.records
    assert "open to anyone on this machine" in record.getMessage()
    AccountStore(config.accounts_path).add_user("vera", PASSWORD)
    caplog.clear()
    check_bind(config)
    assert not caplog.records


# -- the JSON API -----------------------------------------------------------------------------


def test_the_api_takes_a_token_with_the_right_scope(secured, store, anon):
    _, analyze_token = store.create_token("job", ["analyze"])
    _, read_token = store.create_token("reader", ["read"])
    response = analyze(anon, analyze_token)
    assert response.status_code == 200 and response.get_json()["sentiment"]["label"]
    refused = analyze(anon, read_token)
    assert refused.status_code == 403 and "'analyze' scope" in refused.get_json()["error"]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dmVyYTpwYXNz",
        "Bearer sp_000000000000_nope",
        "Bearer " + "sp_" + "a" * 500,
        "bearer sp_'; DROP TABLE tokens; --",
        "Bearer \u202esp_x",
    ],
)
def test_the_api_refuses_missing_or_bad_tokens_with_401(anon, header):
    headers = {"Authorization": header} if header is not None else {}
    response = anon.post("/api/v1/analyze", json=POST, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.is_json and response.get_json()["error"]


def test_a_revoked_token_stops_working_at_once(anon, store):
    token, value = store.create_token("job", ["analyze"])
    assert analyze(anon, value).status_code == 200
    store.revoke_token(token.id)
    response = analyze(anon, value)
    assert response.status_code == 401 and "revoked" in response.get_json()["error"]


def test_the_api_ignores_the_session_cookie(secured):
    """A logged-in browser cannot be made to call the API from another site."""
    response = analyze(client_as(secured, "ada"))
    assert response.status_code == 401


def test_the_openapi_document_declares_bearer_tokens(anon):
    spec = anon.get("/api/v1/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    analyze_op = spec["paths"]["/api/v1/analyze"]["post"]
    assert analyze_op["security"] == [{"bearer": []}]
    assert {"401", "403"} <= set(analyze_op["responses"])


# -- metrics, readiness -----------------------------------------------------------------------


def test_metrics_need_a_configured_token_when_access_control_is_on(anon):
    response = anon.get("/metrics")
    assert response.status_code == 403
    assert "SOCIALPULSE_METRICS_TOKEN" in response.get_data(as_text=True)


def test_metrics_with_a_token(model_dir, tmp_path, bundle):
    secret = "metrics-token-0123456789"
    config = run_config(model_dir, tmp_path / "instance", metrics_token=secret)
    AccountStore(config.accounts_path).add_user("vera", PASSWORD)
    client = create_app(config).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics").headers["WWW-Authenticate"].startswith("Bearer")
    wrong = {"Authorization": "Bearer " + secret[:-1] + "X"}
    assert client.get("/metrics", headers=wrong).status_code == 401
    assert (
        client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 5000}).status_code == 401
    )
    good = client.get("/metrics", headers={"Authorization": "Bearer " + secret})
    assert good.status_code == 200 and b"socialpulse" in good.data


def test_metrics_stay_open_without_access_control(client):
    assert client.get("/metrics").status_code == 200


def test_readiness_tells_strangers_only_the_verdict(secured, anon):
    body = anon.get("/readyz").get_json()
    assert set(body) == {"status", "problems"}
    detailed = client_as(secured, "vera").get("/readyz").get_json()
    assert "model_version" in detailed


# -- Socket.IO --------------------------------------------------------------------------------


def test_socket_io_refuses_a_connection_without_a_login(secured, anon):
    socketio = secured.extensions["socketio"]
    live = socketio.test_client(secured, namespace="/live", flask_test_client=anon)
    assert not live.is_connected("/live")
    assert secured.extensions["socialpulse"].hub.clients == 0


def test_socket_io_accepts_the_logged_in_session_and_sends_a_snapshot(secured):
    client = client_as(secured, "vera")
    socketio = secured.extensions["socketio"]
    live = socketio.test_client(secured, namespace="/live", flask_test_client=client)
    assert live.is_connected("/live")
    received = live.get_received("/live")
    assert [m["name"] for m in received] == ["update"]
    live.disconnect(namespace="/live")


def test_a_removed_user_or_changed_password_ends_their_live_connections(secured, store):
    socketio = secured.extensions["socketio"]
    hub = secured.extensions["socialpulse"].hub
    vera = socketio.test_client(
        secured, namespace="/live", flask_test_client=client_as(secured, "vera")
    )
    ada = socketio.test_client(
        secured, namespace="/live", flask_test_client=client_as(secured, "ada")
    )
    assert vera.is_connected("/live") and ada.is_connected("/live")
    assert hub.drop_invalid_sessions() == []  # nothing changed: nobody dropped
    store.remove_user("vera")
    store.set_password("ada", PASSWORD + "!")
    assert len(hub.drop_invalid_sessions()) == 2
    assert not vera.is_connected("/live") and not ada.is_connected("/live")
    assert hub.viewers == {}


def test_logging_out_signs_out_every_live_tab_of_that_login_only(secured):
    socketio = secured.extensions["socketio"]
    browser, other_browser = client_as(secured, "vera"), client_as(secured, "vera")
    tabs = [
        socketio.test_client(secured, namespace="/live", flask_test_client=browser)
        for _ in range(2)
    ]
    elsewhere = socketio.test_client(secured, namespace="/live", flask_test_client=other_browser)
    for live in (*tabs, elsewhere):
        live.get_received("/live")  # the snapshots
    csrf = csrf_from(browser.get("/").get_data(as_text=True))
    assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 303
    for tab in tabs:  # sent in the background: a logout never waits on the message queue
        received = wait_for(lambda t=tab: t.get_received("/live"), 5, "the sign-out")
        assert [m["name"] for m in received] == ["signed_out"]
    assert "signed_out" not in [m["name"] for m in elsewhere.get_received("/live")]


# -- the admin page ---------------------------------------------------------------------------


def test_the_admin_page_lists_users_and_tokens_without_secrets(secured, store):
    store.create_token("job", ["analyze"])
    html = client_as(secured, "ada").get("/admin").get_data(as_text=True)
    for name in USERS:
        assert f"<td>{name}</td>" in html
    assert "job" in html and "scrypt:" not in html
    with sqlite3.connect(store.path) as db:
        (digest,) = db.execute("SELECT secret_sha256 FROM tokens").fetchone()
    assert digest not in html


def _create_token(client, **fields):
    token = csrf_from(client.get("/admin").get_data(as_text=True))
    data = {"csrf_token": token, "name": "job", "scopes": ["analyze"], "role": "viewer"}
    data.update(fields)
    return client.post("/admin/tokens", data=data)


def test_an_admin_creates_a_token_shown_once_and_revokes_it(secured, store, anon):
    admin = client_as(secured, "ada")
    response = _create_token(admin, name="nightly export")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    value = html.split('id="new-token-value">', 1)[1].split("<", 1)[0]
    assert analyze(anon, value).status_code == 200
    assert value not in admin.get("/admin").get_data(as_text=True)  # never shown again
    (token,) = store.tokens()
    csrf = csrf_from(admin.get("/admin").get_data(as_text=True))
    revoked = admin.post(f"/admin/tokens/{token.id}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 303
    assert analyze(anon, value).status_code == 401


@pytest.mark.parametrize(
    "fields",
    [
        {"name": ""},
        {"name": "x" * 101},
        {"name": "x" * 200_000},
        {"name": "tab\there"},
        {"scopes": []},
        {"scopes": ["admin"]},
        {"role": "root"},
    ],
    ids=["empty", "long", "huge", "control", "no-scope", "bad-scope", "bad-role"],
)
def test_bad_token_requests_are_refused_cleanly(secured, store, fields):
    response = _create_token(client_as(secured, "ada"), **fields)
    assert response.status_code in (400, 413)
    assert store.tokens() == []


def test_token_names_are_shown_as_text(secured, store):
    store.create_token("<img src=x onerror=alert(1)>", ["read"])
    html = client_as(secured, "ada").get("/admin").get_data(as_text=True)
    assert "<img src=x" not in html and "&lt;img src=x" in html


@pytest.mark.parametrize("token_id", ["000000000000", "zz", "../../etc", "' OR 1=1 --"])
def test_revoking_an_unknown_token_is_404(secured, token_id):
    admin = client_as(secured, "ada")
    csrf = csrf_from(admin.get("/admin").get_data(as_text=True))
    response = admin.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf})
    assert response.status_code == 404


def test_admin_posts_need_the_csrf_token_and_the_admin_role(secured, store):
    admin = client_as(secured, "ada")
    assert admin.post("/admin/tokens", data={"name": "job", "scopes": "analyze"}).status_code == 400
    token, _ = store.create_token("job", ["analyze"])
    assert admin.post(f"/admin/tokens/{token.id}/revoke").status_code == 400
    analyst = client_as(secured, "ann")
    csrf = csrf_from(analyst.get("/").get_data(as_text=True))
    data = {"csrf_token": csrf, "name": "mine", "scopes": "analyze", "role": "admin"}
    assert analyst.post("/admin/tokens", data=data).status_code == 403
    revoke = analyst.post(f"/admin/tokens/{token.id}/revoke", data={"csrf_token": csrf})
    assert revoke.status_code == 403
    assert [t.name for t in store.tokens()] == ["job"] and store.tokens()[0].active


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path):
    env = {"SOCIALPULSE_INSTANCE_DIR": str(tmp_path / "instance")}

    def run(*args: str, input: str | None = None):
        return CliRunner().invoke(main, list(args), input=input, env=env)

    run.store = lambda: AccountStore(tmp_path / "instance" / "accounts.sqlite3")
    return run


def test_users_commands(cli):
    added = cli("users", "add", "ada", "--role", "admin", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert added.exit_code == 0, added.output
    assert PASSWORD not in added.output
    scripted = cli("users", "add", "vera", "--password-stdin", input=PASSWORD + "\n")
    assert scripted.exit_code == 0, scripted.output
    assert cli("users", "list").output.splitlines() == ["ada\tadmin", "vera\tviewer"]
    assert cli("users", "set-role", "vera", "analyst").exit_code == 0
    assert cli.store().user("vera").role == "analyst"
    changed = cli("users", "set-password", "vera", "--password-stdin", input="a new passphrase!\n")
    assert changed.exit_code == 0
    assert cli.store().authenticate("vera", "a new passphrase!") is not None
    assert cli("users", "remove", "vera").exit_code == 0
    assert cli("users", "list").output.splitlines() == ["ada\tadmin"]


@pytest.mark.parametrize(
    ("args", "input", "message"),
    [
        (["users", "add", "x", "--password-stdin"], "short\n", "12 to 1024"),
        (["users", "add", "bad name", "--password-stdin"], PASSWORD + "\n", "user name"),
        (["users", "add", "x", "--role", "root", "--password-stdin"], PASSWORD + "\n", "root"),
        (["users", "remove", "nobody"], None, "no user 'nobody'"),
        (["users", "set-password", "nobody", "--password-stdin"], PASSWORD + "\n", "no user"),
        (["tokens", "create", "job"], None, "--scope"),
        (["tokens", "create", "job", "--scope", "write"], None, "write"),
        (["tokens", "revoke", "000000000000"], None, "no token"),
    ],
)
def test_cli_mistakes_are_usage_errors(cli, args, input, message):
    result = cli(*args, input=input)
    assert result.exit_code == 2
    assert message in result.output


def test_a_mistyped_confirmation_adds_nobody(cli):
    result = cli("users", "add", "ada", input=f"{PASSWORD}\nsomething else!!\n")
    assert result.exit_code != 0
    assert cli("users", "list").output == ""


def test_tokens_commands(cli):
    created = cli("tokens", "create", "job", "--scope", "analyze", "--scope", "read")
    assert created.exit_code == 0, created.output
    value = created.stdout.strip()
    token = cli.store().verify_token(value)
    assert token and token.scopes == ("analyze", "read") and token.role == "viewer"
    listed = cli("tokens", "list").output
    assert token.id in listed and value not in listed and "analyze,read" in listed
    assert cli("tokens", "revoke", token.id).exit_code == 0
    assert cli.store().verify_token(value) is None
    assert json.dumps(value) not in cli("tokens", "list").output


def test_the_admin_page_says_when_access_control_is_off(model_dir, tmp_path, bundle, secured):
    open_app = create_app(run_config(model_dir, tmp_path / "open-instance"))
    assert 'id="access-off"' in open_app.test_client().get("/admin").get_data(as_text=True)
    assert 'id="access-off"' not in client_as(secured, "ada").get("/admin").get_data(as_text=True)
