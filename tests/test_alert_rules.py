"""Alert rules people set: parsed strictly, applied per subject, kept in a file, edited on
the page by admins; bad rules are refused with the reason and the old ones stay."""

from __future__ import annotations

import json

import pytest

from app import create_app
from app.accounts import AccountStore
from app.services import services
from app.testing import csrf_from, log_in
from insights.alert_rules import AlertRulesError, RulesFile, parse_rules
from insights.alerts import AlertEngine, AlertRules, SubjectRule, run_windows
from tests.test_alerts import RULES, steady, window

PASSWORD = "correct horse battery"
GOOD = {
    "defaults": {"min_count": 12, "alpha": 0.0005},
    "subjects": {
        "#Delayed": {"min_count": 30, "sensitivity": 0.5},
        "#giveaway": {"mute": True},
        "cluster:12": {"cooldown_windows": 24},
    },
}


def test_good_rules_are_parsed_and_round_trip():
    rules = parse_rules(json.dumps(GOOD))
    assert rules.defaults == {"min_count": 12, "alpha": 0.0005}
    assert rules.subjects["#delayed"] == SubjectRule(min_count=30, sensitivity=0.5)
    assert rules.subjects["#giveaway"].mute
    assert rules.apply_to(AlertRules()).min_count == 12
    assert parse_rules(rules.to_json()) == rules
    assert parse_rules("{}").subjects == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "an object with"),
        ('{"rules": {}}', "an object with"),
        ('{"defaults": {"window_seconds": 5}}', "defaults.window_seconds is not a rule here"),
        ('{"defaults": {"alpha": 2}}', "alpha"),
        ('{"defaults": {"min_count": 1.5}}', "defaults.min_count is a whole number"),
        ('{"defaults": {"alpha": NaN}}', "not valid JSON"),
        ('{"defaults": {"alpha": "high"}}', "defaults.alpha is a number"),
        ('{"defaults": {"min_count": true}}', "defaults.min_count is a number"),
        ('{"subjects": {"delayed": {}}}', "is not #tag, cluster:<id> or keyword:<word>"),
        ('{"subjects": {"#a": {"loud": 1}}}', "subjects.#a.loud is not a rule"),
        ('{"subjects": {"#a": {"sensitivity": 0}}}', "sensitivity is above 0"),
        ('{"subjects": {"#a": {"mute": "yes"}}}', "mute is true or false"),
        ('{"subjects": {"#a": {"min_count": 0}}}', "min_count is too small"),
        ('{"subjects": {"#a": 3}}', "is an object of rules"),
        ('{"subjects": {"#a b": {}}}', "is not #tag"),
        ("1" * 300_000, "larger than"),
    ],
)
def test_bad_rules_say_what_is_wrong(text, message):
    with pytest.raises(AlertRulesError, match=message.replace("(", r"\(")):
        parse_rules(text)


def test_overrides_mute_and_raise_or_lower_the_bar():
    burst = window(12, {"#delayed": (300, -0.05), "#refund": (100, 0.1)})
    plain = run_windows([*steady(12), burst], RULES)
    assert {a.subject for a in plain if a.kind == "volume_spike"} == {"#delayed", "#refund"}

    engine = AlertEngine(RULES)
    engine.overrides = {"#delayed": SubjectRule(mute=True), "#refund": SubjectRule(min_count=500)}
    for w in [*steady(12), burst]:
        assert engine.close_window(w) == []
    assert engine.baselines["#delayed"].windows == 13  # muted subjects still learn

    # 50 posts against the usual 20 fires at the default sensitivity (p ≈ 2e-5), not at 0.01.
    rise = window(12, {"#delayed": (40, -0.05), "#refund": (50, 0.1)})
    assert [a.subject for a in run_windows([*steady(12), rise], RULES)] == ["#refund"]
    calm = AlertEngine(RULES)
    calm.overrides = {"#refund": SubjectRule(sensitivity=0.01)}
    assert [a for w in [*steady(12), rise] for a in calm.close_window(w)] == []


def test_the_file_is_replaced_only_by_good_rules(tmp_path):
    rules_file = RulesFile(tmp_path / "alert_rules.json")
    assert rules_file.load(AlertRules()).subjects == {}
    saved = rules_file.save(json.dumps(GOOD), AlertRules())
    assert rules_file.load(AlertRules()) == saved
    before = rules_file.path.read_bytes()
    with pytest.raises(AlertRulesError):
        rules_file.save('{"subjects": {"#a": {"mute": 1}}}', AlertRules())
    assert rules_file.path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["alert_rules.json"]  # no temporary left


def test_admins_edit_the_rules_on_the_page(config):
    store = AccountStore(config.accounts_path)
    store.add_user("ada", PASSWORD, "admin")
    store.add_user("ann", PASSWORD, "analyst")
    flask_app = create_app(config)
    analyst = flask_app.test_client()
    assert log_in(analyst, "ann", PASSWORD).status_code == 303
    page = analyst.get("/alerts").get_data(as_text=True)
    assert 'id="rules-form"' not in page and 'id="rules-text"' in page  # shown, not editable
    token = csrf_from(page)
    assert (
        analyst.post("/alerts/rules", data={"csrf_token": token, "rules": "{}"}).status_code == 403
    )

    admin = flask_app.test_client()
    assert log_in(admin, "ada", PASSWORD).status_code == 303
    token = csrf_from(admin.get("/alerts").get_data(as_text=True))
    assert admin.post("/alerts/rules", data={"rules": "{}"}).status_code == 400  # no CSRF
    saved = admin.post("/alerts/rules", data={"csrf_token": token, "rules": json.dumps(GOOD)})
    assert saved.status_code == 303
    with flask_app.app_context():
        alerts = services().hub.alerts
        assert alerts.engine.rules.min_count == 12
        assert alerts.engine.overrides["#giveaway"].mute
    bad = admin.post(
        "/alerts/rules",
        data={"csrf_token": token, "rules": '{"subjects": {"<script>": {}}}'},
    )
    html = bad.get_data(as_text=True)
    assert bad.status_code == 400 and 'id="rules-error"' in html
    assert "<script>" not in html and "The rules in use are unchanged" in html
    with flask_app.app_context():
        assert services().hub.alerts.engine.overrides["#giveaway"].mute  # the old rules stay
    huge = admin.post("/alerts/rules", data={"csrf_token": token, "rules": "x" * 300_000})
    assert huge.status_code in (400, 413)


def test_a_bad_rules_file_at_start_is_reported_and_the_defaults_apply(config):
    path = config.instance_dir + "/alert_rules.json"
    from pathlib import Path

    Path(config.instance_dir).mkdir(parents=True, exist_ok=True)
    Path(path).write_text('{"defaults": {"alpha": 5}}')
    flask_app = create_app(config)
    with flask_app.app_context():
        alerts = services().hub.alerts
        assert alerts.engine.rules == alerts.base_rules
        assert "alpha" in alerts.rules_error
    html = flask_app.test_client().get("/alerts").get_data(as_text=True)
    assert 'id="rules-file-error"' in html and "the default rules apply" in html


def test_a_longer_cooldown_keeps_a_subject_merged_for_longer():
    def alert_ids(rule: SubjectRule | None) -> set[str]:
        engine = AlertEngine(RULES)
        if rule:
            engine.overrides = {"#delayed": rule}
        fired = []
        for w in steady(10):
            engine.close_window(w)
        fired += engine.close_window(window(10, {"#delayed": (300, -0.05)}))
        for w in steady(30)[11:30]:
            engine.close_window(w)
        fired += engine.close_window(window(30, {"#delayed": (300, -0.05)}))
        return {a.id for a in fired if a.kind == "volume_spike"}

    assert len(alert_ids(None)) == 2  # 19 calm windows: past the default cooldown of 6
    assert len(alert_ids(SubjectRule(cooldown_windows=50))) == 1  # still the same alert
