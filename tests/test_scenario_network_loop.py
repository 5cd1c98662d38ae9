"""The pack's network loop (network_loop.py): every hand-off has a deadline, a failure to start
work reaches the caller, and the network core runs on each supported Python (3.10 included)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scenario_detect.nodes.scenario import network_loop
from scenario_detect.nodes.scenario.errors import ScenarioError, ScenarioTimeout

pytestmark = pytest.mark.timeout(150)


def test_a_hand_off_past_its_deadline_is_stopped_and_said():
    stopped = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.append(True)
            raise

    with pytest.raises(ScenarioTimeout, match="deadline"):
        asyncio.run(network_loop.run_here(forever(), deadline_s=0.2))
    assert stopped == [True]


def test_a_failure_to_start_work_on_the_loop_reaches_the_caller():
    """Before, asyncio only logged it and the caller waited forever (Python 3.10's create_task)."""

    class NotACoroutine:
        def close(self) -> None:
            pass

    with pytest.raises(ScenarioError, match="could not start"):
        asyncio.run(network_loop.run_here(NotACoroutine(), deadline_s=30))  # type: ignore[arg-type]


# -- Python 3.10 ------------------------------------------------------------------------------------


def _interpreters() -> list[str]:
    """This one, plus any named in SCENARIO_DETECT_SMOKE_PYTHONS (e.g. a 3.10 venv with httpx, numpy
    and Pillow: the smoke needs no torch)."""
    extra = [p for p in os.environ.get("SCENARIO_DETECT_SMOKE_PYTHONS", "").split(os.pathsep) if p]
    return [sys.executable, *extra]


@pytest.mark.parametrize("python", _interpreters())
def test_the_cloud_core_runs_on_each_interpreter(python, tmp_path):
    """Job, timeout, cancel retry and estimate through the pack's loop, in a fresh process: on
    Python 3.10 this hung before (asyncio.timeout, create_task(context=))."""
    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "scenario_detect").symlink_to(repo)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(repo / "tests")])}
    done = subprocess.run(
        [python, str(repo / "tests" / "scenario_cloud_smoke.py")], env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert done.returncode == 0 and ": 4 passed, 0 failed" in done.stdout, done.stdout + done.stderr[-3000:]
