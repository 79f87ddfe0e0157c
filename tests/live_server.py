"""Starting the real `socialpulse serve` on a free port for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from app.config import PROJECT_ROOT as ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LiveServer:
    url: str
    pid: int


@contextmanager
def running_server(model_dir: Path, workdir: Path, *args: str, **env: str):
    """Yield a live server on a free port (URL and pid); stop it afterwards, showing its log
    on failure. It streams the embedded source unless `env` names a Kafka bootstrap."""
    port = free_port()
    log_path = workdir / f"serve-{port}.log"
    environ = dict(os.environ)
    environ.pop("SOCIALPULSE_KAFKA_BOOTSTRAP", None)
    environ.update(
        SOCIALPULSE_MODEL_DIR=str(model_dir), SOCIALPULSE_INSTANCE_DIR=str(workdir / "instance")
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
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.2)
        yield LiveServer(base, process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
