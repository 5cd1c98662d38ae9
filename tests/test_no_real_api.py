"""Tests can never reach the real Scenario API or bill a real key: the harness (conftest's
``_isolated_from_real_api``) removes every credential source, and its guard refuses and fails any
request to a host that is not this machine, in this process and in processes started from it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import comfy_host
import numpy as np
import pytest
from PIL import Image

from scenario_detect.nodes.scenario.client import ScenarioClient
from scenario_detect.nodes.scenario.credentials import (
    CREDENTIAL_ENV,
    Credentials,
    config_path,
    load_credentials,
)
from scenario_detect.nodes.scenario.errors import ScenarioAuthError, ScenarioError
from scenario_detect.nodes.scenario.guard import GUARD_ENV, TestGuardBlocked
from scenario_detect.nodes.scenario.urls import DEFAULT_BASE_URL, is_loopback_host

pytestmark = pytest.mark.timeout(120)

TESTS = Path(__file__).resolve().parent
FAKE_KEY, FAKE_SECRET = "guard-test-key-1234", "guard-test-secret-5678"


def test_the_harness_removes_every_credential_source() -> None:
    assert set(CREDENTIAL_ENV) <= set(comfy_host.SCRUBBED_ENV)  # the server list covers the pack's list
    for name in CREDENTIAL_ENV:
        assert name not in os.environ, name
    home, config = Path(os.environ["HOME"]), Path(os.environ["XDG_CONFIG_HOME"])
    # Other tools may write into the temporary HOME during the session (seen: ~/.rustup); what matters is
    # that no credentials file of ours is there.
    assert home != config and Path.home() == home and not (home / ".config" / "scenario-detect").exists()
    assert config_path().is_relative_to(config) and not config_path().exists()
    with pytest.raises(ScenarioAuthError, match="no Scenario API key found"):
        load_credentials()
    assert os.environ.get(GUARD_ENV)


def _blocked(action) -> TestGuardBlocked:
    async def go() -> None:
        async with ScenarioClient(Credentials(FAKE_KEY, FAKE_SECRET, DEFAULT_BASE_URL, "test")) as client:
            await action(client)

    with pytest.raises(TestGuardBlocked) as info:
        asyncio.run(go())
    return info.value


def test_the_guard_refuses_the_real_api_before_connecting(real_api_guard) -> None:
    error = _blocked(lambda c: c.post("/generate/detect", {"modality": "canny"}, what="the detect request"))
    assert "api.cloud.scenario.com" in str(error) and "test guard" in str(error)
    assert isinstance(error, ScenarioError)  # a clean error in ComfyUI, and "nothing was sent"
    [line] = real_api_guard.take()
    assert line.endswith("POST https://api.cloud.scenario.com/v1/generate/detect")

    _blocked(lambda c: c.get("/jobs/job_1", what="a job"))
    _blocked(lambda c: c.download("https://cdn.example.com/a.png?X-Amz-Signature=sig123", what="a result"))
    lines = real_api_guard.take()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "GET https://api.cloud.scenario.com/v1/jobs/job_1",
        "GET https://cdn.example.com/a.png",  # recorded without the signed query
    ]
    assert not any(FAKE_KEY in line or FAKE_SECRET in line for line in lines)


SLOPPY_TEST = """
import asyncio

import pytest

from scenario_detect.nodes.scenario.client import ScenarioClient
from scenario_detect.nodes.scenario.credentials import Credentials
from scenario_detect.nodes.scenario.errors import ScenarioError


def test_that_swallows_every_error():
    async def go():
        async with ScenarioClient(Credentials("k-1234", "s-5678")) as client:  # the real API address
            await client.get("/jobs/job_1", what="a job")

    with pytest.raises(ScenarioError):
        asyncio.run(go())
"""


def test_the_guard_fails_a_test_even_when_it_swallows_the_error(pytester, monkeypatch) -> None:
    pytester.makeconftest((TESTS / "conftest.py").read_text())
    pytester.makepyfile(test_sloppy=SLOPPY_TEST)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1, errors=1)  # the body passed; the guard failed it at teardown
    result.stdout.fnmatch_lines(["*refused by the test guard*", "*GET https://api.cloud.scenario.com/v1/jobs/job_1*"])


def test_a_cli_started_by_a_test_is_guarded_too(real_api_guard, tmp_path: Path) -> None:
    picture = tmp_path / "in.png"
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(picture)
    env = {**os.environ, "SCENARIO_API_KEY": FAKE_KEY, "SCENARIO_API_SECRET": FAKE_SECRET, "SCENARIO_DETECT_CACHE": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "scenario_detect", str(picture), "--backend", "scenario", "-o", str(tmp_path / "o.png")],
        env=env, capture_output=True, text=True, timeout=100,
    )
    assert done.returncode != 0 and "test guard" in done.stderr, done.stderr[-2000:]
    assert FAKE_KEY not in done.stderr + done.stdout and FAKE_SECRET not in done.stderr + done.stdout
    [line] = real_api_guard.take()
    pid, request = line.split(" ", 1)
    assert int(pid) != os.getpid() and request == "POST https://api.cloud.scenario.com/v1/generate/detect"


def test_the_comfyui_server_gets_only_the_credentials_the_tests_give_it(comfy_server) -> None:
    environ = Path(f"/proc/{comfy_server.process.pid}/environ")
    if not environ.exists():
        pytest.skip("reading another process's environment needs Linux /proc")
    env = dict(item.split("=", 1) for item in environ.read_bytes().decode(errors="replace").split("\0") if "=" in item)
    for name in CREDENTIAL_ENV:
        assert env.get(name) == comfy_server.options.env.get(name), name  # only what a server setup set
    if env.get("SCENARIO_BASE_URL"):
        from urllib.parse import urlsplit

        assert is_loopback_host(urlsplit(env["SCENARIO_BASE_URL"]).hostname)
    assert Path(env["HOME"]).is_relative_to(comfy_server.root)
    assert Path(env["XDG_CONFIG_HOME"]).is_relative_to(comfy_server.root)
    assert env[GUARD_ENV] == os.environ[GUARD_ENV]
