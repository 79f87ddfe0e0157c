"""How good the alert detectors are, on generated streams with events planted at known times.

The streams are made of closed windows (what the detectors see), drawn as a real feed
behaves: subjects of very different sizes, a daily cycle in the whole stream's volume,
overdispersed (gamma-Poisson) counts, and each subject its own usual sentiment. A calm
stream has no events: every alert on it is a false alarm. A planted stream adds volume
bursts of several sizes, sentiment shifts and new topics at known windows.

Scores: recall per event type and burst size, precision (alerts that match a planted
event ÷ all alerts), detection delay in windows (0: flagged in the event's first window)
and false alarms per hour of calm stream.

Early (provisional) alerts are evaluated too: each window is first shown to the detectors
as it stood when it ended, without the posts that arrive late (`LATE_SHARE` of each
subject's, drawn at random), then closed whole. The figures above are the closed windows'
alerts, which the early looks do not change; `early` reports how many alerts were raised
early, how many of those the close withdrew, and early alarms on the calm streams.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from insights.alerts import Alert, AlertEngine, AlertRules
from insights.windows import SubjectWindow, WindowSummary

BURST_SIZES = (2.0, 3.0, 5.0, 10.0)
EVENT_WINDOWS = 3  # how long a planted burst or shift lasts
NEW_TOPIC_WINDOWS = 6
MATCH_SLACK = 2  # windows after an event's end an alert may still start and match it
LATE_SHARE = 0.05  # of a window's posts that arrive after it ended, within the lateness
TARGETS = {
    "recall_bursts_5x_or_more": 0.95,
    "precision": 0.9,
    "median_delay_windows": 2.0,
    "false_alarms_per_6_hours": 1.0,
}


@dataclass(frozen=True)
class PlantedEvent:
    kind: str  # "burst", "shift" or "new"
    subject: str
    start: int  # window index
    windows: int
    size: float  # burst multiplier, sentiment shift, or new topic's posts per window
    posts: float = 0.0  # posts per window the subject is expected to have during the event

    @property
    def alert_kind(self) -> str:
        return {"burst": "volume_spike", "shift": "sentiment_shift", "new": "emerging"}[self.kind]


@dataclass(frozen=True)
class GeneratedStream:
    windows: list[WindowSummary]
    events: list[PlantedEvent]
    window_seconds: float

    @property
    def hours(self) -> float:
        return len(self.windows) * self.window_seconds / 3600.0


class StreamGenerator:
    """Closed windows of a synthetic feed.

    Args:
        subjects: hashtags in the stream.
        window_seconds: window length.
        seed: everything random comes from it.
    """

    def __init__(self, subjects: int = 40, window_seconds: float = 600.0, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.window_seconds = window_seconds
        # Sizes from 3 to 60 posts per window at the daily mean, evenly on a log scale.
        self.rates = np.exp(self.rng.uniform(math.log(3), math.log(60), subjects))
        self.moods = self.rng.uniform(-0.3, 0.4, subjects)
        self.names = [f"#topic{i:02d}" for i in range(subjects)]
        self.dispersion = 0.05
        self.post_sd = 0.4
        self.start = 1_767_225_600.0  # 2026-01-01T00:00Z

    def season(self, index: int) -> float:
        day = 86_400.0 / self.window_seconds
        return 1.0 + 0.5 * math.sin(2.0 * math.pi * index / day)

    def stream(self, windows: int, events: list[PlantedEvent] | None = None) -> GeneratedStream:
        events = events or []
        out = []
        for index in range(windows):
            season = self.season(index)
            summary = WindowSummary(self.start + index * self.window_seconds, self.window_seconds)
            summary.total = int(self.rng.poisson(300 * season))
            for name, rate, mood in zip(self.names, self.rates, self.moods, strict=True):
                mean, shift = rate * season, 0.0
                for event in events:
                    if event.subject == name and event.start <= index < event.start + event.windows:
                        if event.kind == "burst":
                            mean *= event.size
                        elif event.kind == "shift":
                            shift = event.size
                self._add(summary, name, mean, mood + shift)
            for event in events:
                if event.kind == "new" and event.start <= index < event.start + event.windows:
                    self._add(summary, event.subject, event.size * season, 0.0)
            out.append(summary)
        return GeneratedStream(out, events, self.window_seconds)

    def _add(self, summary: WindowSummary, name: str, mean: float, mood: float) -> None:
        shape = 1.0 / self.dispersion
        count = int(self.rng.poisson(self.rng.gamma(shape, mean / shape)))
        if count == 0:
            return
        compounds = np.clip(self.rng.normal(mood, self.post_sd, count), -1.0, 1.0)
        summary.subjects[name] = SubjectWindow(
            count=count,
            compound_sum=float(compounds.sum()),
            compound_squares=float((compounds**2).sum()),
            negative=int((compounds <= -0.05).sum()),
        )
        summary.total += count

    def planted_events(self, windows: int, warmup: int) -> list[PlantedEvent]:
        """Bursts of every size, sentiment shifts and new topics, one subject at a time and
        spaced so each event is judged on its own."""
        kinds = [("burst", size) for size in BURST_SIZES for _ in range(8)]
        kinds += [("shift", 0.0)] * 10 + [("new", 0.0)] * 10
        order = self.rng.permutation(len(kinds))
        slots = np.linspace(warmup, windows - NEW_TOPIC_WINDOWS - MATCH_SLACK - 1, len(kinds))
        # Subjects taken in turn, so one subject's events lie far apart (never merged).
        any_size = iter(np.tile(self.rng.permutation(len(self.names)), len(kinds)).tolist())
        # A mean needs posts to be judged: shifts go to the larger subjects.
        large = np.flatnonzero(self.rates >= 25)
        larger = iter(np.tile(self.rng.permutation(large), len(kinds)).tolist())
        events = []
        for slot, pick in zip(slots.astype(int).tolist(), order.tolist(), strict=True):
            kind, size = kinds[pick]
            if kind == "new":
                name = f"#new{len(events):02d}"
                events.append(PlantedEvent("new", name, slot, NEW_TOPIC_WINDOWS, 25.0))
                continue
            if kind == "shift":
                subject = next(larger)
                size = -0.5 if self.moods[subject] > -0.1 else 0.5
            else:
                subject = next(any_size)
            posts = self.rates[subject] * self.season(slot) * (size if kind == "burst" else 1.0)
            events.append(
                PlantedEvent(kind, self.names[subject], slot, EVENT_WINDOWS, size, float(posts))
            )
        return events


def ended_view(
    window: WindowSummary, rng: np.random.Generator, late_share: float = LATE_SHARE
) -> WindowSummary:
    """A window as it stood when it ended: every subject, and the stream's total, less the
    posts that were still to come (each post late with probability `late_share`)."""
    view = WindowSummary(window.start, window.seconds)
    counted = 0
    for name, seen in window.subjects.items():
        counted += seen.count
        kept = int(rng.binomial(seen.count, 1.0 - late_share))
        if kept:
            share = kept / seen.count
            view.subjects[name] = SubjectWindow(
                count=kept,
                compound_sum=seen.compound_sum * share,
                compound_squares=seen.compound_squares * share,
                negative=round(seen.negative * share),
            )
    others = max(window.total - counted, 0)
    view.total = sum(s.count for s in view.subjects.values()) + int(
        rng.binomial(others, 1.0 - late_share)
    )
    return view


@dataclass
class EarlyCounts:
    raised: int = 0  # alerts first raised provisionally, when their window ended
    withdrawn: int = 0  # of those, the ones their window's close did not confirm


def run_early(
    windows: list[WindowSummary],
    rules: AlertRules,
    rng: np.random.Generator,
    counts: EarlyCounts,
    late_share: float = LATE_SHARE,
) -> list[Alert]:
    """The alerts of a stream in their last state, each window looked at when it ended
    (provisional alerts, counted in `counts`) and when it closed; the same alerts as
    `run_windows` gives, withdrawn ones aside."""
    engine = AlertEngine(rules)
    final: dict[str, Alert] = {}
    for window in windows:
        counts.raised += len(engine.preview_window(ended_view(window, rng, late_share)))
        for alert in engine.close_window(window):
            if alert.status == "withdrawn":
                counts.withdrawn += 1
            else:
                final[alert.id] = alert
    return list(final.values())


def match(stream: GeneratedStream, alerts: list[Alert]) -> tuple[list[int | None], set[str]]:
    """Each planted event's detection delay in windows (None: missed), and the ids of the
    alerts that match an event: same subject and kind, starting between the event's first
    window and `MATCH_SLACK` windows after its last."""
    seconds = stream.window_seconds
    origin = stream.windows[0].start if stream.windows else 0.0
    matched: set[str] = set()
    delays: list[int | None] = []
    for event in stream.events:
        last = event.start + event.windows - 1 + MATCH_SLACK
        starts = {
            alert.id: round((alert.first_window - origin) / seconds)
            for alert in alerts
            if alert.subject == event.subject and alert.kind == event.alert_kind
        }
        hits = {i: w for i, w in starts.items() if event.start <= w <= last}
        matched.update(hits)
        delays.append(min(hits.values()) - event.start if hits else None)
    return delays, matched


def _recall(outcomes: list[tuple[PlantedEvent, int | None]]) -> float | None:
    return round(sum(d is not None for _, d in outcomes) / len(outcomes), 3) if outcomes else None


def evaluate_alerts(
    rules: AlertRules | None = None,
    seeds: int = 5,
    days: float = 3.0,
    calm_days: float = 7.0,
) -> dict[str, Any]:
    """The detectors on `seeds` planted streams and as many calm ones, pooled, against the
    targets. Recall of bursts of 5× or more counts the bursts that reach `min_count` posts
    per window (fewer never alert, by design); `recall` has every kind and size."""
    rules = rules or AlertRules()
    per_day = round(86_400.0 / rules.window_seconds)
    outcomes: list[tuple[PlantedEvent, int | None]] = []
    alerts = matched = calm_alerts = 0
    calm_hours = 0.0
    unmatched: list[str] = []
    calm_examples: list[str] = []
    early, calm_early = EarlyCounts(), EarlyCounts()
    for seed in range(seeds):
        late = np.random.default_rng(5000 + seed)  # which posts come late: its own draws
        generator = StreamGenerator(window_seconds=rules.window_seconds, seed=seed)
        windows = round(days * per_day)
        planted = generator.stream(windows, generator.planted_events(windows, per_day // 4))
        found = run_early(planted.windows, rules, late, early)
        delays, hit = match(planted, found)
        outcomes += list(zip(planted.events, delays, strict=True))
        alerts += len(found)
        matched += len(hit)
        unmatched += [a.explanation for a in found if a.id not in hit]
        calm = StreamGenerator(window_seconds=rules.window_seconds, seed=1000 + seed)
        calm_stream = calm.stream(round(calm_days * per_day))
        false_alarms = run_early(calm_stream.windows, rules, late, calm_early)
        calm_alerts += len(false_alarms)
        calm_hours += calm_stream.hours
        calm_examples += [a.explanation for a in false_alarms]
    recall: dict[str, float | None] = {
        f"burst_{size:g}x": _recall(
            [(e, d) for e, d in outcomes if e.kind == "burst" and e.size == size]
        )
        for size in BURST_SIZES
    }
    recall["shift"] = _recall([(e, d) for e, d in outcomes if e.kind == "shift"])
    recall["new"] = _recall([(e, d) for e, d in outcomes if e.kind == "new"])
    strong = [(e, d) for e, d in outcomes if e.kind == "burst" and e.size >= 5.0]
    delays = [d for _, d in outcomes if d is not None]
    figures = {
        "recall_bursts_5x_or_more": _recall(
            [(e, d) for e, d in strong if e.posts >= rules.min_count]
        ),
        "precision": round(matched / alerts, 3) if alerts else None,
        "median_delay_windows": statistics.median(delays) if delays else None,
        "false_alarms_per_6_hours": round(calm_alerts / calm_hours * 6.0, 3),
    }
    lower_is_better = {"median_delay_windows", "false_alarms_per_6_hours"}
    met = {
        name: value is not None
        and (value <= TARGETS[name] if name in lower_is_better else value >= TARGETS[name])
        for name, value in figures.items()
    }
    return {
        "rules": asdict(rules),
        "seeds": seeds,
        "planted": {
            "streams": seeds,
            "hours": round(seeds * days * 24, 1),
            "events": len(outcomes),
            "alerts": alerts,
            "recall": recall,
            "recall_bursts_5x_or_more_any_size": _recall(strong),
            "unmatched_alerts": unmatched,
        },
        "calm": {
            "hours": round(calm_hours, 1),
            "false_alarms": calm_alerts,
            "alerts": calm_examples,
        },
        "early": {
            "late_share": LATE_SHARE,
            "raised": early.raised,
            "withdrawn": early.withdrawn,
            "withdrawn_share": round(early.withdrawn / early.raised, 3) if early.raised else None,
            "calm_raised": calm_early.raised,
            "calm_early_alarms_per_6_hours": round(calm_early.raised / calm_hours * 6.0, 3),
        },
        "figures": figures,
        "targets": TARGETS,
        "met": met,
    }
