"""What is failing right now, and since when: the answer of `/readyz` and the dashboard's
degraded banner."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Problem:
    """A part of the service that is failing: which, why, and since when (Unix time)."""

    component: str
    reason: str
    since: float

    def to_dict(self) -> dict:
        return asdict(self)


class Readiness:
    """Problems by component. A problem keeps the time it started while it lasts, and
    disappears when its component reports success again."""

    def __init__(self) -> None:
        self._problems: dict[str, Problem] = {}
        self._lock = threading.Lock()

    def fail(self, component: str, reason: str, now: float | None = None) -> None:
        with self._lock:
            known = self._problems.get(component)
            since = known.since if known else (time.time() if now is None else now)
            self._problems[component] = Problem(component, reason[:300], since)

    def ok(self, component: str) -> None:
        if component in self._problems:
            with self._lock:
                self._problems.pop(component, None)

    def problems(self) -> list[Problem]:
        with self._lock:
            return sorted(self._problems.values(), key=lambda p: p.since)
