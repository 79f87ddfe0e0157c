"""Socket.IO namespace /live: the dashboard's batched updates, pushed on a timer."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import socketio as python_socketio
from flask import request, session
from flask_login import current_user
from flask_socketio import Namespace, SocketIO, emit, join_room

from app.aggregates import LiveAggregates
from app.alerting import AlertFilter, LiveAlerts
from app.auth import access, socket_allowed
from app.wordcloud_image import WordcloudRenderer
from archive.store import dead_letter_id
from models.clustering import TopicEvent
from streaming.records import ScoredPost
from streaming.sinks import DeadLetter, Sink

log = logging.getLogger(__name__)

NAMESPACE = "/live"
UPDATE_EVENT = "update"
SIGNED_OUT_EVENT = "signed_out"
EMIT_TICK = 0.02  # how often the emitter looks for news: the most a change waits after a lull
ALERTS_SHOWN = 20  # newest alerts a dashboard gets when it connects
TOPIC_EVENTS_SHOWN = 12  # newest topic births, merges and retirements on the dashboard
NEW_TOPIC_SECONDS = 600.0  # a topic born this recently is marked new


class KafkaQueueManager(python_socketio.KafkaManager):
    """python-socketio's Kafka message queue between web nodes (JSON messages, never
    pickle), connecting on first use and retrying, so a node starts and serves through a
    broker outage. `ensure_channel` creates the channel topic (brokers here do not create
    topics on their own)."""

    def __init__(self, bootstrap: str, channel: str, ensure_channel: Callable[[], None]) -> None:
        python_socketio.PubSubManager.__init__(self, channel=channel)
        self.kafka_urls = [url.strip() for url in bootstrap.split(",")]
        self.ensure_channel = ensure_channel
        self.producer = None
        self.consumer = None

    def _publish(self, data) -> None:
        if self.producer is None:
            import kafka

            self.ensure_channel()
            self.producer = kafka.KafkaProducer(
                bootstrap_servers=self.kafka_urls, max_block_ms=5000
            )
        # kafka-python 3 sends bytes only (python-socketio passes the JSON text as is).
        self.producer.send(self.channel, value=self.json.dumps(data).encode())
        self.producer.flush(timeout=5)

    def _kafka_listen(self):
        import kafka

        while self.consumer is None:
            try:
                self.ensure_channel()
                self.consumer = kafka.KafkaConsumer(self.channel, bootstrap_servers=self.kafka_urls)
            except Exception as exc:  # a broker outage: wait, never spin
                log.warning("Socket.IO queue: cannot reach Kafka yet (%s); retrying", exc)
                time.sleep(2.0)
        yield from self.consumer


class DashboardSink(Sink):
    """Feeds scored posts and dead-letter counts into the dashboard's aggregates, and the
    posts into the alert detectors."""

    def __init__(self, aggregates: LiveAggregates, alerts: LiveAlerts | None = None) -> None:
        self.aggregates = aggregates
        self.alerts = alerts
        # Author profiles (app.audiences.AudienceService.observe), when kept.
        self.profiles: Callable[[Sequence[ScoredPost]], None] | None = None

    def write(self, scored: Sequence[ScoredPost]) -> None:
        fresh = self.aggregates.add(scored)
        if self.alerts is not None and fresh:
            self.alerts.write(fresh)  # a redelivered post counts once here too
        if self.profiles is not None and fresh:
            self.profiles(fresh)

    def reject(self, letters: Sequence[DeadLetter]) -> None:
        if letters:
            # Keyed as the archive keys them: a re-published dead letter counts once.
            self.aggregates.add_dead_letters(
                len(letters), [dead_letter_id(letter) for letter in letters]
            )
            if self.alerts is not None:
                self.alerts.reject(len(letters))


class LiveNamespace(Namespace):
    """Counts clients; a new client gets the current state at once."""

    def __init__(self, hub: LiveHub) -> None:
        super().__init__(NAMESPACE)
        self.hub = hub

    def on_connect(self, auth=None):
        if not socket_allowed():  # the handshake carries the page's session cookie
            raise ConnectionRefusedError("authentication required")
        with self.hub.lock:
            self.hub.clients += 1
        if current_user.is_authenticated:
            self.hub.viewers[request.sid] = (current_user.name, current_user.user.session_key)
            if "login_id" in session:  # every tab of this login, on any node
                join_room(login_room(session["login_id"]))
        # To the new client only: a namespace's emit broadcasts unless told where to.
        self.hub.emit_here(self.hub.current_state(), to=request.sid)

    def on_disconnect(self, reason=None):
        with self.hub.lock:
            self.hub.clients = max(0, self.hub.clients - 1)
        self.hub.viewers.pop(request.sid, None)


def login_room(login_id: str) -> str:
    return f"login:{login_id}"


class LiveHub:
    """Pushes an `update` when data changed and clients are connected: at once after a quiet
    spell, else `emit_interval` after the last one. So a post waits at most about that long,
    and a busy stream sends no more than one update per interval (never one per post).

    The word cloud is rendered only while clients are connected and words changed, at most
    every `wordcloud_interval` seconds, in a child process (see `app.wordcloud_image`).
    """

    def __init__(
        self,
        socketio: SocketIO,
        aggregates: LiveAggregates,
        emit_interval: float = 0.125,
        wordcloud_interval: float = 10.0,
        source_name: str = "",
    ) -> None:
        self.socketio = socketio
        self.aggregates = aggregates
        self.emit_interval = emit_interval
        self.wordcloud_interval = wordcloud_interval
        self.source_name = source_name
        self.lock = threading.Lock()
        self.clients = 0
        self.wordcloud_png: bytes | None = None
        self.renderer = WordcloudRenderer()
        self.alerts: LiveAlerts | None = None  # the node's alert detectors, when any
        # The topic clusterer's lineage (births, merges, retirements), newest last.
        self.topic_events: Callable[[], Sequence[TopicEvent]] = tuple
        self._topics_sent: tuple = ()
        self.wordcloud_version = 0
        # What is failing now (see `app.readiness`), for the dashboard's degraded banner.
        self.problems: Callable[[], list[dict]] = list
        # Logged-in viewers (Socket.IO sid → user name, session key), checked every
        # `session_check_interval` s with `session_valid`: a removed user, or one whose
        # password changed, is disconnected on every node within that time.
        self.viewers: dict[str, tuple[str, str]] = {}
        self.session_valid: Callable[[str, str], bool] = lambda name, key: True
        self.session_check_interval = 5.0
        self._stop = threading.Event()
        self._emitted_version: tuple = ()
        self._last_emit = float("-inf")  # monotonic time of the last update sent
        self._cloud_data_version = -1

    def register(self) -> None:
        self.socketio.on_namespace(LiveNamespace(self))

    def current_state(self) -> dict:
        """What a viewer gets on connecting: the state and the newest posts of the feed."""
        payload = self.aggregates.state()
        payload["posts"] = self.aggregates.latest_posts()
        if self.alerts is not None:
            payload["alerts"] = self.alerts.recent(AlertFilter(limit=ALERTS_SHOWN))
        payload.update(self.topic_changes())
        return self._decorate(payload)

    def topic_changes(self, now: float | None = None) -> dict:
        """The newest lineage events, and the live topics born in the last ten minutes."""
        now = time.time() if now is None else now
        events = list(self.topic_events())  # a copy made in C: safe beside the learner
        new: set[int] = set()
        for event in events:
            if event.kind == "birth" and event.time >= now - NEW_TOPIC_SECONDS:
                new.update(event.cluster_ids)
            elif event.kind == "split" and event.time >= now - NEW_TOPIC_SECONDS:
                new.update(event.cluster_ids[1:])  # the first id goes on as it was
            elif event.kind == "retirement":
                new.difference_update(event.cluster_ids)
            elif event.kind == "merge":  # the first id absorbed the others
                new.difference_update(event.cluster_ids[1:])
        return {
            "topic_events": [e.to_dict() for e in reversed(events[-TOPIC_EVENTS_SHOWN:])],
            "new_topics": sorted(new),
        }

    def _topics_key(self, now: float) -> tuple:
        """What changes the topic payload: a new event, or a minute passing (topics stop
        being new)."""
        events = self.topic_events()
        return (events[-1].seq if events else 0, int(now // 60))

    def _decorate(self, payload: dict, problems: list[dict] | None = None) -> dict:
        payload["stats"]["source"] = self.source_name
        payload["problems"] = self.problems() if problems is None else problems
        payload["wordcloud"] = (
            {"version": self.wordcloud_version, "url": f"/wordcloud.png?v={self.wordcloud_version}"}
            if self.wordcloud_png
            else None
        )
        return payload

    def start(self) -> None:
        server = self.socketio.server
        if not server.manager_initialized:
            # python-socketio starts a message queue's listener at the first connection;
            # started now, it already listens when another node's first message comes.
            server.manager_initialized = True
            server.manager.initialize()
        self.socketio.start_background_task(self._emit_loop)
        self.socketio.start_background_task(self._wordcloud_loop)
        self.socketio.start_background_task(self._session_loop)

    def sign_out(self, login_id: str) -> None:
        """Tell every tab of one login, on every node (through the message queue), that it
        ended: the dashboard goes to the login page."""
        self.socketio.start_background_task(self._sign_out, login_id)

    def _sign_out(self, login_id: str) -> None:
        # In the background: a logout never waits on (or fails with) the message queue.
        try:
            self.socketio.emit(SIGNED_OUT_EVENT, {}, namespace=NAMESPACE, to=login_room(login_id))
        except Exception:
            log.exception("could not tell the other nodes' tabs of a logout")

    def drop_invalid_sessions(self) -> list[str]:
        """Disconnect this node's viewers whose login is no longer valid; their sids."""
        verdicts: dict[tuple[str, str], bool] = {}
        dropped = []
        for sid, login in list(self.viewers.items()):
            if login not in verdicts:
                verdicts[login] = self.session_valid(*login)
            if not verdicts[login]:
                dropped.append(sid)
                self.viewers.pop(sid, None)
                self.socketio.server.disconnect(sid, namespace=NAMESPACE, ignore_queue=True)
        return dropped

    def stop(self) -> None:
        self._stop.set()
        self.renderer.close()

    def emit_once(self) -> bool:
        """Send an update if anything changed since the last one; True if sent."""
        problems = self.problems()
        # A problem appearing or clearing is news even when no post arrives.
        now = time.time()
        topics = self._topics_key(now)
        version = (
            self.aggregates.version,
            self.wordcloud_version,
            tuple((p["component"], p["reason"]) for p in problems),
            self.alerts.version if self.alerts is not None else 0,
            topics,
        )
        if version == self._emitted_version:
            return False
        self._emitted_version = version
        payload = self._decorate(self.aggregates.take_update(), problems)
        if self.alerts is not None:
            payload["alerts"] = self.alerts.take_changes()
        if topics != self._topics_sent:
            self._topics_sent = topics
            payload.update(self.topic_changes(now))
        if self.clients:
            self.emit_here(payload)
        return True

    def emit_here(self, payload: dict, to: str | None = None) -> None:
        """Send an update to this node's viewers only. Every node computes the same updates
        from the whole stream; through the message queue each viewer would get them once
        per node."""
        self.socketio.emit(UPDATE_EVENT, payload, namespace=NAMESPACE, to=to, ignore_queue=True)

    def render_wordcloud_once(self) -> bool:
        """Render the word cloud if words changed and someone is watching; True if rendered."""
        data_version = self.aggregates.version
        if not self.clients or data_version == self._cloud_data_version:
            return False
        frequencies = self.aggregates.word_frequencies()
        if not frequencies:
            return False
        self._cloud_data_version = data_version
        self.wordcloud_png = self.renderer.render(frequencies)
        self.wordcloud_version += 1
        return True

    def emit_if_due(self, now: float) -> bool:
        """`emit_once`, unless the last update left less than `emit_interval` ago."""
        if now - self._last_emit < self.emit_interval or not self.emit_once():
            return False
        self._last_emit = now
        return True

    def _emit_loop(self) -> None:
        while not self._stop.wait(EMIT_TICK):
            try:
                self.emit_if_due(time.monotonic())
            except Exception:  # the dashboard must outlive any one bad update
                log.exception("dashboard update failed")

    def _session_loop(self) -> None:
        while not self._stop.wait(self.session_check_interval):
            try:
                self.drop_invalid_sessions()
            except Exception:
                log.exception("checking viewers' sessions failed")

    def _wordcloud_loop(self) -> None:
        while not self._stop.wait(self.wordcloud_interval):
            try:
                self.render_wordcloud_once()
            except Exception:
                log.exception("word cloud rendering failed")


REPLAY_NAMESPACE = "/replay"


def replay_room(session_id: str) -> str:
    return f"replay:{session_id}"


class ReplayNamespace(Namespace):
    """Socket.IO namespace /replay: each viewer joins one replay session's room (named in
    the handshake's `auth`, `{"session": id}`) and gets its state at once. Live updates
    are never sent here, nor replay updates to /live."""

    def __init__(self, state: Callable[[str], dict | None]) -> None:
        super().__init__(REPLAY_NAMESPACE)
        self.state = state

    def on_connect(self, auth=None):
        if not socket_allowed():
            raise ConnectionRefusedError("authentication required")
        if access().required() and not current_user.may("analyst"):
            raise ConnectionRefusedError("replays are for the analyst role and above")
        session_id = auth.get("session") if isinstance(auth, dict) else None
        payload = None
        if isinstance(session_id, str) and len(session_id) <= 64:
            payload = self.state(session_id)
        if payload is None:
            raise ConnectionRefusedError("no such replay")
        join_room(replay_room(session_id))
        emit(UPDATE_EVENT, payload)  # to this viewer only
