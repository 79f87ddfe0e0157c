"""Alerts on the live stream: the detectors fed with every scored post the dashboard sees,
a bounded history, acknowledgements, Prometheus counters and webhooks.

Every web node runs the detectors on the whole stream (its own in embedded mode, the scored
topic with Kafka). Event-time windows make the result the same on every node and at any
replay speed; only webhooks should be configured on a single node, or receivers get one
copy per node (they carry the alert's id to drop repeats).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from app.webhooks import WebhookSender
from archive.alert_store import AlertWriter, revision, sort_key
from insights.alert_rules import AlertRulesError, RuleSet, RulesFile
from insights.alerts import ALERT_KINDS, SEVERITIES, Alert, AlertEngine, AlertRules
from insights.health import PipelineHealth
from insights.tracked import TopicMatcher
from insights.windows import EventTimeWindows, WindowSummary
from streaming.records import ScoredPost

log = logging.getLogger(__name__)
STATUSES = ("open", "acknowledged", "resolved", "withdrawn")
_CURSOR = re.compile(r"(-?[0-9]{1,12}(?:\.[0-9]{1,9})?):([0-9a-f]{1,64})")


class AlertFilterError(ValueError):
    """A filter of the alert list that cannot be applied; the message says why."""


@dataclass(frozen=True)
class AlertFilter:
    kind: str | None = None
    severity: str | None = None
    status: str | None = None
    subject: str | None = None
    limit: int = 100
    before: tuple[float, str] | None = None  # continue after this (first_window, id)

    def matches(self, record: dict[str, Any]) -> bool:
        if self.before is not None and sort_key(record) >= self.before:
            return False
        return not (
            (self.kind and record["kind"] != self.kind)
            or (self.severity and record["severity"] != self.severity)
            or (self.status and record["status"] != self.status)
            or (self.subject and record["subject"] != self.subject)
        )

    @classmethod
    def parse(cls, args: Any, max_limit: int = 500) -> AlertFilter:
        """From query arguments; unknown or bad values are refused with the reason."""
        known = {"kind", "severity", "status", "subject", "limit", "before"}
        unknown = sorted(set(args) - known)
        if unknown:
            raise AlertFilterError(f"unknown filter {unknown[0]!r}; use {', '.join(sorted(known))}")
        choices = {"kind": ALERT_KINDS, "severity": SEVERITIES, "status": STATUSES}
        values: dict[str, Any] = {}
        for name, allowed in choices.items():
            value = args.get(name) or None
            if value is not None and value not in allowed:
                raise AlertFilterError(f"{name} must be one of {', '.join(allowed)}")
            values[name] = value
        subject = args.get("subject") or None
        if subject is not None and len(subject) > 200:
            raise AlertFilterError("subject is at most 200 characters")
        raw_limit = args.get("limit") or "100"
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= max_limit:
            raise AlertFilterError(f"limit must be a whole number from 1 to {max_limit}")
        before = None
        raw_before = args.get("before") or None
        if raw_before is not None:
            match = _CURSOR.fullmatch(raw_before)
            if match is None:
                raise AlertFilterError("before must be the `next` value of the previous page")
            before = (float(match[1]), match[2])
        return cls(subject=subject, limit=int(raw_limit), before=before, **values)


def cursor(record: dict[str, Any]) -> str:
    """Where the next page starts: after this alert."""
    first_window, alert_id = sort_key(record)
    return f"{first_window:.3f}".rstrip("0").rstrip(".") + f":{alert_id}"


@dataclass
class AlertPage:
    """One page of alerts, newest first; `next` continues it (None: the last page);
    `stored` is False when they come from this node's memory (the archive is off or
    cannot be read)."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    next: str | None = None
    stored: bool = False


class LiveAlerts:
    """Windows, detectors and the newest `history` alerts of one node.

    `write` runs in the stream's loop; the page, the API and the dashboard read from other
    threads, so every access holds the lock (detection is cheap next to scoring).
    """

    def __init__(
        self,
        rules: AlertRules,
        keywords: Sequence[str] = (),
        history: int = 1000,
        webhooks: WebhookSender | None = None,
        registry: CollectorRegistry | None = None,
        rules_file: RulesFile | None = None,
    ) -> None:
        self.windows = EventTimeWindows(rules.window_seconds, rules.lateness_seconds, keywords)
        self.engine = AlertEngine(rules)
        self.health = PipelineHealth()
        self.base_rules = rules
        self.rules_file = rules_file
        self.rule_set = RuleSet()
        self.rules_error: str | None = None  # why the file's rules are not in use
        if rules_file is not None:
            try:
                self._use(rules_file.load(rules))
            except (AlertRulesError, OSError) as exc:
                self.rules_error = f"{rules_file.path}: {exc}; the default rules apply"
        self.history_size = history
        self.webhooks = webhooks
        # Where alerts are kept for every node and restart (None: this node's memory only).
        self.archive: AlertWriter | None = None
        self.version = 0
        self._alerts: OrderedDict[str, dict[str, Any]] = OrderedDict()  # newest last
        self._changed: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._counter = Counter(
            "socialpulse_alerts",
            "Alerts raised, by kind and severity",
            ["kind", "severity"],
            registry=registry or CollectorRegistry(),
        )

    def write(self, scored: Sequence[ScoredPost]) -> None:
        with self._lock:
            changes = self._close(self.windows.advance(scored))
            changes += self.health.observe(scored, 0, time.time())
            self._keep(changes)

    def track(self, topics: TopicMatcher) -> None:
        """Watch these tracked topics too (subjects `topic:<name>`), from the next post on."""
        with self._lock:
            self.windows.topics = topics

    def reject(self, letters: int) -> None:
        """Count dead letters for the pipeline's health."""
        with self._lock:
            self._keep(self.health.observe((), letters, time.time()))

    def observe_lag(self, lag: int | None) -> None:
        """Take a measurement of the workers' consumer lag for the pipeline's health."""
        with self._lock:
            self._keep(self.health.observe_lag(lag, time.time()))

    @property
    def warm_seconds(self) -> float:
        """How much history the baselines need: the warm-up and the share's span."""
        rules = self.engine.rules
        return rules.window_seconds * (rules.warmup_windows + rules.share_span)

    def warm(self, posts: Sequence[ScoredPost]) -> None:
        """Learn from past posts (oldest first) before the live ones: baselines, and the
        alerts they raised, kept as history without webhooks, counters or toasts."""
        with self._lock:
            self._keep(self._close(self.windows.advance(posts)), announce=False)

    def _close(self, events: Sequence[tuple[bool, WindowSummary]]) -> list[Alert]:
        """Windows that ended (provisional alerts) and closed, in the order they did."""
        changes = []
        engine = self.engine
        for ended, window in events:
            changes += engine.preview_window(window) if ended else engine.close_window(window)
        return changes

    def _keep(self, changes: list[Alert], announce: bool = True) -> None:
        """Keep alert changes in the history; `announce` them to the dashboard, the
        counters and the webhooks too (not for history being replayed)."""
        for alert in changes:
            record = alert.to_dict()
            new = alert.id not in self._alerts
            self._alerts[alert.id] = record
            self._alerts.move_to_end(alert.id)
            if not announce:
                continue  # replayed history: the archive has it already
            if self.archive is not None:
                self.archive.put([record])
            self._changed[alert.id] = record
            if new:
                self._counter.labels(alert.kind, alert.severity).inc()
            if self.webhooks is not None and (new or record["status"] in ("resolved", "withdrawn")):
                self.webhooks.send("alert", record)
        while len(self._alerts) > self.history_size:
            self._alerts.popitem(last=False)
        if changes and announce:
            self.version += 1

    def take_changes(self) -> list[dict[str, Any]]:
        """Alerts opened, extended or resolved since the last call (for the dashboard)."""
        with self._lock:
            changed = list(self._changed.values())
            self._changed.clear()
        return changed

    def recent(self, wanted: AlertFilter | None = None) -> list[dict[str, Any]]:
        """The newest alerts first, filtered."""
        return self.page(wanted).alerts

    def page(self, wanted: AlertFilter | None = None) -> AlertPage:
        """A page of alerts, newest first: from the archive (with what still waits to be
        stored), or from this node's memory when there is no archive or it cannot be read."""
        wanted = wanted or AlertFilter()
        if self.archive is not None:
            try:
                return self._stored_page(wanted)
            except Exception as exc:
                log.warning("alert history from memory: cannot read the archive: %s", exc)
        with self._lock:
            records = list(self._alerts.values())
        chosen = sorted((r for r in records if wanted.matches(r)), key=sort_key, reverse=True)
        page = chosen[: wanted.limit]
        more = len(chosen) > wanted.limit
        return AlertPage(page, cursor(page[-1]) if more else None, stored=False)

    def _stored_page(self, wanted: AlertFilter) -> AlertPage:
        writer = self.archive
        assert writer is not None
        if not writer.keeper.ensure_ready():  # the schema, once per process
            raise RuntimeError(writer.keeper.error or "the archive is not ready")
        stored = writer.keeper.call(
            writer.store.query,
            wanted.kind,
            wanted.severity,
            wanted.status,
            wanted.subject,
            wanted.before,
            wanted.limit,
        )
        waiting, acks = writer.pending()
        merged = {r["id"]: r for r in stored}
        for record in waiting:
            known = merged.get(record["id"])
            if known is None or revision(record) >= revision(known):
                taken = dict(record)
                if known is not None and known.get("acknowledged_at") is not None:
                    taken.update(
                        acknowledged_at=known["acknowledged_at"],
                        acknowledged_by=known["acknowledged_by"],
                    )
                    if taken["status"] == "open":
                        taken["status"] = "acknowledged"
                merged[record["id"]] = taken
        for alert_id, ack in acks.items():
            record = merged.get(alert_id)
            if record is not None and record.get("acknowledged_at") is None:
                merged[alert_id] = record = dict(
                    record, acknowledged_at=ack.at, acknowledged_by=ack.by
                )
                if record["status"] == "open":
                    record["status"] = "acknowledged"
        chosen = sorted(
            (r for r in merged.values() if wanted.matches(r)), key=sort_key, reverse=True
        )
        page = chosen[: wanted.limit]
        full = len(stored) >= wanted.limit or len(chosen) > wanted.limit
        return AlertPage(page, cursor(page[-1]) if page and full else None, stored=True)

    def acknowledge(self, alert_id: str, by: str | None = None) -> dict[str, Any] | None:
        """Mark an alert seen, here and in the archive; None when neither knows it."""
        with self._lock:
            engine = next(
                (e for e in (self.engine, self.health.engine) if alert_id in e.alerts), None
            )
            record = None
            if alert_id in self._alerts and engine is not None:
                self._keep([engine.acknowledge(alert_id)])
                record = self._alerts[alert_id]
        writer = self.archive
        if writer is None:
            return record
        if record is None:
            waiting = {r["id"]: r for r in writer.pending()[0]}
            record = waiting.get(alert_id)
            if record is None:
                try:
                    record = writer.keeper.call(writer.store.get, alert_id)
                except Exception as exc:
                    log.warning("cannot look the alert up in the archive: %s", exc)
            if record is None:
                return None
        writer.acknowledge(alert_id, by)
        writer.write_pending()  # at once if the database is there; retried otherwise
        if record["status"] == "open":
            record = dict(record, status="acknowledged")
        return record

    def _use(self, rule_set: RuleSet) -> None:
        self.rule_set = rule_set
        self.engine.rules = rule_set.apply_to(self.base_rules)
        self.engine.overrides = dict(rule_set.subjects)

    def save_rules(self, text: str) -> RuleSet:
        """Check and keep new rules (in the file too); on AlertRulesError nothing changes."""
        if self.rules_file is None:
            raise AlertRulesError("this node keeps no rules file")
        with self._lock:
            rule_set = self.rules_file.save(text, self.base_rules)
            self._use(rule_set)
            self.rules_error = None
            return rule_set

    def flush(self) -> None:
        """Close the open windows (a finite source ended)."""
        with self._lock:
            self._keep(self._close([(False, w) for w in self.windows.flush()]))
