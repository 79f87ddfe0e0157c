"""The app factory: `create_app(config)` builds one instance of the web app."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, request
from flask_socketio import SocketIO
from flask_wtf.csrf import CSRFProtect
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import HTTPException

from app.aggregates import LiveAggregates
from app.alerting import LiveAlerts
from app.auth import init_access
from app.config import PROJECT_ROOT, Config
from app.live import KafkaQueueManager, LiveHub
from app.security import HostCheck, TlsAwareSessions, behind_proxies
from app.server import gevent_active, lift_read_timeout
from app.services import Services, install, model_store
from app.webhooks import WebhookSender
from app.wordcloud_image import stop_words
from insights.alert_rules import RulesFile
from insights.alerts import AlertRules
from models.signing import secret_file
from streaming.metrics import StreamMetrics

csrf = CSRFProtect()

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

log = logging.getLogger(__name__)


def create_app(config: Config | None = None) -> Flask:
    """Build the app: models, dashboard aggregates, Socket.IO, blueprints.

    The live stream is not started here; `Services.start_stream` does that (see `serve`).
    """
    config = config or Config.from_env()
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # kafka-python narrates every connection at INFO; its warnings and errors still show.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_path=config.instance_dir,
    )
    app.config.update(
        SECRET_KEY=config.secret_key or _instance_secret(Path(config.instance_dir)),
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        WTF_CSRF_TIME_LIMIT=None,
        JSON_SORT_KEYS=False,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
    )
    app.session_interface = TlsAwareSessions()
    csrf.init_app(app)
    # One Socket.IO server per app (not a module global), so instances never share handlers.
    socketio = SocketIO(
        app,
        client_manager=_message_queue(config),
        # gevent under the production server (`app.server`), threads anywhere else.
        async_mode="gevent" if gevent_active() else "threading",
        cors_allowed_origins=config.allowed_origins,
        max_http_buffer_size=config.max_body_bytes,
    )
    # Around Socket.IO's middleware too, so its handshakes are checked like the pages.
    app.wsgi_app = lift_read_timeout(
        behind_proxies(HostCheck(app.wsgi_app, config.host_names), config.proxy_hops)
    )

    aggregates = LiveAggregates(
        window_seconds=config.window_seconds,
        windows_kept=config.windows_kept,
        stop_words=stop_words(),
    )
    hub = LiveHub(socketio, aggregates, config.emit_interval, config.wordcloud_interval)
    hub.register()
    metrics = StreamMetrics("web")
    hub.alerts = live_alerts(config, metrics.registry)
    store = model_store(config)
    pipeline = store.load()
    services = Services(
        config,
        pipeline,
        aggregates,
        hub,
        metrics=metrics,
        model_key=store.key,
        refused_models=store.refused,
        store=store,
    )
    install(app, services)
    policy = init_access(app, config)
    hub.session_valid = policy.session_valid

    from app.views import (
        admin,
        alerts,
        analyze,
        api,
        audiences,
        dashboard,
        health,
        login,
        models,
        tracked,
    )

    app.register_blueprint(dashboard.bp)
    app.register_blueprint(analyze.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(models.bp)
    app.register_blueprint(login.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(alerts.bp)
    from app.views import explore

    app.register_blueprint(explore.bp)
    app.register_blueprint(tracked.bp)
    app.register_blueprint(audiences.bp)
    csrf.exempt(api.bp)  # JSON API: no cookies or sessions, so no cross-site form to forge
    from app import replay

    replay.install(app, services)  # the Replay page, its sessions and Socket.IO namespace

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Blueprint handlers never see routing errors (404/405), so API paths are sent here.
        if request.path.startswith(api.PREFIX):
            return api.http_error(exc)
        return exc

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    return app


def live_alerts(config: Config, registry: CollectorRegistry) -> LiveAlerts:
    """The node's alert detectors, with webhooks when receivers are configured (their
    delivery threads start with the stream, see `Services`)."""
    webhooks = None
    if config.webhook_list:
        assert config.webhook_secret is not None  # validated with the config
        webhooks = WebhookSender(
            config.webhook_list,
            config.webhook_secret.encode(),
            Path(config.instance_dir) / "webhook_dead_letters.jsonl",
        )
    rules = AlertRules(window_seconds=config.alert_window, lateness_seconds=config.alert_lateness)
    rules_file = RulesFile(
        config.alert_rules_file or Path(config.instance_dir) / "alert_rules.json"
    )
    alerts = LiveAlerts(
        rules,
        config.alert_keyword_list,
        config.alert_history,
        webhooks,
        registry=registry,
        rules_file=rules_file,
    )
    if alerts.rules_error:
        log.error("alert rules refused: %s", alerts.rules_error)
    return alerts


def _message_queue(config: Config) -> KafkaQueueManager | None:
    """With Kafka, web nodes share Socket.IO messages through it: what one node emits to a
    room or a user reaches viewers on every node."""
    if not config.kafka_bootstrap:
        return None
    from streaming.kafka_io import ensure_topics

    bootstrap, topics = config.kafka_bootstrap, config.topics
    return KafkaQueueManager(
        bootstrap, topics.socketio, lambda: ensure_topics(bootstrap, topics, timeout=5.0)
    )


def _instance_secret(instance_dir: Path) -> str:
    """A random key generated on first start and kept, so sessions survive restarts (and
    hold on every node sharing the instance folder)."""
    return secret_file(instance_dir / "secret_key")
