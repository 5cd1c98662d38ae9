"""Where keys come from, what a missing key says, and that nothing secret is ever printed."""

from __future__ import annotations

import json
import logging
import os

import pytest

from scenario_detect.nodes.scenario.credentials import (
    config_path,
    load_credentials,
)
from scenario_detect.nodes.scenario.errors import ScenarioAuthError, ScenarioConfigError, register_secret, scrub
from scenario_detect.nodes.scenario.urls import DEFAULT_BASE_URL, is_loopback_host


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
    for needle in ("X-Amz-Signature=abc", "a2V5OnNlY3JldA==", "hunter2-secret", "Signature=zzz", "Basic "):
        assert needle not in text
    assert "https://cdn.example.com/a.png?<query removed> failed" in text
    assert scrub(text) == text  # messages are scrubbed more than once on their way: nothing doubles


# -- environment first, file second -------------------------------------------------------------

ENV_KEYS = {"SCENARIO_API_KEY": "envkey-123", "SCENARIO_API_SECRET": "envsecret-456"}
SECRET_IN_FILE = "filesecret-must-not-show"


def _broken_files(tmp_path):
    """(name, path) of credentials files that are each wrong in one way; none may be quoted."""
    cases = {}
    cases["not JSON"] = tmp_path / "a.json"
    cases["not JSON"].write_text('{"api_key": "k", "api_secret": "' + SECRET_IN_FILE + '",')
    cases["a list"] = tmp_path / "b.json"
    cases["a list"].write_text(json.dumps(["k", SECRET_IN_FILE]))
    cases["a number key"] = tmp_path / "c.json"
    cases["a number key"].write_text(json.dumps({"api_key": 12345678, "api_secret": SECRET_IN_FILE}))
    cases["not UTF-8"] = tmp_path / "d.json"
    cases["not UTF-8"].write_bytes(b'{"api_key": "\xff\xfe", "api_secret": "' + SECRET_IN_FILE.encode() + b'"}')
    cases["a folder"] = tmp_path / "e.json"
    cases["a folder"].mkdir()
    cases["half a pair"] = tmp_path / "f.json"
    cases["half a pair"].write_text(json.dumps({"api_secret": SECRET_IN_FILE}))
    cases["no keys"] = tmp_path / "g.json"
    cases["no keys"].write_text("{}")
    cases["http base_url"] = tmp_path / "h.json"
    cases["http base_url"].write_text(
        json.dumps({"api_key": "k", "api_secret": SECRET_IN_FILE, "base_url": "http://api.example.com/v1"})
    )
    cases["too large"] = tmp_path / "i.json"
    cases["too large"].write_text(json.dumps({"api_key": "k", "api_secret": SECRET_IN_FILE, "pad": "x" * 70000}))
    if hasattr(os, "mkfifo"):
        cases["a FIFO"] = tmp_path / "j.json"
        os.mkfifo(cases["a FIFO"])  # reading it would block until a writer comes: never read
    return cases


EXPECTED_PROBLEM = {
    "not JSON": "not valid JSON (line 1, column",
    "a list": "holds a JSON list; expected an object",
    "a number key": "api_key must be text",
    "not UTF-8": "not UTF-8 text",
    "a folder": "is a folder",
    "half a pair": "has api_secret but not api_key",
    "no keys": "has no api_key and api_secret",
    "http base_url": "plain http:// to api.example.com",
    "too large": "bytes; expected a small file",
    "a FIFO": "is not a regular file",
}


def test_a_broken_file_never_blocks_keys_from_the_environment(tmp_path, caplog):
    for name, path in _broken_files(tmp_path).items():
        caplog.clear()
        c = load_credentials({**ENV_KEYS, "SCENARIO_DETECT_CONFIG": str(path)})
        assert (c.api_key, c.api_secret, c.source, c.base_url) == (
            "envkey-123", "envsecret-456", "environment (SCENARIO_API_KEY/SCENARIO_API_SECRET)", DEFAULT_BASE_URL
        ), name
        assert SECRET_IN_FILE not in caplog.text


def test_keys_from_the_environment_never_go_to_the_files_address(tmp_path):
    """A stale or planted file's base_url must not receive the production key from the environment."""
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"api_key": "fk", "api_secret": "fs", "base_url": "https://planted.example/v1"}))
    c = load_credentials({**ENV_KEYS, "SCENARIO_DETECT_CONFIG": str(path)})
    assert (c.api_key, c.base_url) == ("envkey-123", DEFAULT_BASE_URL)
    c = load_credentials({**ENV_KEYS, "SCENARIO_DETECT_CONFIG": str(path), "SCENARIO_BASE_URL": "https://e.example/v1"})
    assert (c.api_key, c.base_url) == ("envkey-123", "https://e.example/v1")
    c = load_credentials({"SCENARIO_DETECT_CONFIG": str(path)})  # the file's address is for the file's keys
    assert (c.api_key, c.base_url) == ("fk", "https://planted.example/v1")


def test_no_exception_reachable_from_a_file_error_holds_the_file(tmp_path):
    """json's and the codec's exceptions keep the whole text (``doc``, ``object``): they must not
    stay reachable from ours through ``__context__``."""
    for name, path in _broken_files(tmp_path).items():
        with pytest.raises(ScenarioConfigError) as info:
            load_credentials({"SCENARIO_DETECT_CONFIG": str(path)})
        chain, exc = [], info.value
        while exc is not None:
            chain.append(exc)
            exc = exc.__cause__ or exc.__context__
        for exc in chain:
            held = [str(exc), *map(repr, exc.args), *map(repr, vars(exc).values()), repr(getattr(exc, "object", ""))]
            assert not any(SECRET_IN_FILE in text for text in held), (name, type(exc).__name__)


def test_when_the_file_is_the_only_source_its_error_says_what_is_wrong(tmp_path):
    for name, path in _broken_files(tmp_path).items():
        with pytest.raises(ScenarioConfigError) as info:
            load_credentials({"SCENARIO_DETECT_CONFIG": str(path)})
        text = str(info.value)
        assert EXPECTED_PROBLEM[name] in text and str(path) in text, (name, text)
        assert SECRET_IN_FILE not in text and "12345678" not in text


def test_an_unreadable_file_says_so(tmp_path):
    (tmp_path / "not-a-folder").write_text("x")
    path = tmp_path / "not-a-folder" / "credentials.json"  # reading it fails, even for root
    with pytest.raises(ScenarioConfigError, match="cannot read .*Not a directory.*permissions"):
        load_credentials({"SCENARIO_DETECT_CONFIG": str(path)})
    assert load_credentials({**ENV_KEYS, "SCENARIO_DETECT_CONFIG": str(path)}).api_key == "envkey-123"


# -- the API address ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/v1", "http://localhost:9/v1", "http://[::1]:9/v1", "http://127.0.0.2/v1",
     "https://api.example.com/v1", DEFAULT_BASE_URL + "/"],
)
def test_https_or_loopback_http_addresses_are_accepted(url, tmp_path):
    c = load_credentials({**ENV_KEYS, "SCENARIO_BASE_URL": url, "SCENARIO_DETECT_CONFIG": str(tmp_path / "n")})
    assert c.base_url == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://api.example.com/v1", "plain http:// to api.example.com"),
        ("http://localhost.example.com/v1", "plain http://"),
        ("http://127.0.0.1.nip.io/v1", "plain http://"),
        ("https://user:hunter2pass@api.example.com/v1", "user name or password"),
        ("https://api.example.com/v1?token=abc", "query or fragment"),
        ("ftp://api.example.com/v1", "not an http(s) address"),
        ("api.example.com/v1", "not an http(s) address"),
        ("https://api.example.com:notaport/v1", "not an http(s) address"),
    ],
)
def test_unsafe_addresses_are_refused_from_env_or_file(url, problem, tmp_path):
    with pytest.raises(ScenarioConfigError) as info:
        load_credentials({**ENV_KEYS, "SCENARIO_BASE_URL": url, "SCENARIO_DETECT_CONFIG": str(tmp_path / "n")})
    assert problem in str(info.value) and "SCENARIO_BASE_URL" in str(info.value)
    assert "hunter2pass" not in str(info.value) and "token=abc" not in str(info.value)
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"api_key": "k", "api_secret": "s", "base_url": url}))
    with pytest.raises(ScenarioConfigError) as info:
        load_credentials({"SCENARIO_DETECT_CONFIG": str(path)})
    assert problem in str(info.value) and f"base_url in {path}" in str(info.value)


def test_loopback_hosts():
    for host in ("localhost", "LOCALHOST.", "127.0.0.1", "127.8.9.10", "::1", "[::1]"):
        assert is_loopback_host(host), host
    for host in ("", None, "example.com", "10.0.0.1", "0.0.0.0", "localhost.example.com", "127.0.0.1.nip.io"):
        assert not is_loopback_host(host), host


def test_a_localhost_subdomain_counts_only_when_it_resolves_to_loopback():
    """``*.localhost`` is loopback only if every address it resolves to is; other names are never
    looked up (a public name can resolve elsewhere by the time the request connects)."""
    table = {"app.localhost": ["127.0.0.1", "::1"], "lan.localhost": ["127.0.0.1", "192.168.1.5"]}
    asked: list[str] = []

    def resolve(name: str) -> list[str]:
        asked.append(name)
        return table.get(name, [])

    assert is_loopback_host("app.localhost", resolve)
    assert not is_loopback_host("lan.localhost", resolve)
    assert not is_loopback_host("gone.localhost", resolve)  # does not resolve at all
    assert not is_loopback_host("127.0.0.1.nip.io", resolve) and "127.0.0.1.nip.io" not in asked
    assert asked == ["app.localhost", "lan.localhost", "gone.localhost"]


# -- file permissions -----------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_credentials_file_others_can_read_is_warned_about(tmp_path, caplog):
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"api_key": "k", "api_secret": SECRET_IN_FILE}))
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="scenario_detect"):
        load_credentials({"SCENARIO_DETECT_CONFIG": str(path)})
    assert "other users" not in caplog.text
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="scenario_detect"):
        load_credentials({"SCENARIO_DETECT_CONFIG": str(path)})
    assert "can be read by other users" in caplog.text and f"chmod 600 {path}" in caplog.text
    assert SECRET_IN_FILE not in caplog.text
