"""Host checks (DNS rebinding), the API's content type, session cookies, reverse proxies."""

from __future__ import annotations

import json

import pytest
import requests

from app import create_app
from app.config import Config
from app.security import default_allowed_hosts, host_allowed
from app.testing import running_server

POST = {"text": "Loving the new release! #launch"}
EVIL = {"Host": "evil.example", "Origin": "http://evil.example"}


def make_app(config: Config, **settings):
    app = create_app(config.with_overrides(**settings))
    app.config.update(TESTING=True)
    return app


@pytest.mark.parametrize(
    "path", ["/", "/analyze", "/healthz", "/socket.io/?EIO=4&transport=polling"]
)
def test_a_foreign_host_is_refused_on_every_path(client, path):
    response = client.get(path, headers=EVIL)
    assert response.status_code == 400
    assert "evil.example" in response.get_data(as_text=True)


def test_a_foreign_host_gets_a_json_error_on_the_api(client):
    response = client.post("/api/v1/analyze", json=POST, headers=EVIL)
    assert response.status_code == 400
    assert "SOCIALPULSE_ALLOWED_HOSTS" in response.get_json()["error"]


@pytest.mark.parametrize("host", ["localhost", "localhost:5000", "127.0.0.1:5000", "[::1]:80"])
def test_local_names_are_served_by_default(client, host):
    assert client.get("/healthz", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host",
    [
        "",
        "localhost.evil.example",
        "localhost@evil.example",
        "evil.example#localhost",
        "localhost:5000@evil.example",
        "localhost:99999999",
        "local host",
        "[::1]evil",
        "127.0.0.1.nip.io",
        "l" * 10_000,
    ],
)
def test_look_alike_hosts_are_refused(host):
    assert not host_allowed(host, default_allowed_hosts("127.0.0.1"))


def test_default_hosts_follow_the_bound_address():
    assert default_allowed_hosts("10.1.2.3") == ["localhost", "127.0.0.1", "[::1]", "10.1.2.3"]
    assert default_allowed_hosts("fd00::5")[-1] == "[fd00::5]"
    assert "localhost" in default_allowed_hosts("0.0.0.0")


def test_allowed_hosts_setting_with_subdomains(config):
    app = make_app(config, allowed_hosts="pulse.example.org, .corp.example")
    client = app.test_client()
    for host in ("pulse.example.org", "a.corp.example", "corp.example:8443"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    for host in ("localhost", "evil.example", "pulse.example.org.evil.example", "xcorp.example"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 400, host


def test_any_host_when_the_operator_says_so(config):
    client = make_app(config, allowed_hosts="*").test_client()
    assert client.get("/healthz", headers=EVIL).status_code == 200


def test_a_forwarded_host_is_checked_behind_a_proxy(config):
    client = make_app(config, proxy_hops=1, allowed_hosts="pulse.example.org").test_client()
    ok = {"Host": "127.0.0.1:5000", "X-Forwarded-Host": "pulse.example.org"}
    assert client.get("/healthz", headers=ok).status_code == 200
    evil = {"Host": "127.0.0.1:5000", "X-Forwarded-Host": "evil.example"}
    assert client.get("/healthz", headers=evil).status_code == 400


def test_forwarded_headers_are_ignored_without_proxies(client):
    # No proxy configured: a client cannot claim another host (or HTTPS) by a header.
    headers = {"Host": "localhost", "X-Forwarded-Host": "evil.example"}
    assert client.get("/healthz", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_the_api_takes_json_only(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/v1/analyze", data=json.dumps(POST), headers=headers)
    assert response.status_code == 415
    assert "application/json" in response.get_json()["error"]


def test_the_api_accepts_json_with_a_charset(client):
    response = client.post(
        "/api/v1/analyze",
        data=json.dumps(POST),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


def session_cookie(response) -> str:
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    return cookie


def test_the_session_cookie_is_lax_and_http_only(client):
    cookie = session_cookie(client.get("/analyze"))  # the form's CSRF token lives in it
    assert "SameSite=Lax" in cookie
    assert "HttpOnly" in cookie
    assert "Secure" not in cookie  # plain HTTP on localhost: a Secure cookie would be lost


def test_the_session_cookie_is_secure_over_https(config):
    client = make_app(config).test_client()
    cookie = session_cookie(client.get("/analyze", base_url="https://localhost"))
    assert "Secure" in cookie


def test_https_at_the_proxy_makes_the_cookie_secure(config):
    client = make_app(config, proxy_hops=1).test_client()
    cookie = session_cookie(client.get("/analyze", headers={"X-Forwarded-Proto": "https"}))
    assert "Secure" in cookie


def test_a_new_secret_key_signs_new_sessions_and_refuses_old_ones(config):
    """Sessions are signed with one serializer per set of keys, built again when they change."""
    app = make_app(config)
    old_cookie = session_cookie(app.test_client().get("/analyze")).split(";")[0].split("=", 1)[1]
    serializer = app.session_interface.get_signing_serializer(app)
    assert app.session_interface.get_signing_serializer(app) is serializer
    with app.test_request_context():
        assert app.session_interface.get_signing_serializer(app).loads(old_cookie) is not None
    app.secret_key = "rotated-" + str(app.secret_key)
    rotated = app.session_interface.get_signing_serializer(app)
    assert rotated is not serializer
    with pytest.raises(Exception, match="Signature"):
        rotated.loads(old_cookie)
    app.config["SECRET_KEY_FALLBACKS"] = [app.secret_key[len("rotated-") :]]
    assert app.session_interface.get_signing_serializer(app).loads(old_cookie) is not None


def test_a_spoofed_proto_without_a_proxy_changes_nothing(client):
    cookie = session_cookie(client.get("/analyze", headers={"X-Forwarded-Proto": "https"}))
    assert "Secure" not in cookie


def test_the_real_server_refuses_a_rebinding_request(bundle, model_dir, tmp_path):
    with running_server(model_dir, tmp_path, "--rate", "5") as live:
        assert requests.get(live.url + "/", headers=EVIL, timeout=5).status_code == 400
        handshake = live.url + "/socket.io/?EIO=4&transport=polling"
        assert requests.get(handshake, headers=EVIL, timeout=5).status_code == 400
        assert requests.get(handshake, timeout=5).status_code == 200
        # The API reproduction of quadratic scoring cost: five posts of 5,000 emoji each.
        body = json.dumps({"posts": [{"text": "😀" * 5000}] * 5}, ensure_ascii=False)
        response = requests.post(
            live.url + "/api/v1/analyze",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 200
        assert len(response.json()["results"]) == 5
