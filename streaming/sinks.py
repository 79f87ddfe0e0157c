"""Where scored posts and rejected input go. Every sink has the same small interface."""

from __future__ import annotations

import logging
import threading
from abc import ABC
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streaming.records import ScoredPost

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Input that could not become a post, kept with the reason and where it came from."""

    value: Mapping[str, Any] | bytes | str | None
    reason: str
    source: str
    position: Mapping[str, Any] = field(default_factory=dict)
    received_at: float = 0.0
    key: bytes | None = None


class Sink(ABC):
    """Receives scored posts and dead letters in micro-batches."""

    def write(self, scored: Sequence[ScoredPost]) -> None:
        """Take a micro-batch of scored posts."""

    def reject(self, letters: Sequence[DeadLetter]) -> None:
        """Take input that failed validation."""

    def flush(self) -> None:
        """Make everything written so far durable (called before the source commits)."""

    def close(self) -> None:
        """Flush and release resources."""


class ListSink(Sink):
    """Keeps everything in memory: for tests and one-off scoring."""

    def __init__(self) -> None:
        self.scored: list[ScoredPost] = []
        self.dead_letters: list[DeadLetter] = []
        self._lock = threading.Lock()

    def write(self, scored: Sequence[ScoredPost]) -> None:
        with self._lock:
            self.scored.extend(scored)

    def reject(self, letters: Sequence[DeadLetter]) -> None:
        with self._lock:
            self.dead_letters.extend(letters)


class LogDeadLetterSink(Sink):
    """Logs rejected input (the embedded default has no dead-letter topic)."""

    def reject(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            log.warning(
                "rejected input from %s %s: %s", letter.source, dict(letter.position), letter.reason
            )
