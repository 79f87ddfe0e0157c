"""Replays of recorded posts in event-time order, paced ×N or as fast as possible.

A replay input is an iterator of `ReplayItem`s (a file's rows, archived posts, Kafka
messages from a time range). `in_event_order` puts them in event-time order with a bounded
buffer, and `ReplaySource` hands them to the runner on an event-time schedule that can be
paused, resumed and stopped, and reports its progress (posts handed out, the replay clock).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streaming.sources import (
    Clock,
    ColumnMapping,
    RawValue,
    ReplayingSource,
    SourceRecord,
    parse_file_time,
    read_rows,
    row_to_raw_post,
)

log = logging.getLogger(__name__)

DEFAULT_ORDER_BOUND = 200_000  # rows held to put a replay in event-time order
MAX_SPEED = 1_000_000.0  # ×N beyond this is "as fast as possible" mistyped
PAUSE_TICK = 0.05  # how often a paused replay looks whether it may go on (s)


@dataclass(frozen=True, slots=True)
class ReplayItem:
    """One recorded post: its event time (None when it has none that can be read), the
    raw value, and where it came from (file and line, topic/partition/offset...)."""

    event_time: float | None
    value: RawValue
    position: Mapping[str, Any] = field(default_factory=dict)
    default_id: str | None = None


@dataclass
class OrderedInput:
    """Items in event-time order, with what is known of them before they are replayed.

    Attributes:
        items: the items, oldest first.
        total: how many there are, when known.
        first, last: the event times they span, when known.
        sorted_fully: True when every item was ordered (else within a bounded buffer).
    """

    items: Iterator[ReplayItem]
    total: int | None = None
    first: float | None = None
    last: float | None = None
    sorted_fully: bool = True

    @property
    def span(self) -> float | None:
        if self.first is None or self.last is None:
            return None
        return max(0.0, self.last - self.first)


def check_speed(speed: float | None) -> float | None:
    """A replay pace: None or 0 is as fast as possible; ValueError for a negative, absurd
    or non-finite one."""
    if speed is None or speed == 0:
        return None
    if not math.isfinite(speed) or speed < 0:
        raise ValueError(f"speed must be a positive number (or 0 for full speed), not {speed}")
    if speed > MAX_SPEED:
        raise ValueError(f"speed must be at most ×{MAX_SPEED:,.0f} (0 replays at full speed)")
    return float(speed)


def _sort_key(item: ReplayItem) -> float:
    # Items without a time go first: they are dead letters (or a file without times).
    return -math.inf if item.event_time is None else item.event_time


def in_event_order(items: Iterable[ReplayItem], bound: int = DEFAULT_ORDER_BOUND) -> OrderedInput:
    """Put `items` in event-time order, ties in their original order.

    Up to `bound` items are read first: when that is all of them, they are sorted and the
    replay is in exact event-time order, with its count and span known. A longer input is
    replayed through a reordering buffer of `bound` items: the oldest buffered item goes
    out as each new one comes in, so an item out of place by fewer than `bound` positions
    still lands in order; one further out is handed out late (the aggregates then count it
    as late when its window is gone). Memory stays within `bound` items either way.
    """
    if bound < 1:
        raise ValueError("the ordering bound must be at least 1 item")
    iterator = iter(items)
    head = list(itertools.islice(iterator, bound))
    counter = itertools.count()
    first_extra = next(iterator, None)
    if first_extra is None:
        head.sort(key=_sort_key)  # stable: ties keep their order
        times = [i.event_time for i in head if i.event_time is not None]
        return OrderedInput(
            iter(head),
            len(head),
            min(times) if times else None,
            max(times) if times else None,
        )
    heap = [(_sort_key(item), next(counter), item) for item in head]
    heapq.heapify(heap)
    times = [key for key, _, _ in heap if key != -math.inf]

    def reorder() -> Iterator[ReplayItem]:
        late = 0
        watermark = -math.inf
        for item in itertools.chain([first_extra], iterator):
            key, _, out = heapq.heappushpop(heap, (_sort_key(item), next(counter), item))
            if key < watermark:
                late += 1
            watermark = max(watermark, key)
            yield out
        while heap:
            yield heapq.heappop(heap)[2]
        if late:
            log.warning("%d items came more than %d places out of event-time order", late, bound)

    return OrderedInput(
        reorder(),
        None,
        min(times) if times else None,
        None,
        sorted_fully=False,
    )


def file_items(
    path: str | Path, mapping: ColumnMapping | None = None, encoding: str = "utf-8"
) -> Iterator[ReplayItem]:
    """A file's rows as replay items, with their line numbers (so a broken row's dead
    letter says where it is)."""
    path = Path(path)
    mapping = mapping or ColumnMapping()
    name = path.name
    try:
        for number, row in read_rows(path, encoding):
            position = {"file": name, "line": number}
            if isinstance(row, str):  # a JSONL line that is not an object
                yield ReplayItem(None, row, position)
                continue
            event = None
            if mapping.created_at:
                parsed = parse_file_time(row.get(mapping.created_at), mapping.time_format)
                event = parsed.timestamp() if parsed is not None else None
            yield ReplayItem(event, row_to_raw_post(row, mapping), position, f"{name}:{number}")
    except UnicodeDecodeError as exc:
        log.error("%s is not valid in its encoding (%s); the replay stops there", path, exc)


class ReplaySource(ReplayingSource):
    """Hands out ordered replay items on an event-time schedule.

    At `speed` ×N, an item whose event time is t seconds after the first item's is due
    t / N seconds (of wall time, pauses left out) after the replay started; with no speed,
    items are handed out as fast as they are asked for. Items without an event time are
    due at once. `pause`, `resume` and `stop` may be called from any thread.

    Args:
        ordered: the items in event-time order (see `in_event_order`).
        speed: ×N of the original pace; None or 0 for as fast as possible.
        name: the source name stamped on posts and dead letters.
        clock: see `streaming.sources.Clock`.
    """

    def __init__(
        self,
        ordered: OrderedInput,
        speed: float | None = None,
        name: str = "replay",
        clock: Clock = time,
    ) -> None:
        super().__init__()
        self.name = name
        self.ordered = ordered
        self.speed = check_speed(speed)
        self.clock = clock
        self.handed_out = 0
        self.replay_clock: float | None = None  # event time of the newest item handed out
        self._items = ordered.items
        self._pending: ReplayItem | None = None
        self._done = False
        self._stopped = False
        self._origin: tuple[float, float] | None = None  # (first event time, monotonic start)
        # Set from other threads (the page's requests) without a lock: each is one
        # assignment, and a lock here would be gevent's in the server, not a thread's.
        self._paused_at: float | None = None

    # -- control --------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    @property
    def stopped(self) -> bool:
        return self._stopped

    def pause(self) -> None:
        if self._paused_at is None and not self._stopped:
            self._paused_at = self.clock.monotonic()

    def resume(self) -> None:
        """Go on from where the replay paused: the pause does not count as replayed time."""
        paused_at = self._paused_at
        if paused_at is None:
            return
        if self._origin is not None:
            first, start = self._origin
            self._origin = (first, start + self.clock.monotonic() - paused_at)
        self._paused_at = None

    def stop(self) -> None:
        """End the replay: nothing more is handed out."""
        self._stopped = True
        self._paused_at = None

    @property
    def _drained(self) -> bool:
        return self._stopped or (self._done and self._pending is None)

    # -- reading --------------------------------------------------------------------------
    def _read(self, batch_max_posts: int, batch_max_wait: float) -> list[SourceRecord]:
        clock = self.clock
        deadline = clock.monotonic() + batch_max_wait
        batch: list[SourceRecord] = []
        while len(batch) < batch_max_posts and not self._stopped:
            if self._paused_at is not None:
                remaining = deadline - clock.monotonic()
                if remaining <= 0:
                    break
                clock.sleep(min(PAUSE_TICK, remaining))
                continue
            if self._pending is None:
                if self._done:
                    break
                self._pending = next(self._items, None)
                if self._pending is None:
                    self._done = True
                    break
            item = self._pending
            wait = self._wait(item)
            if wait > 0:
                remaining = deadline - clock.monotonic()
                if remaining <= 0:
                    break
                # Short naps: a pause or a stop takes effect within PAUSE_TICK.
                clock.sleep(min(wait, remaining, PAUSE_TICK))
                continue
            batch.append(SourceRecord(item.value, clock.time(), item.position, item.default_id))
            self._pending = None
            self.handed_out += 1
            if item.event_time is not None:
                self.replay_clock = max(self.replay_clock or item.event_time, item.event_time)
        return batch

    def _wait(self, item: ReplayItem) -> float:
        """Seconds until `item` is due."""
        if self.speed is None or item.event_time is None:
            return 0.0
        if self._origin is None:
            self._origin = (item.event_time, self.clock.monotonic())
        first, start = self._origin
        return start + (item.event_time - first) / self.speed - self.clock.monotonic()

    def progress(self) -> dict[str, Any]:
        """Where the replay is: items handed out of how many, and the replay clock."""
        total = self.ordered.total
        fraction = None
        if total:
            fraction = min(1.0, self.handed_out / total)
        elif self.ordered.span and self.replay_clock is not None and self.ordered.first:
            fraction = min(
                1.0, max(0.0, self.replay_clock - self.ordered.first) / self.ordered.span
            )
        if self.exhausted and not self._stopped:
            fraction = 1.0
        return {
            "handed_out": self.handed_out,
            "total": total,
            "fraction": None if fraction is None else round(fraction, 4),
            "replay_clock": self.replay_clock,
            "first": self.ordered.first,
            "last": self.ordered.last,
            "speed": self.speed,
            "paused": self.paused,
        }
