"""The one configuration object, read from `SOCIALPULSE_*` environment variables."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from app.security import default_allowed_hosts
from app.webhooks import check_url
from insights.segments import FeatureWeights
from models.signing import ManifestKey
from streaming.kafka_clients import DEFAULT_KAFKA_CLIENT, KAFKA_CLIENTS
from streaming.topics import Topics

PREFIX = "SOCIALPULSE_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
AUTH_MODES = ("auto", "required", "off")
# The archive databases SocialPulse speaks to (see `archive.store`).
ARCHIVE_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg://", "postgres://")
# Settings that were renamed: setting the old name is an error that names the new one.
RENAMED = {"BATCH_MAX_WAIT_MS": "BATCH_MAX_WAIT (now in seconds, e.g. 0.1)"}


class ConfigError(ValueError):
    """A setting with a value that cannot be used."""


@dataclass(frozen=True)
class Config:
    """Every setting of SocialPulse. Each field reads `SOCIALPULSE_<FIELD NAME IN CAPITALS>`.

    Every duration is in seconds. The `metadata["help"]` of each field is the documentation
    shown in the README table.
    """

    host: str = field(default="127.0.0.1", metadata={"help": "address the web server binds"})
    port: int = field(default=5000, metadata={"help": "port of the web server"})
    source: str = field(
        default="synthetic", metadata={"help": "live source: `synthetic` or `file`"}
    )
    rate: float = field(default=20.0, metadata={"help": "synthetic posts per second"})
    seed: int = field(default=7, metadata={"help": "seed of the synthetic stream"})
    file: str | None = field(default=None, metadata={"help": "file replayed by `source=file`"})
    file_speed: float = field(
        default=1.0, metadata={"help": "replay pace ×N of the original (0 = as fast as possible)"}
    )
    model_dir: str = field(
        default=str(PROJECT_ROOT / "models" / "artifacts"),
        metadata={"help": "folder of versioned model artifacts"},
    )
    model_version: str | None = field(
        default=None, metadata={"help": "pin a model version (default: newest)"}
    )
    model_key: str | None = field(
        default=None,
        metadata={
            "help": "secret that signs and verifies model manifests (share it between web "
            "nodes and workers; default: a key file, see SOCIALPULSE_MODEL_KEY_FILE)"
        },
    )
    model_key_file: str | None = field(
        default=None,
        metadata={
            "help": "file holding the model signing key, created when missing (default: "
            "`model_signing.key` in the instance folder, outside the model folder)"
        },
    )
    mlflow_tracking_uri: str | None = field(
        default=None,
        metadata={
            "help": "also log every training run to this MLflow tracking URI, when mlflow "
            "is installed (the local experiment log is always kept)"
        },
    )
    mlflow_experiment: str = field(
        default="socialpulse", metadata={"help": "MLflow experiment of the training runs"}
    )
    model_check_interval: float = field(
        default=30.0,
        metadata={"help": "seconds between looks for a newer model version (Kafka mode)"},
    )
    batch_max_posts: int = field(default=500, metadata={"help": "micro-batch size cap"})
    batch_max_wait: float = field(
        default=0.05, metadata={"help": "seconds a micro-batch may wait to fill"}
    )
    max_text_length: int = field(default=5000, metadata={"help": "longest post text accepted"})
    max_clock_skew: float = field(
        default=300.0,
        metadata={
            "help": "seconds a post's time may be ahead of the clock; later posts go to the "
            "dead letters"
        },
    )
    api_max_batch: int = field(default=100, metadata={"help": "most posts in one API call"})
    api_max_chars: int = field(
        default=100_000,
        metadata={"help": "most characters of text in one API call, all posts together"},
    )
    max_body_bytes: int = field(default=1_000_000, metadata={"help": "largest request body"})
    read_timeout: float = field(
        default=10.0,
        metadata={
            "help": "seconds a client may take to send a request's headers, or to send or "
            "read any one chunk, before its connection is closed"
        },
    )
    shutdown_grace: float = field(
        default=10.0,
        metadata={"help": "seconds in-flight requests get to finish after SIGTERM"},
    )
    max_connections: int = field(
        default=2000,
        metadata={"help": "most connections one web node holds at once (viewers included)"},
    )
    stall_after: float = field(
        default=30.0,
        metadata={"help": "seconds without a finished batch before readiness reports a stall"},
    )
    emit_interval: float = field(
        default=0.125,
        metadata={
            "help": "shortest time between dashboard updates (s): a change after a lull is "
            "sent at once, a busy stream once per interval"
        },
    )
    wordcloud_interval: float = field(
        default=10.0,
        metadata={
            "help": "seconds between word-cloud renders (the cloud shows every kept window, "
            "so it changes slowly; each render costs about 0.2 s of CPU)"
        },
    )
    window_seconds: int = field(
        default=10, metadata={"help": "event-time window of the sentiment chart (s)"}
    )
    windows_kept: int = field(default=60, metadata={"help": "windows the dashboard keeps"})
    secret_key: str | None = field(
        default=None,
        metadata={"help": "session/CSRF key (default: generated once, kept in instance/)"},
    )
    auth: str = field(
        default="auto",
        metadata={
            "help": "access control: `auto` (logins once a user exists), `required` (always), "
            "`off` (open; only on a loopback address)"
        },
    )
    metrics_token: str | None = field(
        default=None,
        metadata={
            "help": "bearer token that `/metrics` asks for when access control is on (16+ "
            "characters)"
        },
    )
    cors_origins: str | None = field(
        default=None,
        metadata={
            "help": "origins allowed on Socket.IO, comma-separated, the app's own "
            "included (default: the app's own origin only)"
        },
    )
    allowed_hosts: str | None = field(
        default=None,
        metadata={
            "help": "host names clients reach the server by, comma-separated; `.example.com` "
            "also allows its subdomains, `*` any (default: localhost names and the bound "
            "address, or the machine's name when bound to all addresses)"
        },
    )
    proxy_hops: int = field(
        default=0,
        metadata={
            "help": "reverse proxies in front whose X-Forwarded-* headers are trusted "
            "(client address, HTTPS, host)"
        },
    )
    alert_window: float = field(
        default=600.0, metadata={"help": "event-time window of the alert detectors (seconds)"}
    )
    alert_lateness: float = field(
        default=60.0,
        metadata={"help": "how late (event time) a post may arrive and still count for alerts"},
    )
    alert_keywords: str = field(
        default="",
        metadata={"help": "words watched as alert subjects of their own, comma-separated"},
    )
    alert_rules_file: str | None = field(
        default=None,
        metadata={
            "help": "JSON file of alert rule overrides, edited on the Alerts page by admins "
            "(default: `alert_rules.json` in the instance folder)"
        },
    )
    alert_history: int = field(
        default=1000, metadata={"help": "alerts each node keeps for the page and the API"}
    )
    webhook_urls: str = field(
        default="",
        metadata={
            "help": "receivers of every alert (JSON POST), comma-separated; set it on one node only"
        },
    )
    webhook_secret: str | None = field(
        default=None,
        metadata={"help": "HMAC-SHA256 key of the webhooks' signature header (16+ characters)"},
    )
    instance_dir: str = field(
        default=str(PROJECT_ROOT / "instance"), metadata={"help": "per-instance state folder"}
    )
    log_level: str = field(default="INFO", metadata={"help": "logging level"})
    kafka_bootstrap: str | None = field(
        default=None, metadata={"help": "Kafka brokers, e.g. 127.0.0.1:9092 (unset: embedded)"}
    )
    kafka_client: str = field(
        default=DEFAULT_KAFKA_CLIENT,
        metadata={"help": "Kafka client library: `confluent` (librdkafka) or `kafka-python`"},
    )
    topic_posts: str = field(default="posts", metadata={"help": "topic of raw posts"})
    topic_scored: str = field(default="posts.scored", metadata={"help": "topic of scored posts"})
    topic_dlq: str = field(default="posts.dlq", metadata={"help": "dead-letter topic"})
    topic_socketio: str = field(
        default="socketio",
        metadata={"help": "topic carrying Socket.IO messages between web nodes (JSON)"},
    )
    topic_partitions: int = field(default=6, metadata={"help": "partitions of `posts`"})
    consumer_group: str = field(
        default="socialpulse-workers", metadata={"help": "consumer group of the workers"}
    )
    archive_url: str | None = field(
        default=None,
        metadata={
            "help": "database of the archive: `sqlite:///path` or `postgresql://user:password@"
            "host:port/db`; `off` keeps no archive (default: `archive.sqlite3` in the instance "
            "folder)"
        },
    )
    archive_retention_days: float = field(
        default=30.0,
        metadata={"help": "days archived posts and dead letters are kept (0 = forever)"},
    )
    archive_buffer: int = field(
        default=50_000,
        metadata={
            "help": "posts and dead letters held in memory while the archive database is "
            "unavailable; when full, the embedded stream waits (nothing is dropped)"
        },
    )
    archive_group: str = field(
        default="socialpulse-archive",
        metadata={"help": "consumer group of `socialpulse archive`"},
    )
    explore_max_rows: int = field(
        default=200_000,
        metadata={
            "help": "most posts Explore draws charts of (a larger set is refused with 400: "
            "narrow the filters); the table and exports have no such limit"
        },
    )
    explore_timeout: float = field(
        default=5.0,
        metadata={
            "help": "seconds one Explore query (a page, a chart, an export chunk) may run "
            "before it is stopped and refused with 400"
        },
    )
    replay_dir: str | None = field(
        default=None,
        metadata={
            "help": "folder of files the Replay page offers (default: `replays` in the "
            "instance folder); the page replays no file outside it"
        },
    )
    replay_max_sessions: int = field(
        default=2, metadata={"help": "replay sessions one server holds at once"}
    )
    replay_keep: float = field(
        default=600.0,
        metadata={"help": "seconds an ended replay stays viewable before it is removed"},
    )
    replay_idle: float = field(
        default=1800.0, metadata={"help": "seconds a replay may stay paused before it is stopped"}
    )
    replay_order_bound: int = field(
        default=200_000,
        metadata={
            "help": "posts a replay holds to put them in event-time order: a file up to this "
            "many rows is sorted whole, a longer input goes through a reordering buffer this size"
        },
    )
    audience_min_posts: int = field(
        default=5, metadata={"help": "posts an author needs to be placed in an audience segment"}
    )
    audience_k: int = field(
        default=0,
        metadata={"help": "number of audience segments (0: chosen by silhouette, 2 to max)"},
    )
    audience_k_max: int = field(
        default=8, metadata={"help": "most audience segments tried when choosing k"}
    )
    audience_weights: str = field(
        default="interest=1,activity=1,engagement=1",
        metadata={"help": "weights of the audience feature blocks (0 switches one off)"},
    )
    audience_refit_interval: float = field(
        default=900.0,
        metadata={"help": "seconds between audience refits in the service (0: by command only)"},
    )
    audience_max_authors: int = field(
        default=20_000,
        metadata={
            "help": "most author profiles kept (about 4.1 KB each); the least recently seen go"
        },
    )
    audience_idle_days: float = field(
        default=30.0,
        metadata={"help": "days (event time) after which an author not seen again is dropped"},
    )
    audience_min_rec_posts: int = field(
        default=20, metadata={"help": "fewest posts a segment recommendation may rest on"}
    )
    audience_max_texts: int = field(
        default=20, metadata={"help": "most post texts in one audience assign request"}
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Read the environment, then apply `overrides` (flags) that are not None."""
        environ = os.environ if environ is None else environ
        for old, new in RENAMED.items():
            if environ.get(PREFIX + old):
                raise ConfigError(f"{PREFIX}{old} is now {PREFIX}{new}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _convert(f.name, f.type, raw)
        return cls(**values).with_overrides(**overrides)

    def with_overrides(self, **overrides: Any) -> Config:
        """A copy with `overrides` that are not None applied, validated like `from_env`."""
        config = replace(self, **{k: v for k, v in overrides.items() if v is not None})
        config.validate()
        return config

    def validate(self) -> None:
        if self.source not in ("synthetic", "file"):
            raise ConfigError(f"source must be 'synthetic' or 'file', not {self.source!r}")
        if self.kafka_client not in KAFKA_CLIENTS:
            raise ConfigError(
                f"kafka_client must be one of {', '.join(KAFKA_CLIENTS)}, not {self.kafka_client!r}"
            )
        if self.source == "file" and not self.file:
            raise ConfigError("source 'file' needs SOCIALPULSE_FILE (or --file)")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port {self.port} is out of range")
        for name in (
            "batch_max_posts",
            "max_text_length",
            "api_max_batch",
            "api_max_chars",
            "max_body_bytes",
            "window_seconds",
            "windows_kept",
            "topic_partitions",
            "max_connections",
            "read_timeout",
            "shutdown_grace",
            "model_check_interval",
            "archive_buffer",
            "explore_max_rows",
            "explore_timeout",
            "replay_max_sessions",
            "replay_keep",
            "replay_idle",
            "replay_order_bound",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.rate < 0 or self.emit_interval <= 0 or self.wordcloud_interval <= 0:
            raise ConfigError("rate must be ≥ 0 and intervals positive")
        if self.model_key is not None and len(self.model_key.encode()) < 16:
            raise ConfigError("model_key must be at least 16 bytes long")
        if self.stall_after <= 0:
            raise ConfigError("stall_after must be positive")
        if self.max_clock_skew < 0:
            raise ConfigError("max_clock_skew must be ≥ 0 seconds")
        if self.batch_max_wait < 0:
            raise ConfigError("batch_max_wait must be ≥ 0 seconds")
        if self.proxy_hops < 0:
            raise ConfigError("proxy_hops must be ≥ 0")
        if self.auth not in AUTH_MODES:
            raise ConfigError(f"auth must be one of {', '.join(AUTH_MODES)}, not {self.auth!r}")
        if self.metrics_token is not None and len(self.metrics_token) < 16:
            raise ConfigError("metrics_token must be at least 16 characters long")
        if self.alert_window <= 0 or self.alert_lateness < 0 or self.alert_history <= 0:
            raise ConfigError("alert_window and alert_history must be positive, lateness ≥ 0")
        if not 1 <= self.audience_min_posts <= 10_000 or self.audience_max_authors < 10:
            raise ConfigError("audience_min_posts must be 1..10000, audience_max_authors ≥ 10")
        if self.audience_k < 0 or self.audience_k == 1 or not 2 <= self.audience_k_max <= 50:
            raise ConfigError("audience_k must be 0 (auto) or ≥ 2, audience_k_max 2..50")
        if self.audience_refit_interval < 0 or self.audience_idle_days < 0:
            raise ConfigError("audience_refit_interval and audience_idle_days must be ≥ 0")
        if self.audience_min_rec_posts < 1 or not 1 <= self.audience_max_texts <= 1000:
            raise ConfigError("audience_min_rec_posts must be ≥ 1, audience_max_texts 1..1000")
        try:
            FeatureWeights.parse(self.audience_weights)
        except ValueError as exc:
            raise ConfigError(f"audience_weights: {exc}") from exc
        if self.webhook_urls.strip():
            if not self.webhook_secret or len(self.webhook_secret) < 16:
                raise ConfigError("webhook_urls need webhook_secret (16+ characters) to sign")
            for url in self.webhook_list:
                try:
                    check_url(url)
                except ValueError as exc:
                    raise ConfigError(str(exc)) from exc
        if self.archive_retention_days < 0:
            raise ConfigError("archive_retention_days must be ≥ 0 (0 keeps everything)")
        url = self.archive_database_url
        if url is not None and not url.startswith(ARCHIVE_SCHEMES):
            raise ConfigError(
                "archive_url must start with sqlite:/// or postgresql:// (or be `off`), "
                f"not {url.split(':', 1)[0]!r}"
            )

    @property
    def topics(self) -> Topics:
        return Topics(
            self.topic_posts,
            self.topic_scored,
            self.topic_dlq,
            self.topic_partitions,
            self.topic_socketio,
        )

    def manifest_key(self) -> ManifestKey:
        """The key model manifests are signed and verified with."""
        if self.model_key:
            return ManifestKey(self.model_key.encode())
        return ManifestKey.from_file(
            self.model_key_file or Path(self.instance_dir) / "model_signing.key"
        )

    @property
    def archive_database_url(self) -> str | None:
        """The archive's SQLAlchemy URL; None when the archive is off."""
        if self.archive_url is None:
            return f"sqlite:///{Path(self.instance_dir).resolve() / 'archive.sqlite3'}"
        if self.archive_url.strip().lower() in ("off", "none"):
            return None
        return self.archive_url.strip()

    @property
    def replay_folder(self) -> Path:
        """The folder of files the Replay page may replay."""
        return Path(self.replay_dir) if self.replay_dir else Path(self.instance_dir) / "replays"

    @property
    def accounts_path(self) -> Path:
        """The SQLite file of users and API tokens."""
        return Path(self.instance_dir) / "accounts.sqlite3"

    @property
    def host_names(self) -> list[str]:
        """Host names requests may carry (see `allowed_hosts`)."""
        if self.allowed_hosts:
            names = [h.strip() for h in self.allowed_hosts.split(",") if h.strip()]
            if names:
                return names
        return default_allowed_hosts(self.host)

    @property
    def webhook_list(self) -> list[str]:
        return [u.strip() for u in self.webhook_urls.split(",") if u.strip()]

    @property
    def alert_keyword_list(self) -> list[str]:
        return [w.strip().lower() for w in self.alert_keywords.split(",") if w.strip()]

    @property
    def allowed_origins(self) -> list[str] | None:
        """Socket.IO origins: None means the app's own origin only."""
        if not self.cors_origins:
            return None
        # An empty list would reject every origin, the app's own included.
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()] or None


def _convert(name: str, annotation: Any, raw: str) -> Any:
    kind = str(annotation)
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            value = float(raw)
            if not math.isfinite(value):  # nan/inf pass every range check below
                raise ValueError(raw)
            return value
    except ValueError as exc:
        raise ConfigError(f"{PREFIX}{name.upper()}={raw!r} is not a number") from exc
    return raw


def documented_settings() -> list[tuple[str, Any, str]]:
    """(environment variable, default, help) of every setting, for docs and `--help`."""
    return [
        (PREFIX + f.name.upper(), f.default, f.metadata.get("help", "")) for f in fields(Config)
    ]
