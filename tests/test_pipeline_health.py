"""Pipeline health: dead-letter rate and scoring latency against their own baselines, over
wall-clock minutes."""

from __future__ import annotations

from dataclasses import replace

from insights.health import PipelineHealth
from tests.test_aggregates import scored

T = 1_800_000_000.0


def posts(n: int, latency_s: float, at: float) -> list:
    return [
        replace(scored(f"post {i}"), received_at=at, scored_at=at + latency_s) for i in range(n)
    ]


def run(health: PipelineHealth, minutes: list[tuple[int, int, float]]) -> list:
    """Each minute: (scored posts, dead letters, latency in s); the alert changes."""
    changes = []
    for minute, (n, letters, latency) in enumerate(minutes):
        now = T + 60 * minute + 1
        changes += health.observe(posts(n, latency, now), 0, now)
        changes += health.observe((), letters, now + 30)
    changes += health.observe(
        posts(1, 0.05, T + 60 * len(minutes) + 1), 0, T + 60 * len(minutes) + 1
    )
    return changes


def test_a_burst_of_dead_letters_fires_and_resolves():
    calm = [(1000, 2, 0.05)] * 10
    changes = run(PipelineHealth(), [*calm, (1000, 200, 0.05), *calm[:4]])
    fired = [c for c in changes if c.subject == "pipeline:dead_letters"]
    assert fired[0].status == "open" and fired[0].observed == 200
    assert fired[0].explanation.startswith("dead letters: 200 of 1200 records in the last minute")
    assert fired[-1].status == "resolved"
    assert {c.id for c in fired} == {fired[0].id}


def test_slow_scoring_fires_but_small_or_early_changes_do_not():
    calm = [(500, 0, 0.05)] * 10
    slow = run(PipelineHealth(), [*calm, (500, 0, 5.0)])
    (alert,) = [c for c in slow if c.subject == "pipeline:latency"]
    assert alert.kind == "pipeline_health" and alert.observed == 5000.0
    assert alert.explanation == "scoring latency: p95 5,000 ms in the last minute, usually 50 ms"
    # Ten times slower but still under a second: not worth waking anyone.
    assert run(PipelineHealth(), [*calm, (500, 0, 0.5)]) == []
    # Before the warm-up nothing fires, however bad.
    assert run(PipelineHealth(), [(500, 0, 0.05), (500, 300, 9.0)]) == []


def test_the_usual_dead_letter_rate_is_learned():
    noisy = [(1000, 100, 0.05)] * 10  # a feed where 9% is always malformed
    assert run(PipelineHealth(), [*noisy, (1000, 110, 0.05)]) == []


def test_latency_samples_are_bounded():
    health = PipelineHealth()
    for _ in range(30):
        health.observe(posts(1000, 0.05, T + 1), 0, T + 1)
    assert len(health._window.latencies_ms) <= 5000


def test_consumer_lag_that_builds_fires_and_resolves_when_it_drains():
    health = PipelineHealth(min_lag=1000)
    changes = []
    # Healthy minutes: posts flow and the workers keep up (a few dozen behind at most).
    for minute in range(5):
        now = T + 60 * minute
        changes += health.observe(posts(100, 0.05, now), 0, now)
        changes += health.observe_lag(30 + minute, now + 10)
    assert changes == []
    # The workers stop: no post arrives, and the lag grows minute after minute.
    for minute in range(5, 8):
        now = T + 60 * minute
        changes += health.observe_lag(3000 * (minute - 4), now + 10)
        changes += health.observe_lag(3000 * (minute - 4) + 500, now + 40)
    # They are back: the backlog drains.
    for minute in range(8, 12):
        now = T + 60 * minute
        changes += health.observe(posts(100, 0.05, now), 0, now)
        changes += health.observe_lag(20, now + 10)
    lag = [c for c in changes if c.subject == "pipeline:consumer_lag"]
    assert lag[0].status == "open" and lag[0].observed == 3500
    assert lag[0].explanation == "consumer lag: the workers are 3,500 posts behind, usually 100"
    assert max(c.observed for c in lag) == 9500 and lag[-1].status == "resolved"
    assert {c.id for c in lag} == {lag[0].id}  # one alert, merged over the minutes


def test_a_small_or_usual_lag_never_fires():
    health = PipelineHealth(min_lag=1000)
    changes = []
    for minute in range(30):
        # A pipeline that always runs about 5,000 behind (a big batch consumer): usual.
        now = T + 60 * minute
        changes += health.observe_lag(5000 + 100 * (minute % 3), now)
        changes += health.observe_lag(None, now + 30)  # broker away: not measurable
    assert not [c for c in changes if c.subject == "pipeline:consumer_lag"]
    assert PipelineHealth().observe_lag(999, T) == []
