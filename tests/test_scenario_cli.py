"""`python -m scenario_detect --backend scenario` against the fake, in a separate process."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from fake_scenario import FakeScenario
from PIL import Image

from scenario_detect.nodes.scenario.credentials import CREDENTIAL_ENV

pytestmark = pytest.mark.timeout(120)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    # Only what the pack reads credentials and the address from: the real-API guard must reach the child.
    clean = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_ENV}
    return subprocess.run(
        [sys.executable, "-m", "scenario_detect", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=100,
    )


@pytest.fixture()
def picture(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (50, 90, 3), dtype=np.uint8)).save(path)
    return path


def test_cli_scenario_backend_writes_the_map_at_input_size(tmp_path, picture):
    with FakeScenario(job_seconds=0.1) as fake:
        env = {**fake.env(), "SCENARIO_DETECT_CACHE_DIR": str(tmp_path / "cache")}
        out = tmp_path / "out.png"
        done = _cli([str(picture), "--backend", "scenario", "-m", "canny", "-o", str(out)], env)
        assert done.returncode == 0, done.stderr
        with Image.open(out) as im:
            assert im.size == (90, 50)
        assert "cost 2 CU" in done.stdout and "asset ids: asset_" in done.stdout
        again = _cli([str(picture), "--backend", "scenario", "-m", "canny", "-o", str(out)], env)
        assert again.returncode == 0 and "from cache" in again.stdout
        assert len(fake.billed_jobs) == 1
        estimate = _cli([str(picture), "--backend", "scenario", "--estimate-only", "-o", str(out)], env)
        assert estimate.returncode == 0 and "Estimate" in estimate.stdout
        assert len(fake.billed_jobs) == 1
        for text in (done.stdout + done.stderr, again.stdout + again.stderr):
            for needle in (fake.key, fake.secret, "X-Amz", "Signature=", "Authorization"):
                assert needle not in text


def test_cli_without_key_says_where_keys_are_read(tmp_path, picture):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "SCENARIO_DETECT_CACHE": "0"}
    done = _cli([str(picture), "--backend", "scenario", "-o", str(tmp_path / "o.png")], env)
    assert done.returncode == 2
    assert "SCENARIO_API_KEY" in done.stderr
    assert str(tmp_path / "cfg" / "scenario-detect" / "credentials.json") in done.stderr
