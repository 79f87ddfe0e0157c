"""Real processes for end-to-end tests and benchmarks: a live server, Kafka scoring workers,
and readers of what they wrote. The test suite and `bench` both use them (they need the
development requirements, e.g. `requests`)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import CoordinatorNotAvailableError
from kafka.structs import TopicPartition

from app.config import PROJECT_ROOT as ROOT
from app.config import Config
from models.signing import ManifestKey
from streaming.kafka_io import ensure_topics
from streaming.synthetic import SyntheticPostGenerator, strip_private
from streaming.topics import Topics

# The model signing key of test and benchmark runs, shared with the servers and workers they
# start, so every process trusts the models trained for the run. Not a secret.
TEST_MODEL_KEY = "socialpulse-test-model-signing-key"


def run_manifest_key() -> ManifestKey:
    return ManifestKey(TEST_MODEL_KEY.encode())


def run_config(model_dir: Path, instance_dir: Path, **overrides: Any) -> Config:
    """Settings of an in-process app on `model_dir`, trusting the run's models."""
    return Config.from_env(
        environ={},
        model_dir=str(model_dir),
        instance_dir=str(instance_dir),
        model_key=TEST_MODEL_KEY,
        **overrides,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LiveServer:
    url: str
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        """The server's processes: gunicorn's master (`pid`) and its worker."""
        pids, index = [self.pid], 0
        while index < len(pids):
            for task in Path(f"/proc/{pids[index]}/task").glob("*/children"):
                pids += [int(child) for child in task.read_text().split()]
            index += 1
        return pids

    @property
    def worker_pid(self) -> int:
        """gunicorn's worker: the process that serves (its children draw word clouds)."""
        return self.pids()[1]

    def threads(self) -> int:
        """OS threads across the server's processes."""
        return sum(len(list(Path(f"/proc/{pid}/task").iterdir())) for pid in self.pids())

    def rss_mb(self) -> float:
        """Resident memory across the server's processes (MB)."""
        total = 0
        for pid in self.pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total / 1024.0


@contextmanager
def running_server(model_dir: Path, workdir: Path, *args: str, **env: str):
    """Yield a live server on a free port (URL and pid); stop it afterwards, showing its log
    on failure. It streams the embedded source unless `env` names a Kafka bootstrap."""
    port = free_port()
    log_path = workdir / f"serve-{port}.log"
    environ = dict(os.environ)
    environ.pop("SOCIALPULSE_KAFKA_BOOTSTRAP", None)
    environ.update(
        SOCIALPULSE_MODEL_DIR=str(model_dir),
        SOCIALPULSE_INSTANCE_DIR=str(workdir / "instance"),
        SOCIALPULSE_MODEL_KEY=TEST_MODEL_KEY,
    )
    environ.update(env)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *args],
            cwd=ROOT,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError("server exited:\n" + log_path.read_text()[-3000:])
            try:
                if requests.get(base + "/livez", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.2)
        yield LiveServer(base, process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass
class KafkaScenario:
    """Unique topics and group for one test, and the worker processes it started."""

    bootstrap: str
    model_dir: Path
    log_dir: Path
    partitions: int = 4
    client: str = "confluent"  # the workers' Kafka client library
    prefix: str = field(default_factory=lambda: "t" + uuid.uuid4().hex[:10])
    workers: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.topics = Topics(
            f"{self.prefix}.posts",
            f"{self.prefix}.scored",
            f"{self.prefix}.dlq",
            self.partitions,
            f"{self.prefix}.socketio",
        )
        ensure_topics(self.bootstrap, self.topics)

    @property
    def group(self) -> str:
        return f"{self.prefix}-group"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SOCIALPULSE_KAFKA_BOOTSTRAP=self.bootstrap,
            SOCIALPULSE_KAFKA_CLIENT=self.client,
            SOCIALPULSE_TOPIC_POSTS=self.topics.posts,
            SOCIALPULSE_TOPIC_SCORED=self.topics.scored,
            SOCIALPULSE_TOPIC_DLQ=self.topics.dlq,
            SOCIALPULSE_TOPIC_SOCKETIO=self.topics.socketio,
            SOCIALPULSE_TOPIC_PARTITIONS=str(self.partitions),
            SOCIALPULSE_CONSUMER_GROUP=self.group,
            SOCIALPULSE_MODEL_DIR=str(self.model_dir),
            SOCIALPULSE_INSTANCE_DIR=str(self.log_dir / "instance"),
            SOCIALPULSE_MODEL_KEY=TEST_MODEL_KEY,
        )
        env.update(extra)
        return env

    def start_worker(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--worker-id", name, *args],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(process)
        return process

    def wait_until_sharing(self, names: list[str], timeout: float = 90.0) -> None:
        """Wait until the broker reports the group stable with exactly these workers as
        members, each holding partitions. Logs alone cannot tell: a worker may log its
        assignment just before the next rebalance takes it away."""
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        wanted = {f"socialpulse-{name}" for name in names}
        last: dict = {}

        def sharing() -> bool:
            nonlocal last
            try:
                last = admin.describe_groups([self.group])[self.group]
            except CoordinatorNotAvailableError:  # a new broker creates its offsets topic
                return False
            held = {
                member["client_id"]: [
                    p
                    for topic in (member["member_assignment"] or {}).get("assigned_partitions", [])
                    for p in topic["partitions"]
                ]
                for member in last["members"]
            }
            return last["group_state"] == "Stable" and set(held) == wanted and all(held.values())

        try:
            wait_for(sharing, timeout, f"workers {names} to share the partitions")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the group was {last}") from None
        finally:
            admin.close()

    def worker_log(self, name: str) -> list[dict]:
        lines = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries

    def stop_all(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def produce(
        self,
        values: list[bytes | None],
        keys: list[bytes | None] | None = None,
        rate: float | None = None,
    ) -> float:
        """Send `values` to the raw topic, at `rate` posts/s if given; the rate achieved.

        Through librdkafka: at thousands of posts a second a pure-Python producer would take
        a good part of the cores the system under test is measured on."""
        from confluent_kafka import Producer

        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "acks": "all",
                "linger.ms": 2 if rate else 10,
                "partitioner": "murmur2_random",  # where the Java client puts a key
            }
        )
        keys = keys or [None] * len(values)
        started = time.monotonic()
        for i, (key, value) in enumerate(zip(keys, values, strict=True)):
            while True:
                try:
                    producer.produce(self.topics.posts, value=value, key=key)
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    producer.poll(0.05)
            producer.poll(0)
            if rate and (behind := started + (i + 1) / rate - time.monotonic()) > 0:
                time.sleep(behind)
        if producer.flush(60):
            raise AssertionError("messages were still undelivered after 60 s")
        return len(values) / max(time.monotonic() - started, 1e-9)


def read_topic(bootstrap: str, topic: str, until, timeout: float = 60.0) -> list:
    """All messages of `topic` from the start, reading until `until(messages)` or timeout."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    deadline = time.monotonic() + timeout
    while not consumer.partitions_for_topic(topic):
        if time.monotonic() > deadline:
            raise AssertionError(f"topic {topic} never appeared")
        time.sleep(0.2)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    messages: list = []
    try:
        while time.monotonic() < deadline and not until(messages):
            for batch in consumer.poll(timeout_ms=500).values():
                messages.extend(batch)
    finally:
        consumer.close()
    return messages


def scored_ids(messages) -> list[str]:
    return [json.loads(m.value)["id"] for m in messages]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_for_count(bootstrap: str, topic: str, count: int, timeout: float) -> None:
    """Wait until `topic` holds at least `count` messages. Only end offsets are read, never
    the messages, so waiting costs the broker and the CPU next to nothing."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    try:
        wait_for(
            lambda: sum(consumer.end_offsets(partitions).values()) >= count,
            timeout,
            f"{count} messages on {topic}",
            interval=0.5,
        )
    finally:
        consumer.close()


def synthetic_values(n: int, seed: int) -> tuple[list[str], list[bytes], list[bytes]]:
    """Ids, JSON values and author keys of `n` synthetic posts, as a producer sends them."""
    raws = [strip_private(p) for p in SyntheticPostGenerator(seed=seed).take(n)]
    ids = [r["id"] for r in raws]
    values = [json.dumps(r).encode() for r in raws]
    keys = [r["author"].encode() for r in raws]
    return ids, values, keys


CSRF_FIELD = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def csrf_from(html: str) -> str:
    """The CSRF token of the first form in a page."""
    found = CSRF_FIELD.search(html)
    if not found:
        raise AssertionError("the page has no CSRF token")
    return found.group(1)


def log_in(client, name: str, password: str, next_path: str | None = None):
    """Log `client` (a Flask test client) in through the login form; the POST's response."""
    page = client.get("/login" + (f"?next={quote(next_path)}" if next_path else ""))
    return client.post(
        "/login",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "name": name,
            "password": password,
            "next": next_path or "",
        },
    )


class TcpProxy:
    """A TCP forwarder to a database server that can be cut and restored: to the client it
    is the server going away and coming back, connections reset."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._listener is not None:
            # shutdown wakes the thread blocked in accept; close alone would leave the
            # port listening until the next connection.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._sockets = []
