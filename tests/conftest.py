"""Shared fixtures: trained models (once per session), app, client, sample posts."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import Config
from app.testing import TEST_MODEL_KEY, TcpProxy, run_config, run_manifest_key
from archive.store import ArchiveStore, normalise_url
from models.bootstrap import ensure_bundle
from models.pipeline import ScoringPipeline
from models.registry import ModelBundle
from streaming.records import Post, parse_post
from streaming.synthetic import SyntheticPostGenerator, strip_private

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def stays_unpatched():
    """Only a served process belongs to gevent: a test that let `serve` patch the test
    process itself would leave every later test (and the run's exit) on gevent's loop."""
    yield
    from gevent import monkey

    assert not monkey.is_module_patched("socket"), "this test let gevent patch the test run"


@pytest.fixture(scope="session", autouse=True)
def model_signing_key():
    """Every process of the run (CLI commands, servers, workers) signs and trusts models with
    one key, as the machines of one deployment share theirs."""
    previous = os.environ.get("SOCIALPULSE_MODEL_KEY")
    os.environ["SOCIALPULSE_MODEL_KEY"] = TEST_MODEL_KEY
    yield
    if previous is None:
        os.environ.pop("SOCIALPULSE_MODEL_KEY", None)
    else:
        os.environ["SOCIALPULSE_MODEL_KEY"] = previous


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def bundle(model_dir) -> ModelBundle:
    """Default models trained on synthetic posts, once for the whole run."""
    return ensure_bundle(model_dir, key=run_manifest_key())


@pytest.fixture
def pipeline(bundle, model_dir) -> ScoringPipeline:
    """A fresh pipeline per test (loaded from disk), so online learning never leaks."""
    fresh = ensure_bundle(model_dir, bundle.version, key=run_manifest_key())
    return ScoringPipeline(fresh.clusterer, fresh.engagement, fresh.version)


@pytest.fixture
def config(model_dir, tmp_path, bundle) -> Config:
    return run_config(model_dir, tmp_path / "instance", emit_interval=0.2, wordcloud_interval=0.5)


@pytest.fixture
def app(config):
    from app import create_app

    flask_app = create_app(config)
    flask_app.config.update(TESTING=True)
    return flask_app


@pytest.fixture
def node(app):
    """The app, named so that it does not hide the `app` package in a test's body."""
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def socketio_client(app, client):
    """A Flask-SocketIO test client connected to the /live namespace."""
    socketio = app.extensions["socketio"]
    test_client = socketio.test_client(app, namespace="/live", flask_test_client=client)
    yield test_client
    if test_client.is_connected("/live"):
        test_client.disconnect(namespace="/live")


@pytest.fixture
def raw_posts() -> list[dict]:
    """Realistic raw posts as a client would send them."""
    return [strip_private(p) for p in SyntheticPostGenerator(seed=123).take(200)]


@pytest.fixture
def sample_posts(raw_posts) -> list[Post]:
    return [parse_post(raw) for raw in raw_posts]


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA


class ManualClock:
    """A clock for paced sources that moves only when they sleep: timing without waiting."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    monotonic = time

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The broker `make test` started. In CI a missing broker fails the run, never skips."""
    address = os.environ.get("SOCIALPULSE_TEST_KAFKA")
    if not address:
        if os.environ.get("CI"):
            pytest.fail("SOCIALPULSE_TEST_KAFKA is not set: run the suite with `make test`")
        pytest.skip("no Kafka broker: run `make test` (it starts one)")
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        pytest.fail(f"Kafka broker at {address} is not reachable: {exc}")
    return address


# -- the archive on both engines ------------------------------------------------------------
def postgres_url() -> str:
    """The server `make test` starts (postgres/pg.sh); in CI a missing one fails the run."""
    url = os.environ.get("SOCIALPULSE_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("SOCIALPULSE_TEST_POSTGRES is not set: run the suite with `make test`")
        pytest.skip(
            "no PostgreSQL server: SOCIALPULSE_TEST_POSTGRES is unset (`make test` starts one "
            "with postgres/pg.sh and sets it)"
        )
    return normalise_url(url)


def with_schema(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A schema of its own on the test server, dropped afterwards: its name."""
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(postgres_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield schema
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request, tmp_path):
    """A fresh, empty archive on each engine: a SQLite file, or a PostgreSQL schema of its
    own (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'archive.sqlite3'}"
        return
    with postgres_schema() as schema:
        yield with_schema(postgres_url(), schema)


@pytest.fixture
def store(archive_url):
    """A migrated, empty archive on each engine."""
    archive = ArchiveStore(archive_url)
    archive.migrate()
    yield archive
    archive.close()


@dataclass(frozen=True)
class ProxiedPostgres:
    """A schema of its own on the test server, reached directly or through a proxy that a
    test stops and starts again to cut the database away and bring it back."""

    proxy: TcpProxy
    through: str  # archive URL through the proxy
    direct: str  # archive URL straight to the server


@pytest.fixture
def proxied_postgres() -> Iterator[ProxiedPostgres]:
    url = make_url(postgres_url())
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    with postgres_schema() as schema:
        try:
            through = url.set(host="127.0.0.1", port=proxy.port)
            yield ProxiedPostgres(
                proxy,
                with_schema(through.render_as_string(hide_password=False), schema),
                with_schema(url.render_as_string(hide_password=False), schema),
            )
        finally:
            proxy.stop()  # before the schema goes: no session through it holds a lock


# -- a real browser: Debian's headless Chromium, driven by Playwright --------------------------
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for the module's browser tests."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing: run `make test`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.dialogs = []
    page.problems = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("console", lambda msg: msg.type == "error" and page.problems.append(msg.text))
    page.on("pageerror", lambda exc: page.problems.append(str(exc)))
    yield page
    context.close()
