"""The process ends its jobs: SIGTERM (docker stop, systemd, a closed terminal) on a real ComfyUI
and on the CLI, and Ctrl-C on the CLI, each cancel the Scenario job still running before the
process goes, and the process still goes (the host's own handling is chained, not swallowed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import comfy_host
import numpy as np
import pytest
from fake_scenario import FakeScenario
from PIL import Image

from scenario_detect.nodes.scenario.credentials import CREDENTIAL_ENV

pytestmark = pytest.mark.timeout(300)


def _polled(fake: FakeScenario) -> bool:
    return any(r.method == "GET" and r.path.startswith("/v1/jobs/") for r in fake.requests)


def _cli(picture: Path, env: dict[str, str]) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_ENV}
    args = [str(picture), "--backend", "scenario", "--modality", "canny", "-o", str(picture.with_name("out.png"))]
    return subprocess.Popen(
        [sys.executable, "-m", "scenario_detect", *args],
        env={**clean, **env, "SCENARIO_DETECT_CACHE": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 130)])
def test_a_stopped_cli_cancels_its_job_and_still_exits(tmp_path, signum, code):
    picture = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (50, 90, 3), dtype=np.uint8)).save(picture)
    with FakeScenario(job_seconds=600) as fake:
        process = _cli(picture, fake.env())
        try:
            fake.wait_until(lambda: _polled(fake), 90, "the CLI polling its job")
            process.send_signal(signum)
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        [job] = fake.billed_jobs
        assert fake.canceled_jobs() == [job.id], err[-3000:]
    assert process.returncode == code, err[-3000:]
    assert "Future exception was never retrieved" not in err and "Traceback" not in err, err[-3000:]
    if signum == signal.SIGINT:
        assert f"job {job.id} was canceled (confirmed by Scenario)" in err


def _graph(server: comfy_host.ComfyServer) -> dict:
    name = server.upload_image(Image.new("RGB", (64, 48), (90, 40, 200)), name=f"t-{uuid.uuid4().hex[:6]}.png")
    info = server.object_info("ScenarioDetect")["input"]
    inputs = {
        key: spec[1]["default"]
        for section in ("required", "optional")
        for key, spec in info.get(section, {}).items()
        if key != "image" and len(spec) > 1 and isinstance(spec[1], dict) and "default" in spec[1]
    }
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "ScenarioDetect", "inputs": {**inputs, "image": ["1", 0], "backend": "scenario"}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }


@pytest.mark.comfyui
def test_in_comfyui_the_progress_hook_interrupt_and_then_sigterm_cancel_the_jobs():
    """One server whose Cancel watcher never looks (SCENARIO_DETECT_INTERRUPT_POLL_S): Cancel ends
    the run only through ComfyUI's interrupt exception raised by a progress update, and the job is
    canceled. Then SIGTERM while a second job runs: that job is canceled and ComfyUI still exits."""
    with FakeScenario(job_seconds=600) as fake:
        env = {**fake.env(), "SCENARIO_DETECT_CACHE": "0", "SCENARIO_DETECT_INTERRUPT_POLL_S": "3600"}
        with comfy_host.start_server(comfy_host.ServerOptions(env=env), name="process-stop") as server:
            prompt_id = server.queue_prompt(_graph(server))
            fake.wait_until(lambda: _polled(fake), 120, "ComfyUI polling its job")
            server.interrupt()
            with pytest.raises(comfy_host.PromptFailed) as info:
                server.wait_for(prompt_id, timeout=60)
            assert info.value.error.get("event") == "execution_interrupted", info.value
            [first] = fake.billed_jobs
            fake.wait_until(lambda: fake.canceled_jobs() == [first.id], 30, "the cancel after the progress hook")

            fake.reset()
            server.queue_prompt(_graph(server))
            fake.wait_until(lambda: _polled(fake), 120, "ComfyUI polling its second job")
            os.kill(server.process.pid, signal.SIGTERM)
            server.process.wait(timeout=60)
            [second] = fake.billed_jobs
            assert fake.canceled_jobs() == [second.id], server.log_tail()
            assert server.process.returncode == -signal.SIGTERM, server.log_tail()
            assert "process stopping: 1 Scenario run(s) were stopped" in server.log_path.read_text(errors="replace")


EXIT_WHILE_POLLING = r"""
import sys, threading
import torch
from scenario_detect.nodes.scenario.backend import run_scenario_sync
from scenario_detect.nodes.scenario.credentials import Credentials

polled = threading.Event()
creds = Credentials(sys.argv[1], sys.argv[2], sys.argv[3], "test")
threading.Thread(
    target=run_scenario_sync,
    args=(torch.rand(1, 32, 48, 3), "canny", {}),
    kwargs={"credentials": creds, "use_cache": False, "on_progress": lambda done: polled.set()},
    daemon=True,  # as ComfyUI's prompt thread: nothing waits for it at exit
).start()
assert polled.wait(60), "the job was never polled"
sys.exit(0)  # a normal exit while the job is being polled
"""


def test_a_normal_exit_while_a_job_is_polled_cancels_it():
    """Before, interpreter exit awaited only late detect answers, not jobs still being polled."""
    with FakeScenario(job_seconds=600) as fake:
        clean = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_ENV}
        done = subprocess.run(
            [sys.executable, "-c", EXIT_WHILE_POLLING, fake.key, fake.secret, fake.base_url],
            env=clean, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        [job] = fake.billed_jobs
        assert fake.canceled_jobs() == [job.id], done.stderr[-3000:]
