"""The production web server: gunicorn with one gevent worker per web node.

Why this choice: a dashboard viewer holds a WebSocket open for hours. With gevent each
connection costs a greenlet (a few KB), not OS threads, so a node holds thousands of viewers
on a fixed handful of threads. gunicorn supervises the worker (it is restarted if it dies or
its event loop stalls past `timeout`), reads requests with its hardened parser, and stops
gracefully on SIGTERM. Flask-SocketIO supports this pairing with simple-websocket. One worker
per node: Socket.IO sessions live in one process, so nodes scale out behind a proxy instead.

`patch_all()` must run before the app is built (see `socialpulse serve`): locks, events and
sockets created before it would block the event loop. Calls that block inside C (the
confluent-kafka client) go through `off_loop` so the loop keeps serving meanwhile.
"""

from __future__ import annotations

import gc
import logging
import math
import socket
from collections.abc import Callable
from typing import Any, TypeVar

import gevent
from gevent import monkey
from gunicorn.app.base import BaseApplication
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

log = logging.getLogger(__name__)
T = TypeVar("T")


def gevent_active() -> bool:
    """True in a process whose standard library gevent has patched."""
    return monkey.is_module_patched("socket")


def off_loop(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call `function` on a native thread when it would block gevent's loop, else directly."""
    if not gevent_active():
        return function(*args, **kwargs)
    return gevent.get_hub().threadpool.apply(function, args, kwargs)


class OffLoopSource:
    """A source whose reads run on a native thread under gevent: a file source may block in
    the kernel (a pipe with no writer, a stalled mount), which no event loop can interrupt.
    Everything else is the wrapped source's own."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def read_batch(self, batch_max_posts: int, batch_max_wait: float) -> Any:
        return off_loop(self.source.read_batch, batch_max_posts, batch_max_wait)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)


class OffLoopScorer:
    """A scorer whose batches run on a native thread under gevent: scoring is the one long
    CPU stretch of the embedded stream, and there the interpreter's thread switching lets
    requests and dashboard updates in every few milliseconds."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    @property
    def model_version(self) -> str:
        return self.scorer.model_version

    def score_batch(self, posts: Any, learn: bool = False, received_at: Any = None) -> Any:
        return off_loop(self.scorer.score_batch, posts, learn=learn, received_at=received_at)


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class WebServer(BaseApplication):
    """gunicorn, configured in code: one `WebWorker` serving an app already built.

    Args:
        wsgi_app: the app (built before the fork; background work starts after it).
        settings: gunicorn settings.
        read_timeout: seconds each socket read or write may wait (see `WebWorker`).
        on_start: run in the worker once it is up: start background work here.
        on_stop: run in the worker first thing on SIGTERM.
    """

    def __init__(
        self,
        wsgi_app: Callable,
        settings: dict[str, Any],
        read_timeout: float,
        on_start: Callable[[], None],
        on_stop: Callable[[], None],
    ) -> None:
        self.wsgi_app = wsgi_app

        def start(worker: Any) -> None:
            on_start()
            # What exists now (the app, lexicons and models: a few hundred thousand objects)
            # leaves the garbage collector's full passes. A pass over them takes about
            # 170 ms, and every request in flight waits it out. What is allocated later
            # (newer model versions too) is still collected; a frozen object is still freed
            # when its last reference goes.
            gc.freeze()

        self.settings = {**settings, "post_worker_init": start}
        self.read_timeout = read_timeout
        self.on_stop = on_stop
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.settings.items():
            self.cfg.set(name, value)

    def load(self) -> Callable:
        return self.wsgi_app


def serve_forever(
    wsgi_app: Callable,
    *,
    host: str,
    port: int,
    read_timeout: float,
    shutdown_grace: float,
    max_connections: int,
    log_level: str,
    on_start: Callable[[], None],
    on_stop: Callable[[], None],
) -> None:
    """Serve `wsgi_app` until SIGTERM or SIGINT: `on_start` runs in the worker once it is up
    (start background work there, after the fork); `on_stop` runs first on shutdown."""
    settings = {
        "bind": [bind_address(host, port)],
        "workers": 1,
        "worker_class": "app.server.WebWorker",
        "worker_connections": max_connections,
        # gunicorn reads each request's line and headers under this deadline (and waits as
        # long for the next one on a kept-alive connection).
        "keepalive": max(1, math.ceil(read_timeout)),
        "graceful_timeout": max(1, math.ceil(shutdown_grace)),
        "timeout": 30,  # the loop blocked this long: the worker is replaced
        "loglevel": log_level.lower(),
        "errorlog": "-",
        "accesslog": None,
        "proc_name": "socialpulse",
        "control_socket_disable": True,  # no runtime-control socket in $HOME
    }
    WebServer(wsgi_app, settings, read_timeout, on_start, on_stop).run()


class WebWorker(GeventWorker):
    """gunicorn's gevent worker, with a timeout on every socket read and a stop that winds
    the stream down and closes live connections before the grace period runs out."""

    def handle(self, listener, client, addr) -> None:
        # A request dribbled in (or a response never read) frees its slot after this;
        # WebSockets lift it once upgraded (see `lift_read_timeout`).
        client.settimeout(self.app.read_timeout)
        AsyncWorker.handle(self, listener, client, addr)

    def handle_request(self, listener_name, req, sock, addr):
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            # Other connections' turn before this one's next request: without it, a client
            # that answers at once keeps the loop, and the others' requests wait.
            gevent.sleep(0)

    def handle_exit(self, sig, frame) -> None:
        if self.alive:  # a signal handler must not block: the stop runs in a greenlet
            gevent.spawn(self._stop_app)
        super().handle_exit(sig, frame)

    def _stop_app(self) -> None:
        try:
            self.app.on_stop()
        except Exception:
            log.exception("stopping the app failed")


def lift_read_timeout(wsgi_app: Callable) -> Callable:
    """WSGI middleware: an upgraded WebSocket idles between messages by design; Engine.IO's
    ping/pong decides when it is dead, so the socket read timeout is lifted for it."""

    def middleware(environ: dict, start_response: Callable) -> Any:
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            sock = environ.get("gunicorn.socket")
            if isinstance(sock, socket.socket):
                sock.settimeout(None)
        return wsgi_app(environ, start_response)

    return middleware
