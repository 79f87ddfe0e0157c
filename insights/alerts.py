"""Alert detectors over closed event-time windows, and the alerts they raise.

Every subject (a hashtag, a topic cluster, a keyword) keeps a baseline that is learned as
windows close. The baselines, and why they are the right tests:

- **Volume.** A subject's expected count is its usual *share* of the stream (an
  exponentially weighted mean over past windows) times the stream's total in this window.
  Daily seasonality and quiet nights are in the total, so the expectation follows them
  without a seasonal model per subject. Counts of social posts are overdispersed, so the
  test is negative binomial (variance μ + φμ²), not Poisson; φ is the stream's, a pooled
  method-of-moments estimate over every calm subject (one subject's few windows would make
  it too noisy to trust), with residuals cut at 3 standard deviations. A burst that builds
  over two windows is also tested on the two windows' sum, which finds smaller subjects'
  bursts one window later instead of never.
- **Sentiment shift.** The window's mean compound against the subject's usual mean, with
  the standard error of a mean of n posts plus the usual window-to-window drift.
- **Emerging.** A subject younger than `warmup_windows` (no usual share to speak of yet)
  with a count that the floor expectation `floor_expected` cannot explain (the same test).
- **Viral.** A post far above its topic's and its author's usual engagement
  (`insights.windows.ViralDetector`); the strongest few of a window become alerts.

Many subjects are tested in every window, so a window's p-values are compared with
`alpha / subjects tested` (Bonferroni; a subject is tested when it has the posts to fire):
`alpha` bounds the chance of any false alarm in a window, whatever the number of subjects.
A firing window feeds its baseline only slowly (`absorb`), so a burst does not hide itself,
while a lasting change becomes the new normal.
Repeated firing of one subject merges into one alert (`cooldown_windows`); an alert resolves
itself after `resolve_windows` calm windows in a row.

**Early alerts.** A window closes only once its late posts had their time (the lateness),
but waiting for that would make every alert a minute late. So the detectors also look at a
window as soon as it *ends* (`preview_window`: the first post past its end arrived), with
the baselines as they are and without learning from it. What they find then is raised at
once as a *provisional* alert, under the id it will keep. When the window closes, the same
tests run on the whole window: a finding confirmed there becomes the ordinary alert (the
same alert, with the final figures); a provisional alert not confirmed is *withdrawn*.
Both steps depend on the posts' order only, so replays stay deterministic.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from scipy import stats

from insights.windows import SamplePost, SubjectWindow, WindowSummary

ALERT_KINDS = ("volume_spike", "sentiment_shift", "emerging", "viral", "pipeline_health")
SEVERITIES = ("info", "warning", "critical")
MAX_DISPERSION = 2.0


@dataclass(frozen=True)
class AlertRules:
    """Detector settings; the defaults are meant for any stream (documented in README)."""

    window_seconds: float = 600.0
    lateness_seconds: float = 60.0
    alpha: float = 0.001  # chance of any false alarm in a window, per detector
    min_count: int = 10  # fewer posts than this never make a volume alert
    min_ratio: float = 2.5  # observed ÷ expected below this never makes a volume alert
    floor_expected: float = 0.5  # posts per window expected of a subject never seen
    warmup_windows: int = 6  # windows of history before a subject's baseline is trusted
    share_span: float = 12.0  # windows the usual share averages over (EWMA span)
    absorb: float = 0.25  # a firing window moves the baseline this fraction of usual
    min_sentiment_posts: int = 10
    min_sentiment_shift: float = 0.15
    max_viral_per_window: int = 3  # the strongest viral candidates of a window become alerts
    cooldown_windows: int = 6
    resolve_windows: int = 2
    max_subjects: int = 50_000  # baselines kept; the longest unseen go first

    def __post_init__(self) -> None:
        checks = {
            "window_seconds": self.window_seconds > 0,
            "lateness_seconds": self.lateness_seconds >= 0,
            "alpha": 0 < self.alpha < 1,
            "min_count": self.min_count >= 1,
            "min_ratio": self.min_ratio >= 1,
            "floor_expected": self.floor_expected > 0,
            "warmup_windows": self.warmup_windows >= 1,
            "share_span": self.share_span >= 1,
            "absorb": 0 <= self.absorb <= 1,
            "min_sentiment_posts": self.min_sentiment_posts >= 2,
            "min_sentiment_shift": self.min_sentiment_shift >= 0,
            "max_viral_per_window": self.max_viral_per_window >= 0,
            "cooldown_windows": self.cooldown_windows >= 0,
            "resolve_windows": self.resolve_windows >= 1,
            "max_subjects": self.max_subjects >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid alert rules: {', '.join(bad)} out of range")


@dataclass(frozen=True)
class SubjectRule:
    """Overrides for one subject: its own minimum count, a sensitivity (× `alpha`: above 1
    it fires more readily, below 1 less), its own cooldown, or no alerts at all."""

    min_count: int | None = None
    sensitivity: float = 1.0
    cooldown_windows: int | None = None
    mute: bool = False


_NO_OVERRIDE = SubjectRule()


@dataclass
class Baseline:
    """What is usual for one subject."""

    windows: int = 0  # windows with history, since the subject was first seen
    share: float = 0.0
    previous: tuple[int, float] = (0, 0.0)  # last window's count and expected count
    mean: float | None = None  # usual mean compound
    post_variance: float = 0.1  # usual variance of one post's compound
    drift: float = 0.0  # usual variance of window means around `mean`, beyond sampling
    last_seen: float = 0.0  # start of the last window with posts


@dataclass
class Alert:
    """One alert, merged over the windows it kept firing in."""

    id: str
    kind: str
    subject: str
    window_start: float
    window_end: float
    observed: float
    expected: float
    score: float  # -log10 of the p-value
    p_value: float
    severity: str
    explanation: str
    samples: list[SamplePost]
    explore_url: str
    status: str = "open"  # open → acknowledged → resolved; or withdrawn (provisional only)
    occurrences: int = 1
    first_window: float = 0.0
    resolved_at: float | None = None
    calm_windows: int = 0
    provisional: bool = False  # raised when its window ended, not yet confirmed at close

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record.pop("calm_windows")
        return record


@dataclass(frozen=True)
class Finding:
    """A detector's verdict on one subject in one window, before merging into alerts."""

    kind: str
    subject: str
    observed: float
    expected: float
    p_value: float
    severity: str
    explanation: str
    window: SubjectWindow = field(compare=False)


def nb_tail(observed: float, expected: float, dispersion: float) -> float:
    """P(X ≥ observed) for a negative binomial of mean `expected`, variance μ + φμ²."""
    if dispersion <= 1e-9:
        return float(stats.poisson.sf(observed - 1, expected))
    size = 1.0 / dispersion
    return float(stats.nbinom.sf(observed - 1, size, size / (size + expected)))


EXPLORE_FILTERS = ("from", "to", "q", "hashtag", "cluster", "author", "sentiment")


def explore_url(
    subject: str,
    start: float,
    end: float,
    author: str | None = None,
    sentiment: str | None = None,
) -> str:
    """The Explore page filtered on an alert: its subject (a hashtag, a topic cluster, a
    keyword as the query, a post by its author) and its windows' event-time range, in
    whole epoch seconds covering the range; `sentiment` narrows it to one mood."""
    query: dict[str, Any] = {"from": math.floor(start), "to": math.ceil(end)}
    if subject.startswith("#"):
        query["hashtag"] = subject[1:]
    elif subject.startswith("cluster:"):
        query["cluster"] = subject.split(":", 1)[1]
    elif subject.startswith("keyword:"):
        query["q"] = subject.split(":", 1)[1]
    elif subject.startswith("topic:"):
        query["tracked"] = subject.split(":", 1)[1]
    if author is not None:
        query["author"] = author
    if sentiment is not None:
        query["sentiment"] = sentiment
    return "/explore?" + urlencode(query)


def finding_url(finding: Finding, start: float, end: float) -> str:
    """`explore_url` for a finding: a viral post by its author, a sentiment shift on the
    side it moved to."""
    author = sentiment = None
    if finding.kind == "viral" and finding.window.samples:
        author = finding.window.sample_posts()[0].author
    elif finding.kind == "sentiment_shift":
        sentiment = "negative" if finding.observed < finding.expected else "positive"
    return explore_url(finding.subject, start, end, author=author, sentiment=sentiment)


def _named(subject: str, seen: SubjectWindow) -> str:
    """How an alert names its subject: a topic cluster by its words."""
    if subject.startswith("cluster:") and seen.label:
        return f"topic “{seen.label}” ({subject.replace(':', ' ')})"
    if subject.startswith("topic:"):
        return f"tracked topic {subject.split(':', 1)[1]}"
    return subject


def _minutes(seconds: float) -> str:
    minutes = seconds / 60.0
    return f"{minutes:g} min" if minutes < 120 else f"{minutes / 60:g} h"


def _times(ratio: float) -> str:
    return f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.1f}×"


class AlertEngine:
    """Closes windows into baselines and alerts; deterministic for the same windows."""

    def __init__(self, rules: AlertRules | None = None) -> None:
        self.rules = rules or AlertRules()
        self.baselines: dict[str, Baseline] = {}
        self.alerts: dict[str, Alert] = {}  # open, acknowledged, or resolved within cooldown
        self._open: dict[tuple[str, str], str] = {}  # (kind, subject) → id of its alert
        self.windows_seen = 0
        self.dispersion = 0.1  # φ of the negative binomial, learned from calm subjects
        self.overrides: dict[str, SubjectRule] = {}
        # (kind, subject) → id of a provisional alert, until its window closes.
        self._provisional: dict[tuple[str, str], str] = {}

    def rule(self, subject: str) -> SubjectRule:
        return self.overrides.get(subject, _NO_OVERRIDE)

    def min_count(self, subject: str) -> int:
        return self.rule(subject).min_count or self.rules.min_count

    def _findings(self, window: WindowSummary) -> list[Finding]:
        return [
            finding
            for finding in self._volume_findings(window)
            + self._sentiment_findings(window)
            + self._viral_findings(window)
            if not self.rule(finding.subject).mute  # learned from, never raised
        ]

    def preview_window(self, window: WindowSummary) -> list[Alert]:
        """Test a window that ended but is not closed (late posts may still come): what
        fires now and is not already an alert is raised as a provisional alert. Nothing
        is learned; `close_window` confirms or withdraws them."""
        if window.total <= 0:
            return []
        raised = []
        for finding in self._findings(window):
            key = (finding.kind, finding.subject)
            if key in self._open or key in self._provisional:
                continue  # already an alert: its window's close extends it
            alert = self._new_alert(finding, window)
            alert.provisional = True
            self.alerts[alert.id] = alert
            self._provisional[key] = alert.id
            raised.append(replace(alert))
        return raised

    def close_window(self, window: WindowSummary) -> list[Alert]:
        """Test every subject of a closed window, update the baselines, and return the
        alerts this window opened, extended, confirmed or withdrew (each a snapshot)."""
        if window.total <= 0:
            return self._withdraw(window, set())
        findings = self._findings(window)
        self._learn(window, {f.subject for f in findings})
        changed = self.settle(findings, window)
        changed += self._withdraw(window, {(f.kind, f.subject) for f in findings})
        self.windows_seen += 1
        return changed

    def _withdraw(self, window: WindowSummary, confirmed: set[tuple[str, str]]) -> list[Alert]:
        """Provisional alerts of `window` that its close did not confirm."""
        withdrawn = []
        for key, alert_id in list(self._provisional.items()):
            alert = self.alerts[alert_id]
            if alert.first_window != window.start or key in confirmed:
                continue
            del self._provisional[key]
            del self.alerts[alert_id]
            alert.status, alert.provisional = "withdrawn", False
            withdrawn.append(alert)
        return withdrawn

    def settle(self, findings: list[Finding], window: WindowSummary) -> list[Alert]:
        """Turn one window's findings into alerts: new ones, merged repeats, and the alerts
        that stayed calm long enough to resolve."""
        rules = self.rules
        firing = {(f.kind, f.subject) for f in findings}
        changed = [self._record(f, window) for f in findings]
        for key, alert_id in list(self._open.items()):
            if key in firing:
                continue
            alert = self.alerts[alert_id]
            alert.calm_windows += 1
            if alert.status != "resolved" and alert.calm_windows >= rules.resolve_windows:
                alert.status = "resolved"
                alert.resolved_at = window.end
                changed.append(replace(alert))
            cooldown = self.rule(alert.subject).cooldown_windows
            if cooldown is None:
                cooldown = rules.cooldown_windows
            if alert.status == "resolved" and alert.calm_windows > cooldown:
                del self._open[key]  # past its cooldown: the engine forgets it
                del self.alerts[alert_id]
        return changed

    def acknowledge(self, alert_id: str) -> Alert:
        alert = self.alerts[alert_id]
        if alert.status == "open":
            alert.status = "acknowledged"
        return replace(alert)

    # -- detectors --------------------------------------------------------------------------

    def _volume_findings(self, window: WindowSummary) -> list[Finding]:
        rules = self.rules
        total = window.total
        subjects = window.subjects
        # Subjects under `min_count` can never fire, so they are not among the tests.
        tested = sum(w.count >= self.min_count(s) for s, w in subjects.items())
        stream_warm = self.windows_seen >= rules.warmup_windows
        findings = []
        for subject in sorted(subjects):
            seen = subjects[subject]
            count = seen.count
            min_count = self.min_count(subject)
            if count < min_count:
                continue
            threshold = rules.alpha * self.rule(subject).sensitivity / max(1, tested)
            baseline = self.baselines.get(subject)
            new = baseline is None or baseline.windows < rules.warmup_windows
            if new and not stream_warm:
                continue  # at the start of a stream everything is new
            expected = max(rules.floor_expected, (0.0 if new else baseline.share) * total)
            if count < rules.min_ratio * expected:
                continue
            p = nb_tail(count, expected, self.dispersion)
            if not new and baseline.previous[1] > 0:
                # A burst that builds over two windows: their sum against its expectation
                # (two tests per subject now, so each gets half the threshold).
                last_count, last_expected = baseline.previous
                both = expected + last_expected
                dispersion = self.dispersion * (expected**2 + last_expected**2) / both**2
                p = min(p, nb_tail(count + last_count, both, dispersion))
                p = min(1.0, 2.0 * p)
            if p >= threshold:
                continue
            ratio = count / expected
            span = _minutes(window.seconds)
            if new:
                kind = "emerging"
                severity = "critical" if count >= 3 * min_count else "warning"
                text = (
                    f"{_named(subject, seen)}: new, {count} posts in {span} with no earlier history"
                )
            else:
                kind = "volume_spike"
                severity = "critical" if ratio >= 5 else "warning"
                text = (
                    f"{_named(subject, seen)}: {count} posts in {span}, about {_times(ratio)} "
                    f"the usual {expected:.0f}"
                )
                if baseline.mean is not None and count >= rules.min_sentiment_posts:
                    text += f"; sentiment {seen.mean_compound:+.2f} vs {baseline.mean:+.2f}"
            findings.append(Finding(kind, subject, count, expected, p, severity, text, seen))
        return findings

    def _sentiment_findings(self, window: WindowSummary) -> list[Finding]:
        rules = self.rules
        candidates = []
        for subject in sorted(window.subjects):
            seen = window.subjects[subject]
            baseline = self.baselines.get(subject)
            if (
                seen.count < rules.min_sentiment_posts
                or baseline is None
                or baseline.mean is None
                or baseline.windows < rules.warmup_windows
            ):
                continue
            candidates.append((subject, seen, baseline))
        findings = []
        for subject, seen, baseline in candidates:
            threshold = rules.alpha * self.rule(subject).sensitivity / max(1, len(candidates))
            shift = seen.mean_compound - baseline.mean
            if abs(shift) < rules.min_sentiment_shift:
                continue
            error = math.sqrt(baseline.post_variance / seen.count + max(baseline.drift, 0.0))
            z = shift / max(error, 1e-6)
            p = float(2.0 * stats.norm.sf(abs(z)))
            if p >= threshold:
                continue
            severity = "critical" if abs(shift) >= 0.4 else "warning"
            text = (
                f"{_named(subject, seen)}: sentiment {seen.mean_compound:+.2f} over "
                f"{seen.count} posts in {_minutes(window.seconds)}, usually "
                f"{baseline.mean:+.2f} (z = {z:+.1f})"
            )
            findings.append(
                Finding(
                    "sentiment_shift",
                    subject,
                    round(seen.mean_compound, 4),
                    round(baseline.mean, 4),
                    p,
                    severity,
                    text,
                    seen,
                )
            )
        return findings

    def _viral_findings(self, window: WindowSummary) -> list[Finding]:
        strongest = sorted(window.viral, key=lambda c: (-c.z, c.post.id))
        findings = []
        for candidate in strongest[: self.rules.max_viral_per_window]:
            post = candidate.post
            ratio = candidate.engagement / max(candidate.topic_usual, 1.0)
            text = (
                f"a post by {post.author}: {candidate.engagement:,.0f} engagements, about "
                f"{_times(ratio)} its topic's usual {candidate.topic_usual:,.0f}"
            )
            if candidate.author_usual is not None:
                text += f" and the author's usual {candidate.author_usual:,.0f}"
            seen = SubjectWindow()
            seen.add(post.compound, post.compound <= -0.05, post)
            findings.append(
                Finding(
                    "viral",
                    f"post:{post.id}",
                    candidate.engagement,
                    candidate.topic_usual,
                    float(stats.norm.sf(candidate.z)),
                    "critical" if ratio >= 10 else "warning",
                    text,
                    seen,
                )
            )
        return findings

    # -- baselines --------------------------------------------------------------------------

    def _learn(self, window: WindowSummary, firing: set[str]) -> None:
        rules = self.rules
        rate = 2.0 / (rules.share_span + 1.0)
        total = window.total
        excess = scale = 0.0  # the pooled moments of φ: Σ((x − μ)² − μ) and Σ μ²
        for subject in window.subjects.keys() - self.baselines.keys():
            self.baselines[subject] = Baseline()
        # In the baselines' own order (first seen first): the same input, the same sums.
        for subject, baseline in self.baselines.items():
            seen = window.subjects.get(subject)
            step = rate * (rules.absorb if subject in firing else 1.0)
            count = seen.count if seen else 0
            expected = baseline.share * total
            if baseline.windows == 0:
                baseline.share = count / total
            else:
                if subject not in firing and baseline.windows >= rules.warmup_windows:
                    # Residuals past 3 standard deviations are cut: a burst that did not
                    # fire must not teach the detector that bursts are normal.
                    limit = 9.0 * (expected + self.dispersion * expected * expected)
                    excess += min((count - expected) ** 2, limit) - expected
                    scale += expected * expected
                baseline.share += step * (count / total - baseline.share)
            baseline.windows += 1
            baseline.previous = (count, expected)
            if seen is None:
                continue
            baseline.last_seen = window.start
            if seen.count >= 2:
                mean = seen.mean_compound
                variance = max(seen.compound_squares / seen.count - mean * mean, 0.0)
                if baseline.mean is None:
                    baseline.mean, baseline.post_variance = mean, max(variance, 0.01)
                else:
                    gap = (mean - baseline.mean) ** 2 - baseline.post_variance / seen.count
                    if subject not in firing:  # unclipped, or the mean would be biased up
                        baseline.drift += step * (gap - baseline.drift)
                    baseline.post_variance += step * (variance - baseline.post_variance)
                    baseline.mean += step * (mean - baseline.mean)
        if scale > 0:
            pooled = min(max(excess / scale, 0.0), MAX_DISPERSION)
            self.dispersion += rate * (pooled - self.dispersion)
        self._forget()

    def _forget(self) -> None:
        """Keep at most `max_subjects` baselines: those seen longest ago go first."""
        excess = len(self.baselines) - self.rules.max_subjects
        if excess > 0:
            oldest = sorted(self.baselines.items(), key=lambda item: (item[1].last_seen, item[0]))
            for subject, _ in oldest[:excess]:
                del self.baselines[subject]

    # -- alerts -----------------------------------------------------------------------------

    def _record(self, finding: Finding, window: WindowSummary) -> Alert:
        key = (finding.kind, finding.subject)
        score = round(-math.log10(max(finding.p_value, 1e-300)), 2)
        samples = finding.window.sample_posts()
        existing = self._open.get(key)
        if existing is not None:
            alert = self.alerts[existing]
            alert.window_end = window.end
            alert.occurrences += 1
            alert.calm_windows = 0
            if alert.status == "resolved":
                alert.status, alert.resolved_at = "open", None
            if score >= alert.score:  # the alert shows its strongest window
                alert.window_start = window.start
                alert.observed, alert.expected = finding.observed, round(finding.expected, 2)
                alert.score, alert.p_value = score, finding.p_value
                alert.explanation, alert.samples = finding.explanation, samples
                alert.severity = max(alert.severity, finding.severity, key=SEVERITIES.index)
                alert.explore_url = finding_url(finding, alert.first_window, window.end)
            return replace(alert)
        alert = self._new_alert(finding, window)
        provisional = self._provisional.get(key)
        if provisional is not None and self.alerts[provisional].first_window == window.start:
            # Confirmed at close: the same alert, with the whole window's figures.
            del self._provisional[key]
            alert.status = self.alerts.pop(provisional).status  # acknowledged stays so
        self.alerts[alert.id] = alert
        self._open[key] = alert.id
        return replace(alert)

    def _new_alert(self, finding: Finding, window: WindowSummary) -> Alert:
        score = round(-math.log10(max(finding.p_value, 1e-300)), 2)
        digest = hashlib.sha256(f"{finding.kind}|{finding.subject}|{window.start}".encode())
        return Alert(
            id=digest.hexdigest()[:16],
            kind=finding.kind,
            subject=finding.subject,
            window_start=window.start,
            window_end=window.end,
            observed=finding.observed,
            expected=round(finding.expected, 2),
            score=score,
            p_value=finding.p_value,
            severity=finding.severity,
            explanation=finding.explanation,
            samples=finding.window.sample_posts(),
            explore_url=finding_url(finding, window.start, window.end),
            first_window=window.start,
        )


def run_windows(windows: Iterable[WindowSummary], rules: AlertRules | None = None) -> list[Alert]:
    """Every alert a sequence of closed windows raises, in its last state, oldest first."""
    engine = AlertEngine(rules)
    final: dict[str, Alert] = {}
    for window in windows:
        for alert in engine.close_window(window):
            final[alert.id] = alert
    return list(final.values())
