"""The Detect node's scenario backend inside a real ComfyUI, talking to the fake Scenario server.

The fake starts before the shared server (a registered server setup) and ComfyUI gets its address
and keys through the environment, as a user's server would get real ones.
"""

from __future__ import annotations

import contextlib
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


# -- the fault matrix: every way out of a job, in a real ComfyUI ----------------------------------
#
# Each row ends with at most one detect POST, a cancel for every job that was created and not
# terminal, and a clear error (no traceback). Moments come from the fake's own hooks (an answer held
# until the test releases it, a condition on what the fake has seen), never from sleeps. Faults that
# need the client's retry policy shortened (failing for good, timeouts of the transport) run
# in-process in test_scenario_faults.py; the time from Cancel to the cancel request is measured by
# ``benchmarks/bench_scenario.py --cancel-latency 20``.


def _queue(server: ComfyServer, seed: int, **overrides: Any) -> str:
    # A new image per row: ComfyUI would otherwise serve the node's cached output.
    return server.queue_prompt(_graph(server, _upload(server, seed, width=96, height=64), **overrides))


def _answered_polls(fake: FakeScenario) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and "/v1/jobs/" in r.path and r.answered.is_set())


def _cancel_at(fake: FakeScenario, moment: str):
    """Set the fake up for ``moment``; returns (wait until the moment is reached, release)."""
    fake.job_seconds = 60
    if moment == "detect POST in flight, answered late":
        held = fake.hold("POST", "/generate/detect$")
        return held.wait_reached, held.release
    if moment == "right after the detect POST":
        held = fake.hold("GET", "/v1/jobs/")  # the first poll: the POST has been answered
        return held.wait_reached, held.release
    if moment == "queued":
        fake.queue_outcome("stuck", stage="queued")
        return lambda: fake.wait_until(lambda: _answered_polls(fake) >= 2, what="two polls"), lambda: None
    if moment == "in progress, with progress updates":
        fake.queue_outcome("stuck", stage="in-progress")
        return lambda: fake.wait_until(lambda: _answered_polls(fake) >= 3, what="three polls"), lambda: None
    if moment == "during the result download":
        fake.job_seconds = 0.2
        held = fake.hold("GET", "/content/")
        return held.wait_reached, held.release
    raise AssertionError(moment)


CANCEL_MOMENTS = [
    "detect POST in flight, answered late",
    "right after the detect POST",
    "queued",
    "in progress, with progress updates",
    "during the result download",
]


@pytest.mark.parametrize("moment", CANCEL_MOMENTS)
def test_cancel_at_each_moment_cancels_the_remote_job(comfy_server: ComfyServer, fake: FakeScenario, moment: str):
    reached, release = _cancel_at(fake, moment)
    prompt_id = _queue(comfy_server, 100 + CANCEL_MOMENTS.index(moment))
    reached()
    comfy_server.interrupt()
    with pytest.raises(PromptFailed) as info:
        comfy_server.wait_for(prompt_id, timeout=60)
    assert info.value.error.get("event") == "execution_interrupted"  # shown as interrupted, not an error
    release()  # a held answer goes out now, after the run was abandoned
    [job] = fake.billed_jobs
    assert len(fake.requests_to("POST", "/generate/detect$")) == 1
    if moment == "during the result download":
        assert job.state()[0] == "success" and fake.requests_to("POST", "/action$") == []  # nothing to cancel
        return
    fake.wait_until(lambda: fake.canceled_jobs() == [job.id], what=f"the cancel of {job.id}")
    assert len(fake.requests_to("POST", "/action$")) == 1


# Transport faults at each step. The fake breaks the answer once: a GET is retried and the run ends
# well; a detect POST is never repeated (it may have created a job) and says so.
STEPS = {"detect POST": ("POST", "/generate/detect$"), "poll": ("GET", "/v1/jobs/"),
         "asset": ("GET", "/v1/assets/"), "download": ("GET", "/content/")}  # fmt: skip
TRANSPORT_FAULTS = {
    "drop": "RemoteProtocolError (no answer)",
    "reset": "ReadError (connection reset)",
    "bad_encoding": "DecodingError (gzip that is not)",
}


@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("action", list(TRANSPORT_FAULTS))
def test_transport_fault_at_each_step(comfy_server: ComfyServer, fake: FakeScenario, step: str, action: str):
    method, path = STEPS[step]
    fake.add_fault(method, path, action=action)
    seed = 200 + list(STEPS).index(step) * 10 + list(TRANSPORT_FAULTS).index(action)
    prompt_id = _queue(comfy_server, seed)
    if step == "detect POST":
        with pytest.raises(PromptFailed) as info:
            comfy_server.wait_for(prompt_id, timeout=60)
        message = info.value.exception_message
        assert "NOT retried" in message and "Traceback" not in message, message
        assert len(fake.requests_to("POST", "/generate/detect$")) == 1 and fake.billed_jobs == []
        return
    history = comfy_server.wait_for(prompt_id, timeout=60)
    assert len(comfy_server.output_images(history)) == 1
    assert len(fake.requests_to("POST", "/generate/detect$")) == 1 and len(fake.billed_jobs) == 1
    assert len(fake.requests_to(method, path)) >= 2  # the broken answer, then the retry


def _fails_in_comfyui(server: ComfyServer, prompt_id: str) -> str:
    with pytest.raises(PromptFailed) as info:
        server.wait_for(prompt_id, timeout=60)
    message = info.value.exception_message
    assert info.value.error.get("event") == "execution_error"
    assert "Traceback" not in message and "scenario" in info.value.error.get("exception_type", "").lower(), (
        info.value.error
    )
    return message


def test_stalled_download_ends_at_timeout_s(comfy_server: ComfyServer, fake: FakeScenario):
    fake.content_url = "stall"
    message = _fails_in_comfyui(comfy_server, _queue(comfy_server, 301, timeout_s=10))  # the widget's minimum
    [job] = fake.billed_jobs
    assert "timeout_s (10 s)" in message and job.id in message
    assert fake.requests_to("POST", "/action$") == []  # the job had finished: nothing to cancel


HOSTILE_URLS = {
    "other_host": None,  # another (loopback) host: downloaded, without the API's credentials
    "http_remote": "http",
    "redirect_loop": "redirect",
    "oversized": "MB",
    "ftp": "ftp",
}


@pytest.mark.parametrize("kind", list(HOSTILE_URLS))
def test_hostile_result_url(comfy_server: ComfyServer, fake: FakeScenario, kind: str):
    fake.content_url = kind
    prompt_id = _queue(comfy_server, 310 + list(HOSTILE_URLS).index(kind))
    if HOSTILE_URLS[kind] is None:
        history = comfy_server.wait_for(prompt_id, timeout=60)
        assert len(comfy_server.output_images(history)) == 1
        downloads = fake.requests_to("GET", "/content/")
        assert downloads and all("Authorization" not in r.headers for r in downloads)
    else:
        message = _fails_in_comfyui(comfy_server, prompt_id)
        assert HOSTILE_URLS[kind].lower() in message.lower(), message
        assert fake.requests_to("GET", "^/content/") == []  # the result itself never came through
    assert len(fake.requests_to("POST", "/generate/detect$")) == 1
    assert fake.requests_to("POST", "/action$") == []  # the job had finished: nothing to cancel
