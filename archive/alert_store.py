"""Alerts in the archive: every state of an alert, its acknowledgement and its resolution,
kept so that history survives a restart and is the same on every web node.

An alert is stored by its deterministic id (a digest of its kind, subject and first
window), so the nodes that all detect it, or a node that writes it again after an outage,
change one row. Each write carries a `revision`: a later window's state replaces an
earlier one, never the reverse. Acknowledgements are kept on the row, and a later state of
the alert never takes them back.

Records are the dictionaries alerts are shown as (`insights.alerts.Alert.to_dict`): `id`,
`kind`, `subject`, `first_window`, `window_start`, `window_end`, `observed`, `expected`,
`score`, `p_value`, `severity`, `explanation`, `samples` (dicts with `id`, `author`,
`text`, `compound`, `created_at`), `explore_url`, `status`, `occurrences`,
`resolved_at` and, optionally, `provisional`.

`AlertWriter` writes them behind the stream: `put` and `acknowledge` only take note and
return; a background loop stores what waits and retries, with backoff, while the database
is unavailable. Several states of one alert waiting are merged into the newest, so what
waits is bounded by the number of alerts, not by how often they change.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, case, delete, or_, select, update

from archive.schema import alerts
from archive.sink import ArchiveKeeper, short_error
from archive.store import ArchiveStore, clean_text

log = logging.getLogger(__name__)
_DAY = 86_400.0
MAX_PENDING = 50_000  # alert states waiting for the database; the oldest go first beyond it
Record = Mapping[str, Any]


def revision(record: Record) -> float:
    """Which state of an alert is newer: a later window wins; at the same window, the
    closed window's verdict wins over the provisional one."""
    moment = max(float(record["window_end"]), float(record.get("resolved_at") or 0.0))
    return 2.0 * moment + (0.0 if record.get("provisional") else 1.0)


def alert_row(record: Record, now: float) -> dict[str, Any]:
    samples = [
        {
            "id": clean_text(str(s["id"])),
            "author": clean_text(str(s["author"])),
            "text": clean_text(str(s["text"])),
            "compound": float(s["compound"]),
            "created_at": float(s["created_at"]),
        }
        for s in record.get("samples", ())
    ]
    return {
        "id": str(record["id"])[:64],
        "kind": clean_text(str(record["kind"]))[:40],
        "subject": clean_text(str(record["subject"]))[:300],
        "first_window": float(record["first_window"]),
        "window_start": float(record["window_start"]),
        "window_end": float(record["window_end"]),
        "observed": float(record["observed"]),
        "expected": float(record["expected"]),
        "score": float(record["score"]),
        "p_value": float(record["p_value"]),
        "severity": clean_text(str(record["severity"]))[:20],
        "explanation": clean_text(str(record["explanation"])),
        "samples": orjson.dumps(samples).decode(),
        "sample_ids": orjson.dumps([s["id"] for s in samples]).decode(),
        "explore_url": clean_text(str(record["explore_url"])),
        "status": clean_text(str(record["status"]))[:20],
        "occurrences": int(record["occurrences"]),
        "provisional": int(bool(record.get("provisional"))),
        "resolved_at": record.get("resolved_at"),
        "revision": revision(record),
        "first_seen_at": now,
        "updated_at": now,
    }


def record_from_row(row: Any) -> dict[str, Any]:
    """An alert as the page and the API show it, from its row."""
    return {
        "id": row.id,
        "kind": row.kind,
        "subject": row.subject,
        "window_start": row.window_start,
        "window_end": row.window_end,
        "observed": row.observed,
        "expected": row.expected,
        "score": row.score,
        "p_value": row.p_value,
        "severity": row.severity,
        "explanation": row.explanation,
        "samples": orjson.loads(row.samples),
        "explore_url": row.explore_url,
        "status": row.status,
        "occurrences": row.occurrences,
        "first_window": row.first_window,
        "resolved_at": row.resolved_at,
        "provisional": bool(row.provisional),
        "acknowledged_at": row.acknowledged_at,
        "acknowledged_by": row.acknowledged_by,
    }


@dataclass(frozen=True)
class Acknowledgement:
    by: str | None
    at: float


class AlertStore:
    """The `alerts` table of one archive (migrated with the rest by `ArchiveStore`)."""

    def __init__(self, store: ArchiveStore) -> None:
        self.store = store

    def _insert(self) -> Any:
        if self.store.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        upsert = insert(alerts)
        excluded = upsert.excluded
        kept = {"id", "first_seen_at", "acknowledged_at", "acknowledged_by", "status"}
        changed = {c.name: excluded[c.name] for c in alerts.columns if c.name not in kept}
        # An acknowledged alert that fires again stays acknowledged, whichever node saw
        # the acknowledgement.
        changed["status"] = case(
            (
                and_(excluded.status == "open", alerts.c.acknowledged_at.is_not(None)),
                "acknowledged",
            ),
            else_=excluded.status,
        )
        return upsert.on_conflict_do_update(
            index_elements=[alerts.c.id],
            set_=changed,
            where=excluded.revision >= alerts.c.revision,
        )

    def save(
        self,
        records: Sequence[Record] = (),
        acknowledgements: Mapping[str, Acknowledgement] | None = None,
        now: float | None = None,
    ) -> int:
        """Store alert states and acknowledgements in one transaction; how many
        acknowledgements found their alert (one already acknowledged counts: it stays as
        it was first acknowledged)."""
        now = time.time() if now is None else now
        rows: dict[str, dict[str, Any]] = {}
        for record in records:
            row = alert_row(record, now)
            known = rows.get(row["id"])
            if known is None or row["revision"] >= known["revision"]:
                rows[row["id"]] = row
        found = 0
        with self.store.engine.begin() as connection:
            if rows:
                connection.execute(self._insert(), list(rows.values()))
            for alert_id, ack in (acknowledgements or {}).items():
                connection.execute(
                    update(alerts)
                    .where(alerts.c.id == alert_id, alerts.c.acknowledged_at.is_(None))
                    .values(
                        acknowledged_at=ack.at,
                        acknowledged_by=clean_text(ack.by)[:200] if ack.by else None,
                        status=case(
                            (alerts.c.status == "open", "acknowledged"), else_=alerts.c.status
                        ),
                        updated_at=now,
                    )
                )
                exists = connection.execute(
                    select(alerts.c.id).where(alerts.c.id == alert_id)
                ).first()
                found += exists is not None
        return found

    def get(self, alert_id: str) -> dict[str, Any] | None:
        with self.store.engine.connect() as connection:
            row = connection.execute(select(alerts).where(alerts.c.id == alert_id)).first()
        return None if row is None else record_from_row(row)

    def query(
        self,
        kind: str | None = None,
        severity: str | None = None,
        status: str | None = None,
        subject: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Alerts newest first (by the window they first fired in, then id), filtered;
        `before` continues a page from its last alert's `(first_window, id)`."""
        statement = select(alerts)
        for column, value in (
            (alerts.c.kind, kind),
            (alerts.c.severity, severity),
            (alerts.c.status, status),
            (alerts.c.subject, subject),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if before is not None:
            first_window, alert_id = before
            statement = statement.where(
                or_(
                    alerts.c.first_window < first_window,
                    and_(alerts.c.first_window == first_window, alerts.c.id < alert_id),
                )
            )
        statement = statement.order_by(alerts.c.first_window.desc(), alerts.c.id.desc()).limit(
            limit
        )
        with self.store.engine.connect() as connection:
            return [record_from_row(row) for row in connection.execute(statement)]

    def prune(self, retention_days: float, now: float | None = None) -> int:
        """Delete alerts first stored more than `retention_days` ago (0: keep them)."""
        if retention_days <= 0:
            return 0
        cutoff = (time.time() if now is None else now) - retention_days * _DAY
        with self.store.engine.begin() as connection:
            gone = connection.execute(delete(alerts).where(alerts.c.first_seen_at < cutoff))
        return gone.rowcount or 0


def sort_key(record: Record) -> tuple[float, str]:
    """The order alerts are listed in, newest first when reversed."""
    return (float(record["first_window"]), str(record["id"]))


class AlertWriter:
    """Alert states and acknowledgements into the archive, behind the stream.

    Args:
        keeper: the archive (its schema, health and the thread its calls run on).
        max_backoff: longest wait between retries (s).
        max_pending: most alerts waiting; beyond it the oldest wait no more (logged).
        prune_every: seconds between deletions of alerts past the keeper's retention.
    """

    def __init__(
        self,
        keeper: ArchiveKeeper,
        max_backoff: float = 30.0,
        max_pending: int = MAX_PENDING,
        prune_every: float = 3600.0,
    ) -> None:
        self.keeper = keeper
        self.store = AlertStore(keeper.store)
        self.max_backoff = max_backoff
        self.max_pending = max_pending
        self.prune_every = prune_every
        self.written = 0
        self.dropped = 0
        self._records: OrderedDict[str, Record] = OrderedDict()
        self._acks: dict[str, Acknowledgement] = {}
        self._cond = threading.Condition()
        self._closing = False
        self._close_deadline = math.inf
        self._next_prune = 0.0
        self._finished = threading.Event()
        self._running = False

    # -- the stream's and the pages' side -------------------------------------------------
    def put(self, records: Sequence[Record]) -> None:
        """Take alert states to store; returns at once."""
        if not records:
            return
        with self._cond:
            for record in records:
                alert_id = record["id"]
                known = self._records.get(alert_id)
                if known is None or revision(record) >= revision(known):
                    self._records[alert_id] = record
                    self._records.move_to_end(alert_id)
            while len(self._records) > self.max_pending:
                self._records.popitem(last=False)
                self.dropped += 1
                log.error("alert archive: %d alerts waiting, the oldest dropped", self.max_pending)
            self._cond.notify_all()

    def acknowledge(self, alert_id: str, by: str | None, at: float | None = None) -> None:
        """Take an acknowledgement to store (the first one of an alert is kept)."""
        with self._cond:
            self._acks.setdefault(alert_id, Acknowledgement(by, time.time() if at is None else at))
            self._cond.notify_all()

    def pending(self) -> tuple[list[Record], dict[str, Acknowledgement]]:
        """What waits to be stored: alert states, and acknowledgements by alert id."""
        with self._cond:
            return list(self._records.values()), dict(self._acks)

    @property
    def waiting(self) -> int:
        return len(self._records) + len(self._acks)

    # -- the writer -----------------------------------------------------------------------
    def write_pending(self) -> bool:
        """Store what waits now, in one transaction; False (and the archive degraded)
        when the database refuses. Safe to call from any thread."""
        records, acks = self.pending()
        if not records and not acks:
            return True
        if not self.keeper.ensure_ready():
            return False
        try:
            self.keeper.call(self.store.save, records, acks)
        except Exception as exc:
            self.keeper.fail(
                f"cannot store alerts ({len(records) + len(acks)} waiting, retrying): "
                f"{short_error(exc)}"
            )
            return False
        with self._cond:
            for record in records:  # unless a newer state came meanwhile
                if self._records.get(record["id"]) is record:
                    del self._records[record["id"]]
            for alert_id, ack in acks.items():
                if self._acks.get(alert_id) is ack:
                    del self._acks[alert_id]
            self._cond.notify_all()
        self.written += len(records)
        self.keeper.ok()
        return True

    def run(self) -> None:
        """The writer loop: store, retry with backoff, prune; returns after `close`."""
        self._running = True
        failures = 0
        try:
            while True:
                with self._cond:
                    if not self._records and not self._acks and not self._closing:
                        self._cond.wait(1.0)
                    closing = self._closing
                    empty = not self._records and not self._acks
                if closing and (empty or time.monotonic() > self._close_deadline):
                    break
                self._prune()
                if empty:
                    continue
                if self.write_pending():
                    failures = 0
                    continue
                failures += 1
                delay = min(self.max_backoff, 0.5 * 2 ** min(failures - 1, 10))
                with self._cond:
                    self._cond.wait(0.2 if self._closing else delay)
        finally:
            if self._records or self._acks:
                log.error("alert writer stopped with %d alert changes not stored", self.waiting)
            self._finished.set()

    def _prune(self) -> None:
        keeper = self.keeper
        now = time.monotonic()
        if not keeper.ready or keeper.retention_days <= 0 or now < self._next_prune:
            return
        self._next_prune = now + self.prune_every
        try:
            gone = keeper.call(self.store.prune, keeper.retention_days)
        except Exception as exc:
            log.warning("alert retention failed (tried again later): %s", short_error(exc))
            return
        if gone:
            log.info("alert retention: deleted %d alerts", gone)

    def drain(self, timeout: float) -> bool:
        """Wait until everything waiting is stored; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._records or self._acks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.2))
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Stop the loop once what waits is stored, or after `timeout` seconds."""
        with self._cond:
            self._closing = True
            self._close_deadline = time.monotonic() + timeout
            self._cond.notify_all()
        if self._running:
            self._finished.wait(timeout + 5.0)
        elif self.waiting:
            self.write_pending()  # no loop ran (a process that never streamed): one try
