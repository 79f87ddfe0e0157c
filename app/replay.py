"""Replay sessions: a recorded stream scored again, apart from the live one.

Each session has its own source (a file, an archived time range or a Kafka time range, in
event-time order), its own runner and its own aggregates, and its updates go to its own
Socket.IO room (namespace `/replay`); nothing reaches the live dashboard, its aggregates or
the archive unless the session was started with `to_archive`.

A session scores with one published model version, loaded from the model folder when it
starts, and learns in one of two explicit ways (`ReplaySpec.learning`):

- `frozen` (the default): it never learns or refits (no topic births or merges, no online
  updates);
- `checkpoints`: the topic clusterer learns at event-time checkpoints, from the posts
  since the last one, synchronously (a refit it starts is waited for and swapped in
  before the next post is scored). A checkpoint falls before the first post of each new
  period of `learn_every` seconds of event time, and after every `LEARN_MAX_POSTS` posts.

Either way what a post is scored with depends only on the posts before it in event-time
order, never on micro-batch boundaries, pacing or thread timing: the same input, version
and settings give the same scores and the same event-time aggregates at any speed and
with any micro-batch size.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from app.aggregates import LiveAggregates, fit_windows
from app.config import Config
from app.live import DashboardSink
from models.clustering import topic_document
from models.pipeline import ScoringPipeline
from streaming.records import Post, ScoredPost
from streaming.replay import (
    OrderedInput,
    ReplaySource,
    check_speed,
    file_items,
    in_event_order,
)
from streaming.runner import StreamRunner
from streaming.sinks import DeadLetter, Sink
from streaming.sources import ColumnMapping

log = logging.getLogger(__name__)

SOURCES = ("file", "archive", "kafka")
LEARNING = ("frozen", "checkpoints")
LEARN_MAX_POSTS = 5000  # a checkpoint after this many posts, whatever their times
MAX_RANGE_SECONDS = 366 * 86400.0  # an archive or Kafka replay covers at most a year
LETTERS_SHOWN = 20
SESSION_ID_RE = re.compile(r"^[0-9a-f]{16}$")
EMIT_EVERY = 0.25  # s between a session's updates


class ReplayError(ValueError):
    """A replay that cannot start or be controlled; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ReplaySpec:
    """What to replay, and how.

    Attributes:
        source: `file`, `archive` or `kafka`.
        path: the file (source `file`).
        mapping, encoding: how to read the file.
        start, end: the event-time range in epoch seconds (`archive`; for `kafka`, the
            message timestamps).
        topic: the Kafka topic of raw posts.
        speed: ×N of the original pace; None for as fast as possible.
        to_archive: also store the scored posts in the archive (off: the replay is kept
            apart from the live archive).
        model_version: the version to score with (default: the one the server serves).
        batch_max_posts: micro-batch size (does not change results).
        learning: `frozen` or `checkpoints` (see the module's docstring).
        learn_every: seconds of event time between learning checkpoints.
    """

    source: str
    path: str | None = None
    mapping: ColumnMapping = field(default_factory=ColumnMapping)
    encoding: str = "utf-8"
    start: float | None = None
    end: float | None = None
    topic: str | None = None
    speed: float | None = None
    to_archive: bool = False
    model_version: str | None = None
    batch_max_posts: int | None = None
    learning: str = "frozen"
    learn_every: float = 3600.0

    def validated(self) -> ReplaySpec:
        """This spec, or ReplayError saying what is wrong."""
        if self.source not in SOURCES:
            raise ReplayError(f"unknown source {self.source!r}: use one of {', '.join(SOURCES)}")
        try:
            check_speed(self.speed)
        except ValueError as exc:
            raise ReplayError(str(exc)) from exc
        if self.source == "file" and not self.path:
            raise ReplayError("a file replay needs a file")
        if self.source in ("archive", "kafka"):
            if self.start is None or self.end is None:
                raise ReplayError("an archive or Kafka replay needs a time range (start and end)")
            if not (math.isfinite(self.start) and math.isfinite(self.end)):
                raise ReplayError("the time range must be finite")
            if self.end <= self.start:
                raise ReplayError("the time range must end after it starts")
            if self.end - self.start > MAX_RANGE_SECONDS:
                raise ReplayError("the time range may cover at most 366 days")
        if self.learning not in LEARNING:
            raise ReplayError(f"learning must be one of {', '.join(LEARNING)}")
        if not (math.isfinite(self.learn_every) and 1 <= self.learn_every <= 366 * 86400):
            raise ReplayError("learn_every must be between 1 second and 366 days")
        if self.batch_max_posts is not None and not 1 <= self.batch_max_posts <= 10_000:
            raise ReplayError("batch_max_posts must be between 1 and 10,000")
        return self


class CheckpointLearningScorer:
    """Scores with `pipeline` without learning, and lets its topic clusterer learn at
    event-time checkpoints (see the module's docstring), so results do not depend on how
    the posts were cut into micro-batches."""

    def __init__(self, pipeline: ScoringPipeline, every: float) -> None:
        self.pipeline = pipeline
        self.every = every
        self.model_version = pipeline.model_version
        self.checkpoints = 0
        self._period: int | None = None
        self._pending: list[str] = []

    def score_batch(
        self,
        posts: Sequence[Post],
        learn: bool = False,
        received_at: Sequence[float] | None = None,
    ) -> list[ScoredPost]:
        received = list(received_at) if received_at is not None else [time.time()] * len(posts)
        scored: list[ScoredPost] = []
        start = 0
        for index, post in enumerate(posts):
            period = math.floor(post.created_at.timestamp() / self.every)
            new_period = self._period is not None and period > self._period
            if new_period or len(self._pending) + index - start >= LEARN_MAX_POSTS:
                scored += self._score(posts[start:index], received[start:index])
                start = index
                self._learn()
            if self._period is None or period > self._period:
                self._period = period  # a late post belongs to the current period
        scored += self._score(posts[start:], received[start:])
        return scored

    def _score(self, posts: Sequence[Post], received: Sequence[float]) -> list[ScoredPost]:
        if not posts:
            return []
        self._pending += [topic_document(p) for p in posts]
        return self.pipeline.score_batch(posts, learn=False, received_at=received)

    def _learn(self) -> None:
        """A checkpoint: learn from the posts since the last one, refits included."""
        if not self._pending:
            return
        clusterer = self.pipeline.clusterer  # the session's own: no other thread uses it
        clusterer.partial_fit(self._pending)
        clusterer.wait_for_refit(swap=True)
        self._pending = []
        self.checkpoints += 1


class DeadLetterLog(Sink):
    """Counts a replay's dead letters and keeps the newest, with where each came from."""

    def __init__(self) -> None:
        self.count = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=LETTERS_SHOWN)

    def write(self, scored: Sequence[ScoredPost]) -> None:
        pass

    def reject(self, letters: Sequence[DeadLetter]) -> None:
        self.count += len(letters)
        for letter in letters[-LETTERS_SHOWN:]:
            self.recent.append({"reason": letter.reason, "position": dict(letter.position)})


class ScoreDigestSink(Sink):
    """A running SHA-256 of every post's scores, in the order scored: two replays that
    scored the same posts alike have the same digest (wall-clock figures left out)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.count = 0

    def write(self, scored: Sequence[ScoredPost]) -> None:
        for s in scored:
            self._hash.update(orjson.dumps(score_record(s)))
            self.count += 1

    def reject(self, letters: Sequence[DeadLetter]) -> None:
        pass

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def score_record(scored: ScoredPost) -> list[Any]:
    """What a post was scored: the fields a replay must reproduce."""
    s = scored.sentiment
    return [
        scored.post.id,
        s.compound,
        s.pos,
        s.neu,
        s.neg,
        s.label,
        s.calibrated_label,
        s.calibrated_probability,
        scored.cluster.id,
        scored.cluster.label,
        scored.engagement.predicted,
        scored.engagement.band,
        scored.model_version,
    ]


def aggregates_digest(aggregates: LiveAggregates) -> str:
    """SHA-256 of the event-time aggregates (windows, clusters, trending, totals), without
    the wall-clock figures (rate, latency)."""
    state = aggregates.state()
    stats = state["stats"]
    payload = {
        "series": state["sentiment_series"],
        "clusters": state["clusters"],
        "trending": state["trending"],
        "total": stats["total"],
        "dead_lettered": stats["dead_lettered"],
        "mean": stats["mean_sentiment"],
        "window": aggregates.window_seconds,
    }
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


class ReplaySession:
    """One replay: its source, runner, aggregates and state."""

    def __init__(
        self,
        session_id: str,
        spec: ReplaySpec,
        ordered: OrderedInput,
        pipeline: ScoringPipeline,
        config: Config,
        extra_sinks: Sequence[Sink] = (),
        stop_words: frozenset[str] = frozenset(),
        offload: Callable[[Any], Any] | None = None,
    ) -> None:
        self.id = session_id
        self.spec = spec
        self.source = ReplaySource(ordered, spec.speed, name=f"replay-{spec.source}")
        window, kept = fit_windows(ordered.span, config.window_seconds, config.windows_kept)
        # Trending counts the whole shown span: a replay is looked at as a whole.
        self.aggregates = LiveAggregates(window, kept, stop_words, trending_windows=kept)
        self.letters = DeadLetterLog()
        self.digest = ScoreDigestSink()
        self.model_version = pipeline.model_version
        sinks: list[Sink] = [
            DashboardSink(self.aggregates),
            self.letters,
            self.digest,
            *extra_sinks,
        ]
        source: Any = self.source
        scorer: Any = pipeline
        self.learner = None
        if spec.learning == "checkpoints":
            scorer = self.learner = CheckpointLearningScorer(pipeline, spec.learn_every)
        if offload is not None:  # under gevent: reads and scoring on native threads
            source, scorer = offload(self.source), offload(scorer)
        self.runner = StreamRunner(
            source,
            scorer,
            sinks,
            batch_max_posts=spec.batch_max_posts or config.batch_max_posts,
            batch_max_wait=config.batch_max_wait,
            max_text_length=config.max_text_length,
            learn=False,  # frozen, or learning at checkpoints: see the module's docstring
        )
        self.state = "running"
        self.error: str | None = None
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.touched = time.monotonic()  # last start, pause, resume or viewer

    @property
    def active(self) -> bool:
        return self.state in ("running", "paused")

    def run(self) -> None:
        """Score the replay to its end (or its stop); the session's thread."""
        try:
            while True:
                handled = self.runner.run_once()
                if not handled and self.runner.source.exhausted:
                    break
            self.runner.settle()
            self.state = "stopped" if self.source.stopped else "finished"
        except Exception as exc:  # the session fails; the server goes on
            log.exception("replay %s failed", self.id)
            self.error = f"{type(exc).__name__}: {exc}"
            self.state = "failed"
        finally:
            self.ended_at = time.time()
            close = getattr(self.source.ordered.items, "close", None)
            if close is not None:
                close()

    def pause(self) -> None:
        if self.state == "running":
            self.source.pause()
            self.state = "paused"
        self.touched = time.monotonic()

    def resume(self) -> None:
        if self.state == "paused":
            self.source.resume()
            self.state = "running"
        self.touched = time.monotonic()

    def stop(self) -> None:
        self.source.stop()
        self.touched = time.monotonic()

    def status(self) -> dict[str, Any]:
        """What the page and the CLI show: state, progress, replay clock, dead letters."""
        spec = self.spec
        return {
            "id": self.id,
            "state": self.state,
            "error": self.error,
            "source": spec.source,
            "input": Path(spec.path).name if spec.path else spec.topic,
            "start": spec.start,
            "end": spec.end,
            "to_archive": spec.to_archive,
            "model_version": self.model_version,
            "learning": spec.learning,
            "learn_every": spec.learn_every if spec.learning == "checkpoints" else None,
            "checkpoints": self.learner.checkpoints if self.learner is not None else 0,
            "progress": self.source.progress(),
            "scored": self.digest.count,
            "dead_lettered": self.letters.count,
            "dead_letters": list(self.letters.recent),
            "window_seconds": self.aggregates.window_seconds,
            "windows_kept": self.aggregates.windows_kept,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }

    def digests(self) -> dict[str, str]:
        """Fingerprints of the scores and of the aggregates (see `ScoreDigestSink`)."""
        return {"scores": self.digest.hexdigest(), "aggregates": aggregates_digest(self.aggregates)}


def open_input(spec: ReplaySpec, config: Config, order_bound: int) -> OrderedInput:
    """The replay's items in event-time order; ReplayError when the input cannot be read."""
    if spec.source == "file":
        path = Path(spec.path or "")
        if not path.is_file():
            raise ReplayError(f"no such file: {path.name}", 404)
        try:
            from streaming.sources import file_suffix

            file_suffix(path)
        except ValueError as exc:
            raise ReplayError(str(exc)) from exc
        return in_event_order(file_items(path, spec.mapping, spec.encoding), order_bound)
    assert spec.start is not None and spec.end is not None
    if spec.source == "archive":
        from archive.replay import archive_input
        from archive.store import ArchiveStore

        url = config.archive_database_url
        if url is None:
            raise ReplayError("this server keeps no archive (SOCIALPULSE_ARCHIVE_URL=off)", 409)
        store = ArchiveStore(url)
        try:
            return archive_input(store, spec.start, spec.end, close_store=True)
        except Exception as exc:
            store.close()
            raise ReplayError(f"cannot read the archive: {type(exc).__name__}: {exc}", 503) from exc
    if not config.kafka_bootstrap:
        raise ReplayError("no Kafka here: set SOCIALPULSE_KAFKA_BOOTSTRAP", 409)
    from streaming.kafka_replay import KafkaRangeReader

    topic = spec.topic or config.topic_posts
    try:
        reader = KafkaRangeReader(config.kafka_bootstrap, topic, spec.start, spec.end)
    except ValueError as exc:
        raise ReplayError(str(exc), 404) from exc
    except Exception as exc:
        raise ReplayError(f"cannot read Kafka: {type(exc).__name__}: {exc}", 503) from exc
    ordered = in_event_order(reader.items(), order_bound)
    ordered.total = reader.total
    ordered.first = ordered.first if ordered.first is not None else spec.start
    ordered.last = ordered.last if ordered.last is not None else spec.end
    return ordered


class ReplayManager:
    """The replay sessions of one server: at most `max_sessions` at once (ended ones make
    room), each removed `keep_seconds` after it ended, and one left paused or unwatched for
    `idle_seconds` is stopped.

    Args:
        config: the server's settings.
        load_pipeline: the scoring pipeline of a model version (None: the served one).
        start_task: runs a function in the background (Socket.IO's, or a thread).
        emit: sends a session's update to its room, if there are viewers.
        archive_sink: where `to_archive` sessions also write (None: not allowed here).
        offload: wraps sources and scorers to run on native threads (under gevent).
        blocking: calls a function that blocks off the event loop (under gevent).
    """

    def __init__(
        self,
        config: Config,
        load_pipeline: Callable[[str | None], ScoringPipeline],
        start_task: Callable[..., Any] | None = None,
        emit: Callable[[str, dict], None] | None = None,
        archive_sink: Sink | None = None,
        stop_words: frozenset[str] = frozenset(),
        offload: Callable[[Any], Any] | None = None,
        blocking: Callable[..., Any] | None = None,
    ) -> None:
        self.config = config
        # Runs what blocks (reading and sorting the input) off the event loop, if any.
        self.blocking = blocking or (lambda function, *args: function(*args))
        self.load_pipeline = load_pipeline
        self.start_task = start_task or _thread
        self.emit = emit
        self.archive_sink = archive_sink
        self.stop_words = stop_words
        self.offload = offload
        self.max_sessions = config.replay_max_sessions
        self.keep_seconds = config.replay_keep
        self.idle_seconds = config.replay_idle
        self.order_bound = config.replay_order_bound
        self.sessions: dict[str, ReplaySession] = {}
        self._lock = threading.Lock()
        self._loop_started = False
        self._sent: dict[str, tuple] = {}
        self._stop = threading.Event()

    def start(self, spec: ReplaySpec) -> ReplaySession:
        """Open the input and start scoring it; ReplayError when it cannot start."""
        spec = spec.validated()
        if spec.to_archive and self.archive_sink is None:
            raise ReplayError("this server writes no archive here: replay without to_archive", 409)
        with self._lock:
            self._expire_locked(time.monotonic())
            if len(self.sessions) >= self.max_sessions:
                ended = sorted(
                    (s for s in self.sessions.values() if not s.active), key=lambda s: s.started_at
                )
                for old in ended[: len(self.sessions) - self.max_sessions + 1]:
                    self.sessions.pop(old.id, None)
            if len(self.sessions) >= self.max_sessions:
                raise ReplayError(
                    f"{self.max_sessions} replays are running already: stop one first", 429
                )
            session_id = secrets.token_hex(8)
            # Held until the session exists: a second start cannot take the same place.
            self.sessions[session_id] = _Reserved  # type: ignore[assignment]
        try:
            ordered = self.blocking(open_input, spec, self.config, self.order_bound)
            try:
                pipeline = self.load_pipeline(spec.model_version)
            except Exception as exc:
                raise ReplayError(
                    f"cannot load model version {spec.model_version}: {exc}", 404
                ) from exc
            extra = [self.archive_sink] if spec.to_archive and self.archive_sink else []
            session = ReplaySession(
                session_id,
                spec,
                ordered,
                pipeline,
                self.config,
                extra,
                self.stop_words,
                self.offload,
            )
        except BaseException:
            with self._lock:
                self.sessions.pop(session_id, None)
            raise
        with self._lock:
            self.sessions[session_id] = session
        self.start_task(session.run)
        self._ensure_loop()
        log.info("replay %s started: %s", session_id, session.status()["input"])
        return session

    def get(self, session_id: str) -> ReplaySession:
        """The session, or ReplayError 404."""
        session = self.sessions.get(session_id) if SESSION_ID_RE.match(session_id or "") else None
        if not isinstance(session, ReplaySession):
            raise ReplayError("no such replay (it may have ended and expired)", 404)
        return session

    def list(self) -> list[ReplaySession]:
        return [s for s in self.sessions.values() if isinstance(s, ReplaySession)]

    def expire(self, now: float | None = None) -> None:
        with self._lock:
            self._expire_locked(time.monotonic() if now is None else now)

    def _expire_locked(self, now: float) -> None:
        for session in list(self.sessions.values()):
            if not isinstance(session, ReplaySession):
                continue
            if session.state == "paused" and now - session.touched > self.idle_seconds:
                log.info("replay %s paused for too long: stopped", session.id)
                session.stop()
            ended = session.ended_at
            if not session.active and ended is not None and time.time() - ended > self.keep_seconds:
                self.sessions.pop(session.id, None)
                self._sent.pop(session.id, None)

    def current_state(self, session_id: str) -> dict | None:
        """What a viewer of the session gets on joining; None for an unknown session."""
        try:
            session = self.get(session_id)
        except ReplayError:
            return None
        session.touched = time.monotonic()
        payload = session.aggregates.state()
        payload["posts"] = session.aggregates.latest_posts()
        return _decorate(payload, session)

    def emit_once(self) -> None:
        """Send each session whose state changed its update."""
        for session in self.list():
            progress = session.source.progress()
            key = (session.aggregates.version, session.state, progress["handed_out"])
            if self._sent.get(session.id) == key:
                continue
            self._sent[session.id] = key
            payload = _decorate(session.aggregates.take_update(), session)
            if self.emit is not None:
                self.emit(session.id, payload)

    def _ensure_loop(self) -> None:
        if self._loop_started or self.emit is None:
            return
        self._loop_started = True
        self.start_task(self._loop)

    def _loop(self) -> None:
        while not self._stop.wait(EMIT_EVERY):
            try:
                self.expire()
                self.emit_once()
            except Exception:
                log.exception("replay updates failed")

    def close(self) -> None:
        """Stop every session and the update loop."""
        self._stop.set()
        for session in self.list():
            session.stop()


class _Reserved:
    """A place held for a session being opened."""


def _decorate(payload: dict, session: ReplaySession) -> dict:
    payload["stats"]["source"] = session.source.name
    payload["replay"] = session.status()
    payload["problems"] = []
    payload["wordcloud"] = None
    return payload


def _thread(function: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=function, daemon=True, name="replay")
    thread.start()
    return thread


def parse_time(text: str | float | None, name: str) -> float | None:
    """A time given by a user: ISO 8601 (UTC when no offset is given) or seconds since the
    epoch; None when empty; ReplayError saying what is wrong otherwise."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        raw = str(text).strip()
        if len(raw) > 64:
            raise ReplayError(f"{name} is too long to be a time")
        try:
            value = float(raw)
        except ValueError:
            from datetime import UTC, datetime

            try:
                parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                raise ReplayError(
                    f"{name} {raw!r} is not a time: use ISO 8601 (2015-02-17T00:00:00Z) or "
                    "seconds since the epoch"
                ) from None
            value = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(value) or not 0 <= value < 32503680000:  # up to the year 3000
        raise ReplayError(f"{name} is out of range")
    return value


EXTENSION = "socialpulse_replays"


def install(app: Any, services: Any) -> ReplayManager:
    """Hang a replay manager off `app`, its Socket.IO namespace and its page."""
    from pathlib import Path as _Path

    from app.live import REPLAY_NAMESPACE, ReplayNamespace, replay_room
    from app.server import OffLoopScorer, OffLoopSource, gevent_active, off_loop
    from app.views import replay as replay_view
    from app.wordcloud_image import stop_words
    from models.registry import load_bundle

    config: Config = services.config
    socketio = services.hub.socketio

    def load_pipeline(version: str | None) -> ScoringPipeline:
        # The published artifacts of the version, never the live pipeline's learned state.
        wanted = version or services.pipeline.model_version
        return off_loop(load_bundle, _Path(config.model_dir), wanted, services.model_key).pipeline()

    def emit(session_id: str, payload: dict) -> None:
        socketio.emit(
            "update",
            payload,
            namespace=REPLAY_NAMESPACE,
            to=replay_room(session_id),
            ignore_queue=True,  # a replay lives on the node that runs it
        )

    def offload(part: Any) -> Any:
        return OffLoopScorer(part) if hasattr(part, "score_batch") else OffLoopSource(part)

    manager = ReplayManager(
        config,
        load_pipeline,
        start_task=socketio.start_background_task,
        emit=emit,
        archive_sink=services.archive_sink,
        stop_words=stop_words(),
        offload=offload if gevent_active() else None,
        blocking=off_loop,
    )
    app.extensions[EXTENSION] = manager
    socketio.on_namespace(ReplayNamespace(manager.current_state))
    app.register_blueprint(replay_view.bp)
    return manager
