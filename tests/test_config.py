"""Configuration: `SOCIALPULSE_*` variables, flags over variables, clear errors."""

from __future__ import annotations

import pytest

from app.config import PREFIX, PROJECT_ROOT, Config, ConfigError, documented_settings
from streaming.topics import Topics


def test_defaults_without_environment():
    config = Config.from_env(environ={})
    assert (config.host, config.port, config.source) == ("127.0.0.1", 5000, "synthetic")
    assert config.file is None
    assert config.allowed_origins is None


def test_reads_and_converts_prefixed_variables():
    config = Config.from_env(
        environ={
            "SOCIALPULSE_PORT": "6001",
            "SOCIALPULSE_RATE": "2.5",
            "SOCIALPULSE_SOURCE": "file",
            "SOCIALPULSE_FILE": "/data/posts.csv",
            "SOCIALPULSE_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
            "SOCIALPULSE_API_MAX_BATCH": "7",
            "PORT": "1234",  # not ours: ignored
        }
    )
    assert config.port == 6001 and isinstance(config.port, int)
    assert config.rate == 2.5 and isinstance(config.rate, float)
    assert (config.source, config.file) == ("file", "/data/posts.csv")
    assert config.kafka_bootstrap == "127.0.0.1:9092"
    assert config.api_max_batch == 7


def test_empty_variable_means_default():
    assert Config.from_env(environ={"SOCIALPULSE_PORT": ""}).port == 5000


def test_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("SOCIALPULSE_SEED", "99")
    assert Config.from_env().seed == 99


def test_flags_override_environment():
    environ = {"SOCIALPULSE_PORT": "6001", "SOCIALPULSE_RATE": "2.5"}
    config = Config.from_env(environ=environ, port=7000, rate=None)
    assert config.port == 7000
    assert config.rate == 2.5  # a flag left unset (None) keeps the environment's value


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "abc"),
        ("RATE", "fast"),
        ("BATCH_MAX_POSTS", "1.5"),
        ("RATE", "nan"),
        ("EMIT_INTERVAL", "inf"),
    ],
)
def test_bad_number_is_a_config_error_naming_the_variable(name, value):
    with pytest.raises(ConfigError) as info:
        Config.from_env(environ={PREFIX + name: value})
    message = str(info.value)
    assert f"SOCIALPULSE_{name}={value!r}" in message
    assert "number" in message


def test_bad_source_is_a_config_error():
    with pytest.raises(ConfigError, match="source must be 'synthetic' or 'file', not 'kafka'"):
        Config.from_env(environ={"SOCIALPULSE_SOURCE": "kafka"})


def test_file_source_without_file_is_a_config_error():
    with pytest.raises(ConfigError, match="needs SOCIALPULSE_FILE"):
        Config.from_env(environ={}, source="file")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"port": 0}, "port 0 is out of range"),
        ({"port": 70000}, "port 70000 is out of range"),
        ({"max_body_bytes": 0}, "max_body_bytes must be positive"),
        ({"windows_kept": -1}, "windows_kept must be positive"),
        ({"rate": -1.0}, "rate must be ≥ 0"),
        ({"emit_interval": 0.0}, "intervals positive"),
    ],
)
def test_out_of_range_values_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_env(environ={}, **overrides)


def test_with_overrides_changes_only_given_settings_and_validates():
    base = Config.from_env(environ={"SOCIALPULSE_PORT": "6001"})
    changed = base.with_overrides(max_body_bytes=100, rate=None)
    assert (changed.max_body_bytes, changed.port, changed.rate) == (100, 6001, base.rate)
    assert base.max_body_bytes == 1_000_000  # the original is untouched
    with pytest.raises(ConfigError, match="max_body_bytes must be positive"):
        base.with_overrides(max_body_bytes=0)


def test_allowed_origins():
    assert Config.from_env(environ={}).allowed_origins is None
    assert Config.from_env(environ={"SOCIALPULSE_CORS_ORIGINS": " , "}).allowed_origins is None
    config = Config.from_env(
        environ={"SOCIALPULSE_CORS_ORIGINS": "https://a.example, https://b.example ,"}
    )
    assert config.allowed_origins == ["https://a.example", "https://b.example"]


def test_every_setting_is_documented():
    settings = documented_settings()
    assert ("SOCIALPULSE_PORT", 5000, "port of the web server") in settings
    assert all(name.startswith(PREFIX) and help_text for name, _, help_text in settings)


def test_a_renamed_variable_is_an_error_that_names_the_new_one():
    with pytest.raises(
        ConfigError, match="SOCIALPULSE_BATCH_MAX_WAIT_MS is now SOCIALPULSE_BATCH_MAX_WAIT"
    ):
        Config.from_env({"SOCIALPULSE_BATCH_MAX_WAIT_MS": "100"})
    assert Config.from_env({"SOCIALPULSE_BATCH_MAX_WAIT": "0.25"}).batch_max_wait == 0.25
    with pytest.raises(ConfigError, match="batch_max_wait must be ≥ 0"):
        Config.from_env({}, batch_max_wait=-1.0)


def test_topic_names_come_from_the_config():
    config = Config.from_env(
        {"SOCIALPULSE_TOPIC_POSTS": "raw", "SOCIALPULSE_TOPIC_PARTITIONS": "3"}
    )
    assert config.topics == Topics("raw", "posts.scored", "posts.dlq", 3)


def test_the_readme_table_lists_every_setting_with_its_meaning():
    readme = (PROJECT_ROOT / "README.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in readme.splitlines() if "| `" in line}
    for name, _, help_text in documented_settings():
        assert name in rows, f"{name} is missing from README's configuration table"
        assert help_text in rows[name], f"README describes {name} differently"
