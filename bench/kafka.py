"""Kafka end to end: throughput of one and two workers and of the Quix Streams peer, latency
at a steady rate."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from app.config import PROJECT_ROOT as ROOT
from app.testing import KafkaScenario, read_topic, wait_for_count
from bench.server import latency_summary
from streaming.kafka_io import make_producer

# The Quix peer's own environment (see the Makefile): quixstreams pins an older confluent-kafka.
QUIX_PYTHON = ROOT / ".venv" / "bench" / "bin" / "python"


def _scored_timestamps(bootstrap: str, topic: str, expected: int) -> np.ndarray:
    """Produce times (ms) the workers stamped on the scored messages, sorted."""
    messages = read_topic(bootstrap, topic, lambda ms: len(ms) >= expected, timeout=120.0)
    if len(messages) < expected:
        raise RuntimeError(f"read back only {len(messages)} of {expected} scored posts")
    return np.sort(np.asarray([m.timestamp for m in messages]))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _steady_rate(stamps_ms: np.ndarray) -> float:
    """Posts/s over the middle 80% of the run (start-up and tail excluded)."""
    lo, hi = int(len(stamps_ms) * 0.1), int(len(stamps_ms) * 0.9)
    span = (stamps_ms[hi] - stamps_ms[lo]) / 1000.0
    return (hi - lo) / span if span > 0 else float("inf")


def _throughput(scenario: KafkaScenario, names: list[str], n_posts: int) -> dict:
    """Output posts per second of the started processes from the moment every one holds
    partitions (the raw topic is pre-filled, so no load generator competes for the CPU)."""
    broker = _broker_pid(scenario.bootstrap)
    try:
        scenario.wait_until_sharing(names)
        joined_ms = 1000.0 * time.time()
        cpu_before = [cpu_seconds(p.pid) for p in scenario.workers]
        broker_before = cpu_seconds(broker) if broker else 0.0
        started = time.monotonic()
        wait_for_count(scenario.bootstrap, scenario.topics.scored, n_posts, timeout=600)
        elapsed = time.monotonic() - started
        cpu = [cpu_seconds(p.pid) - c for p, c in zip(scenario.workers, cpu_before, strict=True)]
        broker_cpu = cpu_seconds(broker) - broker_before if broker else None
    finally:
        scenario.stop_all()
    stamps = _scored_timestamps(scenario.bootstrap, scenario.topics.scored, n_posts)
    shared = stamps[stamps >= joined_ms + 1000.0]  # a second to settle after the rebalance
    return {
        "posts": n_posts,
        "posts_measured": len(shared),
        "posts_per_s": round(_steady_rate(shared)),
        # Over the whole wait, start-up and the last poll included: a lower bound.
        "cpu_cores_per_worker": [round(c / elapsed, 2) for c in cpu],
        # What a post costs, in CPU, the processes' and the broker's (same cores here).
        "cpu_us_per_post": round(1e6 * sum(cpu) / n_posts, 1),
        "broker_cpu_us_per_post": round(1e6 * broker_cpu / n_posts, 1) if broker_cpu else None,
    }


def _broker_pid(bootstrap: str) -> int | None:
    """The pid of the broker `kafka/kafka.sh` runs on this port, if it is one of ours."""
    port = bootstrap.rsplit(":", 1)[-1]
    path = ROOT / ".cache" / "kafka" / f"run-{port}" / "kafka.pid"
    try:
        pid = int(path.read_text().strip())
        cpu_seconds(pid)
    except (OSError, ValueError):
        return None
    return pid


def worker_throughput(
    bootstrap: str,
    model_dir: Path,
    workdir: Path,
    workers: int,
    values: list[bytes],
    keys: list[bytes],
    client: str,
) -> dict:
    """Scored posts per second of `workers` scoring workers on the pre-filled raw topic."""
    scenario = KafkaScenario(
        bootstrap, model_dir, workdir / f"w{workers}-{client}", partitions=6, client=client
    )
    scenario.produce(values, keys)
    names = [f"bench{i}" for i in range(workers)]
    for name in names:
        scenario.start_worker(name)
    return {"workers": workers, **_throughput(scenario, names, len(values))}


def quix_peer_throughput(
    bootstrap: str, workdir: Path, values: list[bytes], keys: list[bytes]
) -> dict:
    """The Quix Streams peer (JSON decode + VADER only, bench/quix_peer.py), measured like
    one worker."""
    if not QUIX_PYTHON.exists():
        raise SystemExit(f"{QUIX_PYTHON} is missing: run `make bench` (requirements-bench.txt)")
    # The peer loads no models; the scenario only lends it topics, a group and a log folder.
    scenario = KafkaScenario(bootstrap, Path(), workdir / "quix", partitions=6)
    scenario.produce(values, keys)
    topics = scenario.topics
    command = [str(QUIX_PYTHON), "-m", "bench.quix_peer", "--bootstrap", bootstrap]
    command += ["--input", topics.posts, "--output", topics.scored, "--group", scenario.group]
    # The client id wait_until_sharing expects of a member named "quix".
    command += ["--client-id", "socialpulse-quix", "--state-dir", str(scenario.log_dir / "state")]
    with (scenario.log_dir / "quix.log").open("ab") as log:
        scenario.workers.append(subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log))
    return _throughput(scenario, ["quix"], len(values))


def passthrough_rate(
    bootstrap: str, model_dir: Path, workdir: Path, values: list[bytes], keys: list[bytes]
) -> dict:
    """kafka-python alone: consume raw posts and produce them again, no scoring at all."""
    scenario = KafkaScenario(bootstrap, model_dir, workdir / "passthrough", partitions=6)
    scenario.produce(values, keys)
    n_posts = len(values)
    consumer = KafkaConsumer(
        scenario.topics.posts,
        bootstrap_servers=bootstrap,
        group_id=scenario.prefix,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=500,
    )
    producer = make_producer(bootstrap, "bench-passthrough")  # the worker's settings
    seen = 0
    started = cpu_started = None
    while seen < n_posts:
        for batch in consumer.poll(timeout_ms=500).values():
            if started is None:
                started, cpu_started = time.perf_counter(), time.process_time()
            for message in batch:
                producer.send(scenario.topics.scored, key=message.key, value=message.value)
            seen += len(batch)
        producer.flush()
        consumer.commit()
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started  # every thread of the client
    consumer.close()
    producer.close()
    return {
        "posts": n_posts,
        "posts_per_s": round(n_posts / seconds),
        "cpu_us_per_post": round(1e6 * cpu_seconds / n_posts, 1),
    }


def latency_at_rate(
    bootstrap: str,
    model_dir: Path,
    workdir: Path,
    values: list[bytes],
    keys: list[bytes],
    rate: int = 2000,
    workers: int = 1,
    client: str = "confluent",
) -> dict:
    """`values` at a steady `rate` posts/s into Kafka; latency from produce to a reader of the
    scored topic."""
    scenario = KafkaScenario(
        bootstrap, model_dir, workdir / f"lat{workers}-{client}", partitions=6, client=client
    )
    names = [f"lat{i}" for i in range(workers)]
    for name in names:
        scenario.start_worker(name)
    scenario.wait_until_sharing(names)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    partitions = [
        TopicPartition(scenario.topics.scored, p)
        for p in consumer.partitions_for_topic(scenario.topics.scored)
    ]
    consumer.assign(partitions)
    consumer.seek_to_end(*partitions)
    total = len(values)
    latencies: list[float] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set() and len(latencies) < total:
            for batch in consumer.poll(timeout_ms=200).values():
                now = time.time()
                for message in batch:
                    latencies.append((now - json.loads(message.value)["received_at"]) * 1000.0)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    achieved = scenario.produce(values, keys, rate=rate)
    reader.join(timeout=60)
    done.set()
    consumer.close()
    scenario.stop_all()
    steady = latencies[len(latencies) // 10 :]
    return {
        "target_posts_per_s": rate,
        "achieved_posts_per_s": round(achieved),
        "workers": workers,
        "received": len(latencies),
        "latency_ms": latency_summary(steady),
    }
