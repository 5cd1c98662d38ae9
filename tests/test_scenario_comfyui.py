"""The Detect node's scenario backend inside a real ComfyUI, talking to the fake Scenario server.

The fake starts before the shared server (a registered server setup) and ComfyUI gets its address
and keys through the environment, as a user's server would get real ones.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

import comfy_host
import numpy as np
import pytest
from comfy_host import ComfyServer, PromptFailed
from fake_scenario import FakeScenario
from PIL import Image

from scenario_detect.nodes.modalities import MODALITY_NAMES, api_fields

pytestmark = [pytest.mark.comfyui, pytest.mark.timeout(300)]

FAKE: FakeScenario | None = None


@comfy_host.register_server_setup
def _start_fake_scenario(options: comfy_host.ServerOptions, stack: contextlib.ExitStack) -> None:
    global FAKE
    FAKE = stack.enter_context(FakeScenario(job_seconds=0.3))
    options.env.update(FAKE.env())
    options.env["SCENARIO_DETECT_CACHE"] = "0"  # each test must reach the fake


@pytest.fixture()
def fake(comfy_server: ComfyServer) -> FakeScenario:
    assert FAKE is not None
    FAKE.reset()
    FAKE.job_seconds = 0.3
    return FAKE


def _defaults(server: ComfyServer) -> dict[str, Any]:
    info = server.object_info("ScenarioDetect")["input"]
    values: dict[str, Any] = {}
    for section in ("required", "optional"):
        for name, spec in info.get(section, {}).items():
            if name == "image":
                continue
            kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
            if isinstance(kind, list):  # a combo in the old format
                values[name] = options.get("default", kind[0])
            elif "default" in options:
                values[name] = options["default"]
    return values


def _image(seed: int, width: int = 120, height: int = 90) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def _graph(server: ComfyServer, image_name: str, batch: int = 1, **overrides: Any) -> dict[str, Any]:
    inputs = {**_defaults(server), "backend": "scenario", **overrides}
    graph: dict[str, Any] = {"1": {"class_type": "LoadImage", "inputs": {"image": image_name}}}
    source = ["1", 0]
    if batch > 1:
        graph["4"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": batch}}
        source = ["4", 0]
    graph["2"] = {"class_type": "ScenarioDetect", "inputs": {"image": source, **inputs}}
    graph["3"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["2", 0], "filename_prefix": f"scn-{uuid.uuid4().hex[:10]}"},
    }
    return graph


def _upload(server: ComfyServer, seed: int, **size: int) -> str:
    return server.upload_image(_image(seed, **size), name=f"scn-{seed}-{uuid.uuid4().hex[:6]}.png")


@pytest.mark.parametrize("modality", MODALITY_NAMES)
def test_each_modality_end_to_end(comfy_server: ComfyServer, fake: FakeScenario, modality: str) -> None:
    name = _upload(comfy_server, 7, width=130, height=70)
    history = comfy_server.run(_graph(comfy_server, name, modality=modality))
    [path] = comfy_server.output_images(history)
    with Image.open(path) as saved:
        assert saved.size == (130, 70)  # resized back from the API's 128x64
    [request] = fake.requests_to("POST", "/generate/detect")
    defaults = _defaults(comfy_server)
    sent = {k: v for k, v in request.body.items() if k not in ("image", "modality")}
    assert request.body["modality"] == modality and sent == api_fields(modality, defaults)
    assert any("cost 2 CU" in line for line in history["outputs"]["2"]["text"])


def test_batch_of_4_runs_four_jobs_in_order(comfy_server: ComfyServer, fake: FakeScenario) -> None:
    import json

    name = _upload(comfy_server, 11)
    graph = _graph(comfy_server, name, batch=4)
    graph["5"] = {"class_type": "PreviewAny", "inputs": {"source": ["2", 2]}}  # the pose_keypoint output
    history = comfy_server.run(graph)
    assert len(comfy_server.output_images(history)) == 4
    assert len(fake.billed_jobs) == 4
    # The API returns only images: one entry per map, no people, the map's size as canvas.
    keypoints = json.loads(history["outputs"]["5"]["text"][0])
    assert keypoints == [{"canvas_width": 120, "canvas_height": 90, "people": []}] * 4
    assert any("cost 8 CU" in line for line in history["outputs"]["2"]["text"])


def test_interrupt_cancels_the_remote_job_within_2_s(comfy_server: ComfyServer, fake: FakeScenario) -> None:
    fake.job_seconds = 120
    name = _upload(comfy_server, 12)
    prompt_id = comfy_server.queue_prompt(_graph(comfy_server, name))
    deadline = time.monotonic() + 60
    while not fake.billed_jobs:
        assert time.monotonic() < deadline, "the job never reached the fake"
        time.sleep(0.05)
    started = time.monotonic()
    comfy_server.interrupt()
    while not fake.canceled_jobs():
        assert time.monotonic() - started < 2.0, "no cancel reached Scenario within 2 s of the interrupt"
        time.sleep(0.02)
    with pytest.raises(PromptFailed) as info:
        comfy_server.wait_for(prompt_id, timeout=30)
    assert info.value.error.get("event") == "execution_interrupted"
    assert fake.canceled_jobs() == [fake.billed_jobs[0].id]


def test_job_failure_reaches_the_user_with_error_and_hint(comfy_server: ComfyServer, fake: FakeScenario) -> None:
    fake.queue_outcome("failure", "No body found", "Use a picture of a person")
    name = _upload(comfy_server, 13)
    with pytest.raises(PromptFailed) as info:
        comfy_server.run(_graph(comfy_server, name, modality="pose"))
    assert "No body found" in info.value.exception_message
    assert "Use a picture of a person" in info.value.exception_message


def test_estimate_only_bills_nothing_and_shows_the_cost(comfy_server: ComfyServer, fake: FakeScenario) -> None:
    name = _upload(comfy_server, 14)
    history = comfy_server.run(_graph(comfy_server, name, batch=3, estimate_only=True))
    assert fake.billed_jobs == []
    text = " ".join(history["outputs"]["2"]["text"])
    assert "Estimate" in text and "6 CU" in text


def test_no_secret_in_saved_png_or_server_log(comfy_server: ComfyServer, fake: FakeScenario) -> None:
    fake.add_fault("GET", "/content/", 403)  # an expired URL on the way: a log line about it
    name = _upload(comfy_server, 15)
    history = comfy_server.run(_graph(comfy_server, name))
    [path] = comfy_server.output_images(history)
    with Image.open(path) as saved:
        metadata = " ".join(str(v) for v in saved.info.values())
    assert '"backend": "scenario"' in metadata  # the workflow is there...
    log = comfy_server.log_path.read_text(errors="replace")
    for text in (metadata, log):
        for needle in (fake.key, fake.secret, "Authorization", "X-Amz", "Signature="):
            assert needle not in text  # ...and no credential or signed URL


@pytest.fixture(scope="module")
def keyless_server():
    """A server of its own, with no Scenario key in its environment (keys come from a file later)."""
    with FakeScenario(job_seconds=0.1) as fake:
        options = comfy_host.ServerOptions(env={"SCENARIO_DETECT_CACHE": "0"})
        with comfy_host.start_server(options, name="scenario-keyless") as server:
            yield server, fake


def test_missing_key_then_the_user_folder_credentials_file(keyless_server) -> None:
    server, fake = keyless_server
    name = server.upload_image(_image(21), name="keyless.png")
    expected_file = server.user_dir / "scenario-detect" / "credentials.json"
    with pytest.raises(PromptFailed) as info:
        server.run(_graph(server, name))
    message = info.value.exception_message
    assert "SCENARIO_API_KEY" in message and str(expected_file) in message
    assert fake.requests == []  # nothing was sent without credentials

    expected_file.parent.mkdir(parents=True, exist_ok=True)
    expected_file.write_text(
        f'{{"api_key": "{fake.key}", "api_secret": "{fake.secret}", "base_url": "{fake.base_url}"}}'
    )
    history = server.run(_graph(server, name))
    assert len(server.output_images(history)) == 1 and len(fake.billed_jobs) == 1
