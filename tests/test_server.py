"""The production server: read deadlines, viewers without threads, graceful SIGTERM."""

from __future__ import annotations

import gc
import signal
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests
import socketio

from app.server import WebServer, bind_address, off_loop
from app.testing import running_server, wait_for

pytestmark = pytest.mark.slow


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def _read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, bool]:
    """What the server sent, and whether it closed the connection within `within` s."""
    deadline, received = time.monotonic() + within, b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received, True
        if not chunk:
            return received, True
        received += chunk
    return received, False


def test_off_loop_calls_directly_without_gevent():
    assert off_loop(divmod, 7, 2) == (3, 1)


def test_bind_address_brackets_ipv6():
    assert bind_address("127.0.0.1", 5000) == "127.0.0.1:5000"
    assert bind_address("::1", 5000) == "[::1]:5000"


def test_the_worker_starts_the_app_then_freezes_what_lives_long():
    started, before = [], gc.get_freeze_count()
    server = WebServer(
        lambda environ, start_response: [],
        {"bind": ["127.0.0.1:0"]},
        read_timeout=5.0,
        on_start=lambda: started.append(gc.get_freeze_count()),
        on_stop=lambda: None,
    )
    try:
        server.cfg.post_worker_init(None)
        assert started == [before]  # the app's background work starts before the freeze
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


def test_half_sent_requests_are_cut_off_and_hold_no_threads(model_dir, tmp_path):
    """300 clients that never finish their headers (slowloris) hold no threads, do not
    delay anyone else, and are disconnected after the read timeout."""
    with running_server(model_dir, tmp_path, SOCIALPULSE_READ_TIMEOUT="2") as live:
        idle_threads = live.threads()
        stalled = []
        for _ in range(300):
            sock = _connect(live.url)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            stalled.append(sock)
        started = time.monotonic()
        assert requests.get(live.url + "/livez", timeout=5).ok
        assert time.monotonic() - started < 2.0
        assert live.threads() <= idle_threads + 4
        closed = sum(_read_until_closed(sock, within=6.0)[1] for sock in stalled)
        assert closed == len(stalled)
        # A body that stops half-way is cut off the same way.
        sock = _connect(live.url)
        sock.sendall(
            b"POST /api/v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"text": '
        )
        answer, closed = _read_until_closed(sock, within=6.0)
        assert closed
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
        for sock in stalled:
            sock.close()


def test_viewers_cost_no_threads_and_idle_websockets_outlive_the_read_timeout(model_dir, tmp_path):
    """50 connected dashboards add no OS threads; a WebSocket that has nothing to say for
    longer than the read timeout stays connected (Engine.IO's pings decide when it is dead)."""
    with running_server(
        model_dir, tmp_path, "--rate", "0.01", SOCIALPULSE_READ_TIMEOUT="1"
    ) as live:
        idle_threads = live.threads()
        viewers, snapshots = [], []
        for _ in range(50):
            viewer = socketio.Client(reconnection=False)
            viewer.on("update", lambda data: snapshots.append(data), namespace="/live")
            viewer.connect(live.url, namespaces=["/live"], transports=["websocket"])
            viewers.append(viewer)
        wait_for(lambda: len(snapshots) >= 50, 10, "every snapshot")
        assert live.threads() <= idle_threads + 4, "threads grew with the viewers"
        time.sleep(3)  # three read timeouts without a message
        assert all(viewer.connected for viewer in viewers)
        for viewer in viewers:
            viewer.disconnect()


def test_sigterm_finishes_requests_in_flight_then_exits(model_dir, tmp_path):
    """SIGTERM: a request already in flight still gets its answer, live viewers are told to
    go, and the server exits cleanly within the grace period."""
    with running_server(model_dir, tmp_path) as live:
        viewer = socketio.Client(reconnection=False)
        reasons = []
        viewer.on("disconnect", lambda *args: reasons.append(args), namespace="/live")
        viewer.connect(live.url, namespaces=["/live"], transports=["websocket"])
        body = b'{"text": "Loving the new #nba season!"}'
        sock = _connect(live.url)
        sock.sendall(
            b"POST /api/v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:10]
        )
        time.sleep(0.5)
        started = time.monotonic()
        live.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        sock.sendall(body[10:])
        answer, _ = _read_until_closed(sock, within=10.0)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert b'"sentiment"' in answer
        assert live.process.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
        wait_for(lambda: reasons, 5, "the viewer told to go")
        with pytest.raises(requests.ConnectionError):
            requests.get(live.url + "/livez", timeout=2)


def test_an_unpaced_stream_leaves_room_for_requests(model_dir, tmp_path):
    """Scoring as fast as the source allows still lets every request in promptly."""
    with running_server(model_dir, tmp_path, "--rate", "0") as live:

        def scored() -> int:
            return requests.get(live.url + "/healthz", timeout=5).json()["scored"]

        wait_for(lambda: scored() > 1000, 60, "the stream to run flat out")
        before = scored()
        for _ in range(20):
            started = time.monotonic()
            response = requests.post(
                live.url + "/api/v1/analyze", json={"text": "what a game #nba"}, timeout=5
            )
            assert response.ok
            assert time.monotonic() - started < 1.0
        wait_for(lambda: scored() > before, 30, "the stream to go on meanwhile")
