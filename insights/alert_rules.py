"""Alert rules people set: changed defaults and per-subject overrides, as JSON.

```json
{
  "defaults": {"min_count": 15, "alpha": 0.0005, "cooldown_windows": 12},
  "subjects": {
    "#delayed": {"min_count": 30, "sensitivity": 0.5},
    "#giveaway": {"mute": true},
    "cluster:12": {"cooldown_windows": 24}
  }
}
```

`defaults` may set any `AlertRules` field but the window and the lateness (the settings
`SOCIALPULSE_ALERT_WINDOW` and `SOCIALPULSE_ALERT_LATENESS`, which shape the windows
themselves). A subject is `#tag`, `cluster:<id>` or `keyword:<word>`; each may set
`min_count`, `sensitivity` (× alpha, above 1 fires more readily), `cooldown_windows` and
`mute`. Anything else is refused with the reason, and the rules in use stay as they were.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from insights.alerts import AlertRules, SubjectRule

MAX_RULES_BYTES = 200_000
MAX_SUBJECTS = 10_000
FIXED = ("window_seconds", "lateness_seconds")  # set by the server's settings
SUBJECT = re.compile(r"#[^\s#]{1,100}|cluster:\d{1,9}|keyword:[^\s]{1,100}")


class AlertRulesError(ValueError):
    """Rules that cannot be used; the message says which part and why."""


@dataclass(frozen=True)
class RuleSet:
    defaults: dict[str, Any] = field(default_factory=dict)
    subjects: dict[str, SubjectRule] = field(default_factory=dict)

    def apply_to(self, rules: AlertRules) -> AlertRules:
        return replace(rules, **self.defaults)

    def to_json(self) -> str:
        subjects = {}
        for name, rule in sorted(self.subjects.items()):
            changed = {
                f.name: getattr(rule, f.name)
                for f in fields(SubjectRule)
                if getattr(rule, f.name) != f.default
            }
            subjects[name] = changed
        return json.dumps({"defaults": self.defaults, "subjects": subjects}, indent=2)


def parse_rules(text: str | bytes, base: AlertRules | None = None) -> RuleSet:
    """Rules from JSON text, checked against `base` (the server's own rules)."""
    base = base or AlertRules()
    if len(text) > MAX_RULES_BYTES:
        raise AlertRulesError(f"alert rules are larger than {MAX_RULES_BYTES:,} bytes")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise AlertRulesError(f"alert rules are not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or set(data) - {"defaults", "subjects"}:
        raise AlertRulesError('alert rules are an object with "defaults" and/or "subjects"')
    defaults = data.get("defaults") or {}
    subjects = data.get("subjects") or {}
    if not isinstance(defaults, dict) or not isinstance(subjects, dict):
        raise AlertRulesError('"defaults" and "subjects" are objects')
    allowed = {f.name: f.type for f in fields(AlertRules) if f.name not in FIXED}
    for name, value in defaults.items():
        if name not in allowed:
            raise AlertRulesError(
                f"defaults.{name} is not a rule here; use {', '.join(sorted(allowed))}"
            )
        _check_number(f"defaults.{name}", value, whole=allowed[name] in ("int", int))
    try:
        replace(base, **defaults)  # AlertRules checks the ranges
    except ValueError as exc:
        raise AlertRulesError(f"defaults: {exc}") from exc
    if len(subjects) > MAX_SUBJECTS:
        raise AlertRulesError(f"at most {MAX_SUBJECTS:,} subjects have rules of their own")
    parsed = {}
    for name, settings in subjects.items():
        if not SUBJECT.fullmatch(name):
            raise AlertRulesError(
                f"subject {name[:60]!r} is not #tag, cluster:<id> or keyword:<word>"
            )
        parsed[name.lower() if name.startswith(("#", "keyword:")) else name] = _subject_rule(
            name, settings
        )
    return RuleSet(dict(defaults), parsed)


def _subject_rule(name: str, settings: Any) -> SubjectRule:
    where = f"subjects.{name}"
    if not isinstance(settings, dict):
        raise AlertRulesError(f"{where} is an object of rules")
    known = {f.name for f in fields(SubjectRule)}
    for key, value in settings.items():
        if key not in known:
            raise AlertRulesError(f"{where}.{key} is not a rule; use {', '.join(sorted(known))}")
        if key == "mute":
            if not isinstance(value, bool):
                raise AlertRulesError(f"{where}.mute is true or false")
        elif key == "sensitivity":
            _check_number(f"{where}.sensitivity", value)
            if not 0 < value <= 1000:
                raise AlertRulesError(f"{where}.sensitivity is above 0 and at most 1000")
        else:
            _check_number(f"{where}.{key}", value, whole=True)
            if value < (1 if key == "min_count" else 0):
                raise AlertRulesError(f"{where}.{key} is too small")
    return SubjectRule(**settings)


def _check_number(where: str, value: Any, whole: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AlertRulesError(f"{where} is a number")
    if whole and not isinstance(value, int):
        raise AlertRulesError(f"{where} is a whole number")
    if not math.isfinite(value) or abs(value) > 1e12:
        raise AlertRulesError(f"{where} is out of range")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


class RulesFile:
    """The rules kept in a file: read at start, replaced whole (atomically) on save."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self, base: AlertRules) -> RuleSet:
        """The file's rules; none when there is no file. Raises AlertRulesError."""
        if not self.path.is_file():
            return RuleSet()
        return parse_rules(self.path.read_bytes(), base)

    def save(self, text: str, base: AlertRules) -> RuleSet:
        """Check `text` and, only if it is good, make it the file's content."""
        rules = parse_rules(text, base)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".alert_rules.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(rules.to_json())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return rules
