"""Pipeline health alerts: the dead-letter rate and the scoring latency, each against its
own learned baseline, over wall-clock windows (a minute by default).

These watch the machinery, not the posts, so they run on the clock rather than on event
time: unlike the other detectors they are not the same at every replay speed.

- **Dead letters.** The window's dead letters out of everything that arrived, against the
  usual rate (an EWMA, at least `floor_rate`): a binomial tail p-value under `alpha`, with
  at least `min_letters` dead letters.
- **Latency.** The window's 95th percentile of the time from a post's arrival to its
  score, on a log scale, against the usual level and spread (EWMAs): at least `min_z`
  standard deviations above and over `min_latency_ms`.
- **Consumer lag.** The highest lag of the workers' consumer group seen in the window
  (messages of the posts topic not yet consumed), fed by `observe_lag`: at least `min_lag`
  messages and `lag_ratio` × its usual level (an EWMA, at least `min_lag / lag_ratio`),
  so a pipeline that always runs some way behind (large batches) is not news. A window
  with only lag measurements in it (the workers stopped, so no post arrives) closes like
  any other.
Nothing fires before `warmup_windows` windows of history; a firing window feeds the
baseline at a quarter of the usual rate, as for the other detectors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from scipy import stats

from insights.alerts import Alert, AlertEngine, AlertRules, Finding
from insights.windows import SubjectWindow, WindowSummary
from streaming.metrics import percentile
from streaming.records import ScoredPost

MAX_LATENCY_SAMPLES = 5000  # per window; every k-th post beyond that


@dataclass
class HealthWindow:
    start: float
    scored: int = 0
    letters: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    lag: int | None = None  # the highest consumer lag measured in the window


class PipelineHealth:
    """Feeds on what the dashboard receives; `observe` returns the alerts a closing
    window opened, extended or resolved."""

    def __init__(
        self,
        window_seconds: float = 60.0,
        alpha: float = 0.001,
        warmup_windows: int = 5,
        min_letters: int = 20,
        floor_rate: float = 0.001,
        min_latency_ms: float = 1000.0,
        min_z: float = 4.0,
        span: float = 30.0,
        min_lag: int = 1000,
        lag_ratio: float = 10.0,
    ) -> None:
        self.window_seconds = window_seconds
        self.alpha = alpha
        self.warmup_windows = warmup_windows
        self.min_letters = min_letters
        self.floor_rate = floor_rate
        self.min_latency_ms = min_latency_ms
        self.min_z = min_z
        self.min_lag = min_lag
        self.lag_ratio = lag_ratio
        self.usual_lag: float | None = None
        self.rate = 2.0 / (span + 1.0)
        self.engine = AlertEngine(AlertRules(window_seconds=window_seconds))
        self.windows_seen = 0
        self.letter_rate: float | None = None
        self.latency_mean: float | None = None  # of log(p95 ms)
        self.latency_variance = 0.05
        self._window: HealthWindow | None = None

    def observe(self, scored: Sequence[ScoredPost], letters: int, now: float) -> list[Alert]:
        changed = self._advance(now)
        window = self._window
        assert window is not None
        window.scored += len(scored)
        window.letters += letters
        room = MAX_LATENCY_SAMPLES - len(window.latencies_ms)
        if room > 0 and scored:
            for post in scored[:: max(1, math.ceil(len(scored) / room))]:
                if post.received_at > 0 and post.scored_at >= post.received_at:
                    window.latencies_ms.append((post.scored_at - post.received_at) * 1000.0)
        return changed

    def observe_lag(self, lag: int | None, now: float) -> list[Alert]:
        """Take one measurement of the workers' consumer lag (None: not measurable now)."""
        changed = self._advance(now)
        window = self._window
        assert window is not None
        if lag is not None:
            window.lag = lag if window.lag is None else max(window.lag, lag)
        return changed

    def _advance(self, now: float) -> list[Alert]:
        start = math.floor(now / self.window_seconds) * self.window_seconds
        current = self._window
        if current is not None and current.start == start:
            return []
        self._window = HealthWindow(start)
        if current is None or (current.scored + current.letters == 0 and current.lag is None):
            return []
        return self._close(current)

    def _close(self, window: HealthWindow) -> list[Alert]:
        findings: list[Finding] = []
        summary = WindowSummary(window.start, self.window_seconds, window.scored)
        arrived = window.scored + window.letters
        warm = self.windows_seen >= self.warmup_windows
        letters_fire = False
        usual = max(self.letter_rate or 0.0, self.floor_rate)
        if warm and window.letters >= self.min_letters:
            p = float(stats.binom.sf(window.letters - 1, arrived, usual))
            if p < self.alpha:
                letters_fire = True
                findings.append(
                    Finding(
                        "pipeline_health",
                        "pipeline:dead_letters",
                        window.letters,
                        round(usual * arrived, 2),
                        p,
                        "critical" if window.letters >= 0.2 * arrived else "warning",
                        f"dead letters: {window.letters} of {arrived} records in the last "
                        f"minute ({window.letters / arrived:.1%}), usually {usual:.2%}",
                        SubjectWindow(),
                    )
                )
        latency_fire = False
        p95 = percentile(window.latencies_ms, 0.95) if window.latencies_ms else None
        if p95 is not None and warm and self.latency_mean is not None:
            level = math.log(max(p95, 1.0))
            z = (level - self.latency_mean) / math.sqrt(max(self.latency_variance, 1e-4))
            if z >= self.min_z and p95 >= self.min_latency_ms:
                latency_fire = True
                usual_ms = math.exp(self.latency_mean)
                findings.append(
                    Finding(
                        "pipeline_health",
                        "pipeline:latency",
                        round(p95, 1),
                        round(usual_ms, 1),
                        float(stats.norm.sf(z)),
                        "critical" if p95 >= 10 * usual_ms else "warning",
                        f"scoring latency: p95 {p95:,.0f} ms in the last minute, usually "
                        f"{usual_ms:,.0f} ms",
                        SubjectWindow(),
                    )
                )
        lag_fire = False
        if window.lag is not None:
            usual_lag = max(self.usual_lag or 0.0, self.min_lag / self.lag_ratio)
            if warm and window.lag >= self.min_lag and window.lag >= self.lag_ratio * usual_lag:
                lag_fire = True
                findings.append(
                    Finding(
                        "pipeline_health",
                        "pipeline:consumer_lag",
                        window.lag,
                        round(usual_lag, 1),
                        # How unlikely: the lag as a Poisson count around the usual level.
                        max(float(stats.poisson.sf(window.lag - 1, usual_lag)), 1e-300),
                        "critical" if window.lag >= 10 * self.min_lag else "warning",
                        f"consumer lag: the workers are {window.lag:,} posts behind, usually "
                        f"{usual_lag:,.0f}",
                        SubjectWindow(),
                    )
                )
            step = self.rate * (0.25 if lag_fire else 1.0)
            if self.usual_lag is None:
                self.usual_lag = float(window.lag)
            else:
                self.usual_lag += step * (window.lag - self.usual_lag)
        if arrived:
            self._learn(window.letters / arrived, p95, letters_fire, latency_fire)
        self.windows_seen += 1
        return self.engine.settle(findings, summary)

    def _learn(
        self, letter_rate: float, p95: float | None, letters_fire: bool, latency_fire: bool
    ) -> None:
        step = self.rate * (0.25 if letters_fire else 1.0)
        if self.letter_rate is None:
            self.letter_rate = letter_rate
        else:
            self.letter_rate += step * (letter_rate - self.letter_rate)
        if p95 is None:
            return
        level = math.log(max(p95, 1.0))
        if self.latency_mean is None:
            self.latency_mean = level
            return
        step = self.rate * (0.25 if latency_fire else 1.0)
        gap = level - self.latency_mean
        self.latency_mean += step * gap
        self.latency_variance = (1 - step) * (self.latency_variance + step * gap * gap)
