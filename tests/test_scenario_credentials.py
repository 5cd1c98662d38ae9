"""Where keys come from, what a missing key says, and that nothing secret is ever printed."""

from __future__ import annotations

import json

import pytest

from scenario_detect.nodes.scenario.credentials import DEFAULT_BASE_URL, config_path, load_credentials
from scenario_detect.nodes.scenario.errors import ScenarioAuthError, register_secret, scrub


def test_our_names_win_over_the_sdk_names(tmp_path):
    env = {
        "SCENARIO_API_KEY": "k1",
        "SCENARIO_API_SECRET": "s1",
        "SCENARIO_SDK_API_KEY": "k2",
        "SCENARIO_SDK_API_SECRET": "s2",
        "SCENARIO_DETECT_CONFIG": str(tmp_path / "none.json"),
    }
    c = load_credentials(env)
    assert (c.api_key, c.api_secret, c.base_url) == ("k1", "s1", DEFAULT_BASE_URL)
    assert "SCENARIO_API_KEY" in c.source and "s1" not in repr(c)


def test_sdk_names_are_accepted(tmp_path):
    c = load_credentials(
        {
            "SCENARIO_SDK_API_KEY": "k2",
            "SCENARIO_SDK_API_SECRET": "s2",
            "SCENARIO_DETECT_CONFIG": str(tmp_path / "none.json"),
        }
    )
    assert (c.api_key, c.api_secret) == ("k2", "s2")


def test_config_file_and_base_url_override(tmp_path):
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"api_key": "fk", "api_secret": "fs", "base_url": "https://file.example/v1"}))
    c = load_credentials({"SCENARIO_DETECT_CONFIG": str(path)})
    assert (c.api_key, c.api_secret, c.base_url) == ("fk", "fs", "https://file.example/v1")
    assert str(path) in c.source
    c = load_credentials({"SCENARIO_DETECT_CONFIG": str(path), "SCENARIO_BASE_URL": "https://env.example/v1/"})
    assert c.base_url == "https://env.example/v1"


def test_default_config_path_for_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_path({}) == tmp_path / "scenario-detect" / "credentials.json"


def test_missing_key_says_where_keys_are_read_from(tmp_path):
    path = tmp_path / "credentials.json"
    with pytest.raises(ScenarioAuthError) as info:
        load_credentials({"SCENARIO_DETECT_CONFIG": str(path)})
    text = str(info.value)
    for needle in ("SCENARIO_API_KEY", "SCENARIO_API_SECRET", "SCENARIO_SDK_API_KEY", str(path)):
        assert needle in text


def test_half_a_pair_names_the_missing_half(tmp_path):
    with pytest.raises(ScenarioAuthError, match="SCENARIO_API_SECRET is not set"):
        load_credentials({"SCENARIO_API_KEY": "k", "SCENARIO_DETECT_CONFIG": str(tmp_path / "n.json")})


def test_broken_config_file_never_echoes_its_content(tmp_path):
    path = tmp_path / "credentials.json"
    path.write_text('{"api_key": "topsecretvalue", "api_secret": ')
    with pytest.raises(ScenarioAuthError) as info:
        load_credentials({"SCENARIO_DETECT_CONFIG": str(path)})
    assert "topsecretvalue" not in str(info.value) and "not valid JSON" in str(info.value)


def test_scrub_removes_signed_queries_auth_and_secrets():
    register_secret("hunter2-secret")
    text = scrub(
        "GET https://cdn.example.com/a.png?X-Amz-Signature=abc&X-Amz-Credential=x failed; "
        "Authorization: Basic a2V5OnNlY3JldA== ; key hunter2-secret; Signature=zzz"
    )
    for needle in ("X-Amz-Signature=abc", "a2V5OnNlY3JldA==", "hunter2-secret", "Signature=zzz"):
        assert needle not in text
    assert "https://cdn.example.com/a.png" in text
