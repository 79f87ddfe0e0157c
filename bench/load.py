"""The server under load: many dashboard viewers, many concurrent API clients, and produce →
browser latency through Kafka."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import requests
import websocket

from app.testing import KafkaScenario, running_server, synthetic_values
from bench.kafka import cpu_seconds
from bench.server import latency_summary
from streaming.metrics import percentile

WARM_UP_S = 3.0
JSON_HEADERS = {"Content-Type": "application/json"}
OLDEST = re.compile(rb'"oldest_received_at":\s*([0-9.]+)')
# Runs in the page before its own scripts: times each dashboard update as the page receives
# it (the browser's clock is the machine's), with the oldest post it carries.
RECORD_FRAME_TIMES = """
window.__updates = [];
const NativeWebSocket = window.WebSocket;
window.WebSocket = function (...args) {
  const socket = new NativeWebSocket(...args);
  socket.addEventListener("message", (event) => {
    const now = Date.now();
    if (typeof event.data !== "string" || !event.data.startsWith('42/live,["update"')) return;
    const oldest = /"oldest_received_at":\\s*([0-9.]+)/.exec(event.data);
    const newest = /"newest_received_at":\\s*([0-9.]+)/.exec(event.data);
    const count = /"new_posts":\\s*([0-9]+)/.exec(event.data);
    if (oldest && newest && count) {
      window.__updates.push([now, parseFloat(oldest[1]) * 1000, parseFloat(newest[1]) * 1000,
                             parseInt(count[1], 10)]);
    }
  });
  return socket;
};
window.WebSocket.prototype = NativeWebSocket.prototype;
Object.assign(window.WebSocket, NativeWebSocket);
"""


class RawViewer(threading.Thread):
    """A dashboard viewer speaking Engine.IO/Socket.IO over one WebSocket, on one thread, and
    reading only the one number it needs: 200 of them fit beside the server on two cores."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        parts = urlsplit(url)
        self.address = f"ws://{parts.netloc}/socket.io/?EIO=4&transport=websocket"
        self.stop = stop
        self.oldest_ms: list[float] = []  # per update: how long its oldest post waited
        self.received_at: list[float] = []  # per update: when it arrived
        self.updates = 0
        self.dropped = False  # the server closed the connection before the end
        self.connected = threading.Event()

    def run(self) -> None:
        # No UTF-8 check of each frame: in pure Python it costs more than the server does.
        ws = websocket.create_connection(self.address, timeout=30, skip_utf8_validation=True)
        try:
            ws.recv()  # Engine.IO open
            ws.send("40/live,")
            while not self.stop.is_set():
                try:
                    frame = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                if not frame:
                    self.dropped = not self.stop.is_set()
                    return
                if isinstance(frame, str):
                    frame = frame.encode()
                if frame == b"2":  # ping
                    ws.send("3")
                elif frame.startswith(b"40/live"):
                    self.connected.set()
                elif frame.startswith(b'42/live,["update"'):
                    now = time.time()
                    self.updates += 1
                    found = OLDEST.search(frame)
                    if found:
                        self.oldest_ms.append((now - float(found.group(1))) * 1000.0)
                        self.received_at.append(now)
        except (OSError, websocket.WebSocketException):
            self.dropped = not self.stop.is_set()
        finally:
            ws.close()


def dashboard_viewers(
    model_dir: Path, workdir: Path, viewers: int = 200, rate: int = 500, duration: float = 120.0
) -> dict:
    """`viewers` dashboards on one node streaming `rate` posts/s: how long the oldest post of
    each update waited (post entered SocialPulse → viewer), disconnects, threads, memory."""
    stop = threading.Event()
    with running_server(model_dir, workdir, "--rate", str(rate)) as live:
        idle_threads = live.threads()
        clients = [RawViewer(live.url, stop) for _ in range(viewers)]
        for client in clients:
            client.start()
        for client in clients:
            client.connected.wait(30)
        time.sleep(min(10.0, duration / 6))  # settle
        for client in clients:
            client.oldest_ms.clear()
            client.received_at.clear()
            client.updates = 0
        memory_start, threads = live.rss_mb(), [live.threads()]
        started = time.monotonic()
        while time.monotonic() - started < duration:
            time.sleep(2.0)
            threads.append(live.threads())
        elapsed = time.monotonic() - started
        memory_end = live.rss_mb()
        health = requests.get(live.url + "/healthz", timeout=5).json()
        stop.set()
    latencies = [ms for client in clients for ms in client.oldest_ms]
    updates = [client.updates for client in clients]
    return {
        "viewers": viewers,
        "rate_posts_per_s": rate,
        "duration_s": duration,
        "scored": health["scored"],
        "connected": sum(client.connected.is_set() for client in clients),
        "disconnects": sum(client.dropped for client in clients),
        "updates_per_viewer_per_s": round(sum(updates) / len(updates) / elapsed, 2),
        "oldest_post_wait_ms": {
            **latency_summary(latencies),
            "p95": percentile(latencies, 0.95, digits=2),
        },
        "server_threads": {"idle": idle_threads, "max_with_viewers": max(threads)},
        "server_memory_mb": {"start": round(memory_start, 1), "end": round(memory_end, 1)},
    }


def wait_until_settled(live, below: float = 0.3, timeout: float = 60.0) -> None:
    """Wait until the server's worker uses less than `below` of a core over a second: its
    start-up work (author profiles rebuilt from the archive an earlier section filled, on a
    thread of its own for a few seconds) is over, so what follows measures the steady state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(live.worker_pid)
        time.sleep(1.0)
        if cpu_seconds(live.worker_pid) - before < below:
            return


def concurrent_api_clients(
    model_dir: Path,
    workdir: Path,
    clients: int = 50,
    requests_each: int = 60,
    every: float | None = None,
) -> dict:
    """`clients` API clients posting single-post analyses at once: each sends its next
    request `every` seconds after the last one began (None: back to back, which measures
    the server at saturation, where latency is clients ÷ throughput)."""
    with running_server(model_dir, workdir) as live:
        address = urlsplit(live.url)

        def client(number: int) -> tuple[list[float], int]:
            # A kept-alive http.client connection: `requests` would cost the two cores
            # about a third of what the server spends on each request.
            connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
            latencies, errors = [], 0
            next_at = time.monotonic() + (number / clients) * (every or 0)  # spread the starts
            for i in range(requests_each):
                if every:
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    next_at += every
                body = json.dumps({"text": f"Client {number} post {i}: what a GAME!!! #nba 🔥"})
                started = time.perf_counter()
                try:
                    connection.request("POST", "/api/v1/analyze", body, JSON_HEADERS)
                    response = connection.getresponse()
                    response.read()
                    errors += response.status != 200
                except (OSError, http.client.HTTPException):
                    errors += 1
                    connection.close()  # reconnects on the next request
                latencies.append((time.perf_counter() - started) * 1000.0)
            connection.close()
            return latencies, errors

        wait_until_settled(live)
        client(-1)  # warm up
        server_cpu = cpu_seconds(live.worker_pid)
        started = time.monotonic()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(client, range(clients)))
        elapsed = time.monotonic() - started
        server_cpu = cpu_seconds(live.worker_pid) - server_cpu
    latencies = [ms for found, _ in results for ms in found[len(found) // 10 :]]
    total = clients * requests_each
    return {
        "clients": clients,
        "request_every_s": every,
        "requests": total,
        "errors": sum(errors for _, errors in results),
        "requests_per_s": round(total / elapsed, 1),
        "server_cpu_ms_per_request": round(server_cpu * 1000.0 / total, 2),
        "server_cpu_cores": round(server_cpu / elapsed, 2),
        "latency_ms": {**latency_summary(latencies), "p95": percentile(latencies, 0.95, 2)},
    }


def _scored(url: str) -> int:
    return requests.get(url + "/healthz", timeout=5).json()["scored"]


def produce_to_browser(
    bootstrap: str,
    model_dir: Path,
    workdir: Path,
    chromium: str,
    rate: int = 2000,
    duration: float = 30.0,
    client: str = "confluent",
) -> dict:
    """Posts produced into Kafka at `rate`/s, scored by a worker, read by a web node, shown in
    a real Chromium dashboard: time from produce to the WebSocket frame reaching the page, for
    the oldest post of every update (so every post waited at most that long)."""
    from playwright.sync_api import sync_playwright

    scenario = KafkaScenario(bootstrap, model_dir, workdir / "browser", partitions=6, client=client)
    scenario.start_worker("b1")
    scenario.wait_until_sharing(["b1"])
    _, values, keys = synthetic_values(int(rate * duration), seed=2027)
    try:
        with (
            running_server(model_dir, workdir, **scenario.env()) as live,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(executable_path=chromium)
            page = browser.new_page()
            page.add_init_script(RECORD_FRAME_TIMES)
            page.goto(live.url + "/")
            page.wait_for_function("() => Number(document.body.dataset.updates) > 0")
            page.wait_for_timeout(2000)
            # Beside the browser, a Socket.IO client in this process: the server's side of
            # the same path, without the browser's share of the two cores.
            stop = threading.Event()
            viewer = RawViewer(live.url, stop)
            viewer.start()
            viewer.connected.wait(30)
            rates: list[float] = []
            producer = threading.Thread(
                target=lambda: rates.append(scenario.produce(values, keys, rate=rate))
            )
            producer.start()
            deadline = time.monotonic() + duration + 60
            while producer.is_alive() and time.monotonic() < deadline:
                page.wait_for_timeout(20)
            settle = time.monotonic() + 30
            while time.monotonic() < settle:
                page.wait_for_timeout(20)
                if page.evaluate("() => document.body.dataset.updates") and _scored(
                    live.url
                ) >= len(values):
                    break
            page.wait_for_timeout(1000)
            updates = page.evaluate("() => window.__updates")
            stop.set()
            browser.close()
            achieved = rates[0] if rates else float("nan")
    finally:
        scenario.stop_all()
    # Steady state: the first seconds warm the worker, the web node and the page up.
    steady = [u for u in updates if updates and u[0] >= updates[0][0] + WARM_UP_S * 1000]
    oldest = [now - first for now, first, _, _ in steady]
    per_post = _per_post_latencies(steady)
    start = (updates[0][0] / 1000.0 + WARM_UP_S) if updates else 0.0
    arrivals = zip(viewer.received_at, viewer.oldest_ms, strict=False)  # it may still append
    client = [ms for at, ms in arrivals if at >= start]
    return {
        "target_posts_per_s": rate,
        "achieved_posts_per_s": round(achieved),
        "posts": len(values),
        "updates": len(updates),
        "latency_ms": {**latency_summary(per_post), "p95": percentile(per_post, 0.95, 2)},
        "oldest_post_latency_ms": {**latency_summary(oldest), "p95": percentile(oldest, 0.95, 2)},
        "socketio_client_oldest_post_latency_ms": {
            **latency_summary(client),
            "p95": percentile(client, 0.95, 2),
        },
    }


def _per_post_latencies(updates: list[list[float]]) -> list[float]:
    """Each post's produce → browser time. An update brings `count` posts produced between
    its oldest and newest times; the producer paces them evenly, so they are spread evenly
    over that span (the span's ends are exact, from the posts' Kafka timestamps)."""
    latencies: list[float] = []
    for now, oldest, newest, count in updates:
        if count == 1:
            latencies.append(now - oldest)
        elif count > 1:
            step = (newest - oldest) / (count - 1)
            latencies += [now - (oldest + i * step) for i in range(count)]
    return latencies
