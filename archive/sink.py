"""Archiving behind the stream: a sink that buffers, and a writer that retries.

`ArchiveSink` takes micro-batches from the runner into a bounded in-memory buffer and
returns at once; its writer (`run`, a background task) stores them in transactions of up to
`batch_rows`, removing them from the buffer only once committed. While the database is
unavailable the writer retries with exponential backoff (up to `max_backoff` seconds) and
the keeper reports the archive degraded; nothing is dropped. Once `max_buffered` posts and
dead letters would wait, `write` blocks: the stream pauses rather than lose anything, and resumes
as soon as the database takes writes again.

`ArchiveKeeper` is what every process that opens an archive runs: migrations at start,
retention pruning, and the disk and row figures `/healthz` and `/metrics` show.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import Any, TypeVar

from archive.metrics import ArchiveMetrics
from archive.store import ArchiveStore, redact
from streaming.records import ScoredPost
from streaming.sinks import DeadLetter, Sink

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_MAX_BUFFERED = 50_000


def _direct(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return function(*args, **kwargs)


class ArchiveKeeper:
    """Migrates one archive, prunes it by retention, measures it, and says whether it works.

    Args:
        store: the archive.
        retention_days: keep posts this many days after they were archived (0: forever).
        prune: apply the retention here (one process per archive is enough).
        metrics: gauges to keep up to date, if any.
        offload: runs each database call (e.g. on a native thread under gevent).
        measure_every / prune_every: seconds between measurements / prunings.
    """

    def __init__(
        self,
        store: ArchiveStore,
        retention_days: float = 0.0,
        prune: bool = True,
        metrics: ArchiveMetrics | None = None,
        offload: Callable[..., Any] = _direct,
        measure_every: float = 15.0,
        prune_every: float = 3600.0,
    ) -> None:
        self.store = store
        self.retention_days = retention_days
        self.prune_enabled = prune and retention_days > 0
        self.metrics = metrics
        self.offload = offload
        self.measure_every = measure_every
        self.prune_every = prune_every
        self.ready = False
        self.disk_bytes: int | None = None
        self.posts: int | None = None
        self.dead_letters: int | None = None
        self.pruned = 0
        self.error: str | None = None
        self.error_since: float | None = None
        self._next_measure = 0.0
        self._next_prune = 0.0

    def call(self, function: Callable[..., T], *args: Any) -> T:
        return self.offload(function, *args)

    @contextlib.contextmanager
    def calls_in_place(self) -> Iterator[None]:
        """Run database calls on the calling thread meanwhile (e.g. before a fork, where
        no thread pool may be started)."""
        offload, self.offload = self.offload, _direct
        try:
            yield
        finally:
            self.offload = offload

    def ensure_ready(self) -> bool:
        """Migrate the schema once; False (and degraded) while the database refuses."""
        if not self.ready:
            try:
                self.call(self.store.migrate)
            except Exception as exc:
                self.fail(f"cannot open the archive {redact(self.store.url)}: {short_error(exc)}")
                return False
            self.ready = True
            self.ok()
            log.info("archive ready: %s", redact(self.store.url))
        return True

    def maintain(self, now: float | None = None, recover: bool = False) -> None:
        """Prune and measure when due. Failures mark the archive degraded, never raise;
        with `recover`, a measurement that works clears an earlier failure."""
        now = time.monotonic() if now is None else now
        if not self.ready:
            return
        try:
            if self.prune_enabled and now >= self._next_prune:
                self._next_prune = now + self.prune_every
                gone = sum(self.call(self.store.prune, self.retention_days))
                if gone:
                    self.pruned += gone
                    log.info("archive retention: deleted %d rows", gone)
                    if self.metrics is not None:
                        self.metrics.pruned.inc(gone)
                self._next_measure = 0.0  # measure what is left at once
            if now >= self._next_measure:
                self._next_measure = now + self.measure_every
                self.measure()
                if recover:
                    self.ok()
        except Exception as exc:
            self.fail(f"archive maintenance failed: {short_error(exc)}")

    def measure(self) -> None:
        self.disk_bytes = self.call(self.store.disk_bytes)
        self.posts, self.dead_letters = self.call(self.store.counts)
        if self.metrics is not None:
            self.metrics.disk_bytes.set(self.disk_bytes)
            self.metrics.posts.set(self.posts)
            self.metrics.dead_letters.set(self.dead_letters)

    def fail(self, reason: str) -> None:
        if self.error is None:
            self.error_since = time.time()
            log.warning("archive degraded: %s", reason)
        self.error = reason
        if self.metrics is not None:
            self.metrics.up.set(0)

    def ok(self) -> None:
        if self.error is not None:
            log.info("archive recovered")
        self.error = self.error_since = None
        if self.metrics is not None:
            self.metrics.up.set(1)

    def health(self) -> dict[str, Any]:
        return {
            "status": "degraded" if self.error else ("ok" if self.ready else "starting"),
            "engine": self.store.dialect,
            "url": redact(self.store.url),
            "disk_bytes": self.disk_bytes,
            "posts": self.posts,
            "dead_letters": self.dead_letters,
            "retention_days": self.retention_days or None,
            "pruned": self.pruned,
        }


class ArchiveSink(Sink):
    """Scored posts and dead letters into the archive, written behind the stream.

    Args:
        keeper: the archive, its health and its maintenance.
        max_buffered: most posts and dead letters held while the database is slow or away;
            beyond it `write` waits (the stream pauses; nothing is dropped).
        batch_rows: most rows in one transaction.
        max_backoff: longest wait between retries (s).
        close_timeout: how long `close` keeps trying to store what is buffered (s).
    """

    def __init__(
        self,
        keeper: ArchiveKeeper,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        batch_rows: int = 2000,
        max_backoff: float = 30.0,
        close_timeout: float = 10.0,
    ) -> None:
        self.keeper = keeper
        self.store = keeper.store
        self.max_buffered = max_buffered
        self.batch_rows = batch_rows
        self.max_backoff = max_backoff
        self.close_timeout = close_timeout
        self.written = 0
        self.waited = 0  # times the stream waited on a full buffer
        self._items: deque[tuple[bool, Any]] = deque()  # (is a post, record)
        self._cond = threading.Condition()
        self._closing = False
        self._close_deadline = float("inf")
        self._running = False
        self._finished = threading.Event()

    # -- the stream's side ----------------------------------------------------------------
    def write(self, scored: Sequence[ScoredPost]) -> None:
        self._put([(True, s) for s in scored])

    def reject(self, letters: Sequence[DeadLetter]) -> None:
        self._put([(False, letter) for letter in letters])

    def _put(self, items: list[tuple[bool, Any]]) -> None:
        if not items:
            return
        with self._cond:
            if self._full(len(items)):
                self.waited += 1
                log.warning(
                    "archive buffer full (%d waiting): the stream waits for the database",
                    len(self._items),
                )
            while self._full(len(items)):
                self._cond.wait(0.5)
            self._items.extend(items)
            self._cond.notify_all()
        self._gauge()

    def _full(self, adding: int) -> bool:
        # A batch larger than the whole bound still goes into an empty buffer.
        return (
            bool(self._items)
            and len(self._items) + adding > self.max_buffered
            and not self._closing
        )

    @property
    def buffered(self) -> int:
        return len(self._items)

    def flush(self) -> None:
        """Nothing to wait for: the archive is written behind the stream (see `drain`)."""

    def drain(self, timeout: float) -> bool:
        """Wait until everything buffered is committed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._items:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.2))
        return True

    def close(self) -> None:
        """Stop the writer once the buffer is stored, or after `close_timeout` seconds."""
        with self._cond:
            self._closing = True
            self._close_deadline = time.monotonic() + self.close_timeout
            self._cond.notify_all()
        if self._running:
            self._finished.wait(self.close_timeout + 5.0)

    # -- the writer -----------------------------------------------------------------------
    def run(self) -> None:
        """The writer loop: store, retry with backoff, maintain; returns after `close`."""
        self._running = True
        failures = 0
        self.keeper.ensure_ready()  # the schema at start-up, not with the first post
        try:
            while True:
                with self._cond:
                    if not self._items and not self._closing:
                        self._cond.wait(1.0)
                    closing = self._closing
                    batch = list(islice(self._items, self.batch_rows))
                if closing and (not batch or time.monotonic() > self._close_deadline):
                    break
                if not self.keeper.ensure_ready():
                    failures += 1
                    self._pause(failures)
                    continue
                self.keeper.maintain(recover=not batch)
                if not batch:
                    continue
                scored = [record for is_post, record in batch if is_post]
                letters = [record for is_post, record in batch if not is_post]
                try:
                    self.keeper.call(self.store.write, scored, letters)
                except Exception as exc:
                    failures += 1
                    if self.keeper.metrics is not None:
                        self.keeper.metrics.write_failures.inc()
                    self.keeper.fail(
                        f"cannot write to the archive ({len(self._items)} waiting, retrying): "
                        f"{short_error(exc)}"
                    )
                    self._pause(failures)
                    continue
                failures = 0
                with self._cond:
                    for _ in batch:
                        self._items.popleft()
                    self._cond.notify_all()
                self.written += len(batch)
                if self.keeper.metrics is not None:
                    self.keeper.metrics.written.inc(len(batch))
                self._gauge()
                self.keeper.ok()
        finally:
            if self._items:
                log.error(
                    "archive writer stopped with %d posts and dead letters not stored",
                    len(self._items),
                )
            self._finished.set()

    def _pause(self, failures: int) -> None:
        """Back off before the next try: 0.5 s, doubling up to `max_backoff`; `close`
        interrupts the wait."""
        delay = min(self.max_backoff, 0.5 * 2 ** min(failures - 1, 10))
        with self._cond:
            self._cond.wait(0.2 if self._closing else delay)

    def _gauge(self) -> None:
        if self.keeper.metrics is not None:
            self.keeper.metrics.buffered.set(len(self._items))

    def health(self) -> dict[str, Any]:
        status = self.keeper.health()
        status.update(buffered=len(self._items), buffer_limit=self.max_buffered)
        return status


def short_error(exc: BaseException) -> str:
    """The first line of an error: driver messages run to many lines of SQL."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:300]
