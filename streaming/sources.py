"""Where raw posts come from. Every source has the same small interface, so the embedded
synthetic stream, a replayed file and Kafka are interchangeable in the runner.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from streaming.synthetic import SyntheticPostGenerator, strip_private

log = logging.getLogger(__name__)


RawValue = Mapping[str, Any] | bytes | str | None


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One raw post as received, before validation.

    Attributes:
        value: the raw post (a dict, or bytes/str of JSON).
        received_at: wall time it entered SocialPulse.
        position: where it came from (line number, or topic/partition/offset), for errors.
        default_id: id to use when the post has none (stable across redelivery).
        key: the message key, kept on dead letters.
        headers: the message headers, when the source was asked for them.
    """

    value: RawValue
    received_at: float
    position: Mapping[str, Any] = field(default_factory=dict)
    default_id: str | None = None
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes]] | None = None


class Clock(Protocol):
    """Wall time for records and schedules, a monotonic clock for deadlines, and sleep.

    The `time` module is one; tests pass a clock they move by hand.
    """

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class Source(ABC):
    """A stream of raw posts read in micro-batches."""

    name = "source"

    @abstractmethod
    def read_batch(self, batch_max_posts: int, batch_max_wait: float) -> list[SourceRecord]:
        """Up to `batch_max_posts` records, returning early after `batch_max_wait` seconds."""

    @property
    def exhausted(self) -> bool:
        """True once a finite source has nothing more to give."""
        return False

    def checkpoint(self) -> object:
        """A mark of every record returned so far, for a later `commit(mark)`: the runner
        commits a batch while the next one is already read."""
        return None

    def commit(self, checkpoint: object = None) -> bool:
        """Acknowledge the records returned up to `checkpoint` (all so far if None): they
        are scored and written. False if the commit failed and the source rewound."""
        return True

    def rewind(self) -> None:
        """Deliver again every record since the last commit (after a failed batch)."""

    def close(self) -> None:
        """Release connections and files."""


class ReplayingSource(Source):
    """A source that keeps what it handed out since the last commit, to hand it out again
    after a rewind. Subclasses give the records with `_read`."""

    def __init__(self) -> None:
        self._uncommitted: deque[SourceRecord] = deque()
        self._replay: deque[SourceRecord] = deque()
        # Sequence numbers of records handed out: of `_uncommitted[0]`, and of the next one.
        self._first_uncommitted = 0
        self._next_sequence = 0

    @abstractmethod
    def _read(self, batch_max_posts: int, batch_max_wait: float) -> list[SourceRecord]:
        """New records, as `read_batch` promises them."""

    @property
    def exhausted(self) -> bool:
        return not self._replay and self._drained

    @property
    def _drained(self) -> bool:
        """True once `_read` has nothing more to give."""
        return False

    def read_batch(self, batch_max_posts: int, batch_max_wait: float) -> list[SourceRecord]:
        replay = self._replay
        if replay:
            batch = [replay.popleft() for _ in range(min(batch_max_posts, len(replay)))]
        else:
            batch = self._read(batch_max_posts, batch_max_wait)
        self._uncommitted.extend(batch)
        self._next_sequence += len(batch)
        return batch

    def checkpoint(self) -> int:
        return self._next_sequence

    def commit(self, checkpoint: object = None) -> bool:
        upto = self._next_sequence if checkpoint is None else int(checkpoint)  # type: ignore[call-overload]
        for _ in range(min(upto - self._first_uncommitted, len(self._uncommitted))):
            self._uncommitted.popleft()
        self._first_uncommitted = max(self._first_uncommitted, upto)
        return True

    def rewind(self) -> None:
        self._replay.extendleft(reversed(self._uncommitted))
        self._uncommitted.clear()
        self._next_sequence = self._first_uncommitted


class ListSource(ReplayingSource):
    """Raw values from a list, all due at once: for tests and one-off scoring.

    A value without an id gets `<name>-<index>`, the same on every delivery.

    Args:
        values: raw posts (dicts, or bytes/str of JSON), delivered in order.
        name: the source name stamped on posts and dead letters.
        clock: stamps `received_at`.
    """

    def __init__(self, values: Iterable[RawValue], name: str = "list", clock: Clock = time):
        super().__init__()
        self.name = name
        self.clock = clock
        self._values = list(values)
        self._next = 0

    @property
    def _drained(self) -> bool:
        return self._next >= len(self._values)

    def _read(self, batch_max_posts: int, batch_max_wait: float) -> list[SourceRecord]:
        start = self._next
        self._next = min(len(self._values), start + batch_max_posts)
        return [
            SourceRecord(
                self._values[i], self.clock.time(), {"index": i}, default_id=f"{self.name}-{i}"
            )
            for i in range(start, self._next)
        ]


class PacedSource(ReplayingSource):
    """A source that releases posts on a schedule: each post has a due time.

    Args:
        clock: wall time for due times and `received_at`, monotonic time for the wait cap,
            and sleep (default: the `time` module).
    """

    def __init__(self, clock: Clock = time) -> None:
        super().__init__()
        self.clock = clock
        self._pending: tuple[float, RawValue, dict] | None = None
        self._done = False

    @abstractmethod
    def _next(self) -> tuple[float, RawValue, dict] | None:
        """(due wall time, raw value, position) of the next post, or None at the end."""

    @property
    def _drained(self) -> bool:
        return self._done and self._pending is None

    def _read(self, batch_max_posts: int, batch_max_wait: float) -> list[SourceRecord]:
        clock = self.clock
        deadline = clock.monotonic() + batch_max_wait
        batch: list[SourceRecord] = []
        while len(batch) < batch_max_posts:
            if self._pending is None and not self._done:
                self._pending = self._next()
                self._done = self._pending is None
            if self._pending is None:
                break
            due, value, position = self._pending
            wait = due - clock.time()
            if wait > 0:
                remaining = deadline - clock.monotonic()
                if remaining <= 0:
                    break
                clock.sleep(min(wait, remaining))
                continue
            batch.append(SourceRecord(value, clock.time(), position))
            self._pending = None
        return batch


class SyntheticSource(PacedSource):
    """The embedded default: realistic synthetic posts at `rate` per second (0 = unpaced)."""

    name = "synthetic"

    def __init__(
        self,
        rate: float = 20.0,
        seed: int = 7,
        limit: int | None = None,
        clock: Clock = time,
        run_id: str | None = None,
    ) -> None:
        super().__init__(clock)
        self.rate = rate
        self.limit = limit
        self.generator = SyntheticPostGenerator(seed=seed)
        # Every start is a new stream: its post ids carry the start time, so a restarted
        # server's posts are new posts, never taken for those of the last run (the archive
        # and the dashboard keep one post per id).
        self.run_id = run_id if run_id is not None else format(int(clock.time() * 1000), "x")
        self._count = 0
        self._due = clock.time()

    def _next(self):
        if self.limit is not None and self._count >= self.limit:
            return None
        self._count += 1
        if self.rate > 0:
            self._due = max(self._due + 1.0 / self.rate, self.clock.time() - 1.0)
        raw = strip_private(self.generator.next_post())
        raw["id"] = f"{raw['id']}-r{self.run_id}"
        return (self._due if self.rate > 0 else 0.0), raw, {"seq": self._count}


@dataclass(frozen=True)
class ColumnMapping:
    """Which column of a file holds which field of a post (None: not in the file)."""

    text: str = "text"
    id: str | None = "id"
    author: str | None = "author"
    created_at: str | None = "created_at"
    hashtags: str | None = None
    author_followers: str | None = None
    likes: str | None = None
    shares: str | None = None
    replies: str | None = None
    time_format: str | None = None  # strptime format when times are not ISO 8601


JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
DELIMITED_SUFFIXES = (".csv", ".tsv", ".tab")


def file_suffix(path: Path) -> str:
    """The lower-cased suffix of a file this module can read; ValueError for any other."""
    suffix = path.suffix.lower()
    if suffix not in JSONL_SUFFIXES + DELIMITED_SUFFIXES:
        raise ValueError(f"unsupported file type {suffix!r}: use .csv, .tsv or .jsonl")
    return suffix


def read_rows(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row) from a CSV, TSV or JSONL file; the format comes from the suffix.

    A JSONL line that is not a JSON object is yielded as its text, so validation can say why.
    """
    suffix = file_suffix(path)
    with path.open("r", encoding=encoding, newline="", errors="strict") as handle:
        if suffix in JSONL_SUFFIXES:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError):  # ValueError also covers huge integers
                    row = None
                yield number, row if isinstance(row, dict) else line
        else:
            reader = csv.DictReader(handle, delimiter="\t" if suffix != ".csv" else ",")
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:  # e.g. a field over csv.field_size_limit()
                    log.warning(
                        "%s: skipped an unreadable row after line %d: %s",
                        path.name,
                        reader.line_num,
                        exc,
                    )
                    continue
                yield reader.line_num, row


def parse_file_time(value: Any, time_format: str | None) -> datetime | None:
    """A file's timestamp as an aware datetime, or None when it cannot be read."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        if time_format:
            parsed = datetime.strptime(text, time_format)
        else:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                from dateutil import parser as date_parser

                parsed = date_parser.parse(text)
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def row_to_raw_post(row: Mapping[str, Any], mapping: ColumnMapping) -> dict[str, Any]:
    """Map a file row onto the raw post fields; validation happens later, in one place."""
    raw: dict[str, Any] = {"text": row.get(mapping.text)}
    if mapping.id and row.get(mapping.id) not in (None, ""):
        raw["id"] = str(row[mapping.id])
    if mapping.author and row.get(mapping.author) not in (None, ""):
        raw["author"] = str(row[mapping.author])
    if mapping.created_at:
        created = parse_file_time(row.get(mapping.created_at), mapping.time_format)
        raw["created_at"] = created.isoformat() if created else row.get(mapping.created_at)
    if mapping.hashtags and row.get(mapping.hashtags):
        tags = row[mapping.hashtags]
        raw["hashtags"] = tags if isinstance(tags, list) else str(tags).replace(",", " ").split()
    if mapping.author_followers and row.get(mapping.author_followers) not in (None, ""):
        raw["author_followers"] = _as_int(row[mapping.author_followers])
    counts = {
        key: _as_int(row.get(column))
        for key, column in (
            ("likes", mapping.likes),
            ("shares", mapping.shares),
            ("replies", mapping.replies),
        )
        if column and row.get(column) not in (None, "")
    }
    if counts:
        raw["engagement"] = counts
    return raw


def _as_int(value: Any) -> Any:
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):  # OverflowError: "inf"
        return value  # left as is: validation reports the wrong type


class FileSource(PacedSource):
    """Replays a CSV/TSV/JSONL file as a stream.

    Args:
        path: the file.
        mapping: which column holds which field.
        speed: pace relative to the original timestamps (2.0 = twice as fast); None or 0
            replays as fast as possible.
        encoding: text encoding of the file (e.g. latin-1).
        limit: stop after this many rows.
        clock: see `PacedSource`.
    """

    name = "file"

    def __init__(
        self,
        path: str | Path,
        mapping: ColumnMapping | None = None,
        speed: float | None = None,
        encoding: str = "utf-8",
        limit: int | None = None,
        clock: Clock = time,
    ) -> None:
        super().__init__(clock)
        self.path = Path(path)
        if not self.path.exists() or self.path.is_dir():  # a named pipe is a file here too
            raise FileNotFoundError(f"no such file: {self.path}")
        file_suffix(self.path)  # fail now, not at the first read in the stream thread
        self.mapping = mapping or ColumnMapping()
        self.speed = speed or None
        self.limit = limit
        self._rows = read_rows(self.path, encoding)
        self._count = 0
        self._origin: tuple[float, float] | None = None  # (first event time, wall start)

    def _next(self):
        if self.limit is not None and self._count >= self.limit:
            return None
        try:
            number, row = next(self._rows)
        except StopIteration:
            return None
        except UnicodeDecodeError as exc:
            log.error("%s is not valid in its encoding (%s); stopping the replay", self.path, exc)
            return None
        self._count += 1
        position = {"file": self.path.name, "line": number}
        if isinstance(row, str):
            return 0.0, row, position
        raw = row_to_raw_post(row, self.mapping)
        due = 0.0
        if self.speed:
            event = parse_file_time(
                row.get(self.mapping.created_at or ""), self.mapping.time_format
            )
            if event is not None:
                if self._origin is None:
                    self._origin = (event.timestamp(), self.clock.time())
                first_event, wall_start = self._origin
                due = wall_start + (event.timestamp() - first_event) / self.speed
        return due, raw, position
