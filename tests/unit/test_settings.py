"""Settings from the environment, overrides and checks."""

from __future__ import annotations

import pytest

from streams.settings import ENV_VARS, Settings, SettingsError


def test_environment_then_overrides():
    env = {"SIGNALWATCH_BROKER": "10.0.0.1:9093", "SIGNALWATCH_WEB_PORT": "7000", "SIGNALWATCH_PARTITIONS": "4"}
    s = Settings.from_env(env, web_port=7100, broker=None)
    assert s.broker == "kafka://10.0.0.1:9093"
    assert s.bootstrap_servers == ["10.0.0.1:9093"]
    assert s.web_port == 7100 and s.partitions == 4


@pytest.mark.parametrize(("var", "value", "words"), [
    ("SIGNALWATCH_WEB_PORT", "70000", "port"),
    ("SIGNALWATCH_WEB_PORT", "abc", "bad setting"),
    ("SIGNALWATCH_BROKER", "http://x:1", "kafka://"),
    ("SIGNALWATCH_ALERT_MIN_SEVERITY", "urgent", "low, medium, high, critical"),
    ("SIGNALWATCH_SECURITY_PROTOCOL", "SASL_SSL", "SASL needs"),
])
def test_bad_values_name_the_variable_and_fix(var, value, words):
    with pytest.raises(SettingsError, match=words):
        Settings.from_env({var: value})


def test_every_field_but_topics_has_a_variable():
    from dataclasses import fields

    assert {f.name for f in fields(Settings)} - {"topics"} == set(ENV_VARS)


def test_password_is_not_in_repr():
    s = Settings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u",
                 sasl_password="hunter2")
    assert "hunter2" not in repr(s)


def test_larger_trend_windows_must_be_multiples_of_the_smallest():
    assert Settings(trend_windows="3600,900").window_sizes == [900, 3600]
    with pytest.raises(SettingsError, match="multiple of the smallest"):
        Settings(trend_windows="900,1000")
