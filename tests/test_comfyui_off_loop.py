"""A local Detect does not freeze ComfyUI's event loop: a cloud Detect of the same prompt keeps polling.

One prompt, two Detect nodes on the same image: one local (PiDiNet scribble, whose weight file
comes from a loopback "hub" that holds the download) and one on the fake Scenario server. Moments are
driven by hooks, not sleeps:

- the hub sends the first 64 KiB of the weight file, then holds the rest until the fake Scenario has
  seen ``POLLS`` more polls of the cloud job; so the local run is in progress (on its worker thread, inside
  the download) for as long as the cloud job needs to be polled that often;
- the fake keeps the cloud job in progress (``job_gate``) until the hub has sent the whole file, so
  the cloud node cannot finish before the local download has started and ended.

If the local run blocked the loop, no poll could happen while the hub holds the file: the hub gives up
waiting after ``HOLD_LIMIT_S`` (only so that the test ends; nothing is asserted on time) and the test
fails on the poll count. The timeline (poll times relative to the download) is written to
``tests/artifacts/off_loop_timeline.json``.

A second test fails the cloud job while the local run is held: the abandoned local run must stop at
its next check rather than finish its download and inference for a prompt that is over.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import comfy_host
import cv2
import numpy as np
import pytest
import random_weights
from comfy_host import PromptFailed
from fake_hub import FakeHub
from fake_scenario import FakeScenario
from PIL import Image

pytestmark = [pytest.mark.comfyui, pytest.mark.timeout(400)]
pytest.importorskip("controlnet_aux")

POLLS = 3  # cloud polls the hub waits for while it holds the local run's download
HOLD_LIMIT_S = 30.0  # liveness only: how long the hub holds the file when no poll comes (loop blocked)
WEIGHT_FILE = "lllyasviel/Annotators/table5_pidinet.pth"
JOB_POLL = r"^/v1/jobs/[\w-]+$"


def _weight_file() -> bytes:
    """The random PiDiNet checkpoint the hub serves."""
    return (random_weights.models_root() / WEIGHT_FILE).read_bytes()


class _HeldHub:
    """The fake hub's ``mid_file`` hook: the first download of the PiDiNet file is held mid-file
    until the cloud job was polled ``POLLS`` times (or ``release`` is set), then the fake's job gate
    opens. Later downloads pass straight through."""

    fake: FakeScenario
    started: float | None = None  # the held download's first bytes were sent
    finished: float | None = None  # the hold ended; the rest of the file follows at once
    held = False
    polls_to_release: int | None = POLLS  # None: hold until ``release`` is set
    release = threading.Event()

    @classmethod
    def reset(cls, polls_to_release: int | None = POLLS) -> None:
        cls.started = cls.finished = None
        cls.held = False
        cls.polls_to_release = polls_to_release
        cls.release = threading.Event()

    @classmethod
    def mid_file(cls, key: str) -> None:
        if cls.held or not key.endswith(WEIGHT_FILE):
            return
        cls.held = True
        cls.started = time.monotonic()
        polled_before = len(cls.fake.requests_to("GET", JOB_POLL))  # the cloud node may have started first
        if cls.polls_to_release is None:
            if cls.fake.job_gate is not None:
                cls.fake.job_gate.set()  # the cloud job may end now: the local run is in its download
            cls.release.wait(timeout=HOLD_LIMIT_S)
        else:
            cls.fake.wait_for_requests("GET", JOB_POLL, polled_before + cls.polls_to_release, timeout=HOLD_LIMIT_S)
        cls.finished = time.monotonic()
        if cls.fake.job_gate is not None:
            cls.fake.job_gate.set()


class _Events(threading.Thread):
    """ComfyUI's websocket messages for our client id, with their arrival times."""

    def __init__(self, server: comfy_host.ComfyServer) -> None:
        super().__init__(daemon=True, name="comfy-ws")
        self.url = server.url.replace("http://", "ws://") + f"/ws?clientId={server.client_id}"
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.connected = threading.Event()

    def run(self) -> None:
        asyncio.run(self._listen())

    async def _listen(self) -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(self.url) as ws:
            self.connected.set()
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.messages.append((time.time(), json.loads(message.data)))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [data["data"] for _, data in self.messages if data.get("type") == kind]


def _image(width: int = 192, height: int = 128) -> Image.Image:
    # Sides that are multiples of 64: the fake's "API size" is the input's, so the cloud map is the
    # input's luma pixel for pixel (no resize on either side).
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1)
    noise = rng.integers(0, 40, (height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def _detect(server: comfy_host.ComfyServer, source: list, backend: str, **extra: Any) -> dict[str, Any]:
    info = server.object_info("ScenarioDetect")["input"]
    inputs: dict[str, Any] = {}
    for section in ("required", "optional"):
        for name, spec in info.get(section, {}).items():
            options = spec[1] if len(spec) > 1 else {}
            if name != "image" and "default" in options:
                inputs[name] = options["default"]
    return {"class_type": "ScenarioDetect", "inputs": {**inputs, "image": source, "backend": backend, **extra}}


def _save(source: list) -> dict[str, Any]:
    return {"class_type": "SaveImage", "inputs": {"images": source, "filename_prefix": f"ol-{uuid.uuid4().hex[:8]}"}}


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as png:
        return np.asarray(png.convert("RGB"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[comfy_host.ComfyServer, FakeScenario, Path]]:
    """A server of its own: downloads allowed from the held hub, Scenario keys for the fake."""
    hub = FakeHub()
    hub.files[WEIGHT_FILE] = _weight_file()
    hub.mid_file = _HeldHub.mid_file
    try:
        with hub.serve() as hub_url, FakeScenario(job_seconds=0.3) as fake:
            _HeldHub.fake = fake
            options, models = comfy_host.without_weights(
                tmp_path_factory.mktemp("off-loop"),
                HF_ENDPOINT=hub_url,
                SCENARIO_DETECT_OFFLINE="0",
                HF_HUB_OFFLINE="0",
                SCENARIO_DETECT_CACHE="0",
                **fake.env(),
            )
            with comfy_host.start_server(options, name="off-loop") as server:
                try:
                    yield server, fake, models / "lllyasviel" / "Annotators"
                finally:
                    _HeldHub.release.set()  # a hold still waiting must not keep the hub from closing
    finally:
        _HeldHub.release.set()


def _fresh(setup: tuple[comfy_host.ComfyServer, FakeScenario, Path], polls_to_release: int | None) -> None:
    """No weight file on disk (the local run downloads it again), a held hub, a gated fake."""
    _, fake, folder = setup
    shutil.rmtree(folder, ignore_errors=True)  # the file and huggingface_hub's bookkeeping (.cache/)
    fake.reset()
    fake.job_gate = threading.Event()
    _HeldHub.reset(polls_to_release)


def _local_and_cloud(server: comfy_host.ComfyServer, name: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": _detect(server, ["1", 0], "local", modality="scribble", local_method="pidinet_scribble"),
        "3": _detect(server, ["1", 0], "scenario", modality="canny"),
        "4": _save(["2", 0]),
        "5": _save(["3", 0]),
    }


def test_cloud_job_is_polled_while_a_local_run_works(setup) -> None:
    server, fake, _ = setup
    _fresh(setup, POLLS)
    events = _Events(server)
    events.start()
    assert events.connected.wait(30), "no websocket connection to ComfyUI"
    picture = _image()
    name = server.upload_image(picture, name="off-loop.png")
    graph = _local_and_cloud(server, name)
    history = server.run(graph, timeout=240)
    local = _read(server.output_images(history, "4")[0])
    cloud = _read(server.output_images(history, "5")[0])

    # The same local run again, alone (another file name, so ComfyUI's cache cannot answer).
    alone = server.upload_image(picture, name="off-loop-alone.png")
    graph_alone = {
        "1": {"class_type": "LoadImage", "inputs": {"image": alone}},
        "2": graph["2"],
        "4": _save(["2", 0]),
    }
    reference = _read(server.output_images(server.run(graph_alone, timeout=240), "4")[0])
    started, finished = _HeldHub.started, _HeldHub.finished
    assert started is not None and finished is not None, "the local run never downloaded its weights"
    polls = [r.at for r in fake.requests_to("GET", JOB_POLL)]
    during = [t for t in polls if started <= t <= finished]
    timeline = {
        "download_held_s": round(finished - started, 3),
        "poll_times_from_download_start_s": [round(t - started, 3) for t in polls],
        "polls_during_local_run": len(during),
    }
    artifacts = Path(__file__).parent / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "off_loop_timeline.json").write_text(json.dumps(timeline, indent=2))
    print("timeline:", timeline)

    assert len(during) >= POLLS, f"the cloud job was not polled during the local run: {timeline}"

    # Both outputs are right: the cloud map is the fake's luma of the input; the local map is what
    # the same method gives when it runs alone (and it is a real map, not blank).
    expected_cloud = cv2.cvtColor(np.asarray(picture), cv2.COLOR_RGB2GRAY)
    assert cloud.shape == (128, 192, 3)
    assert int(np.abs(cloud[..., 0].astype(int) - expected_cloud.astype(int)).max()) <= 1
    assert local.shape == (128, 192, 3) and np.array_equal(local, reference)
    assert 0 < int((local > 0).sum()) < local.size

    # Progress of the local run (its download: max = file size) is reported on the local node,
    # so the worker thread saw the node's execution context.
    download_progress = [p for p in events.of_type("progress") if p.get("max") == len(_weight_file())]
    assert download_progress, "no progress reached ComfyUI from the local run"
    assert {p["node"] for p in download_progress} == {"2"}


def test_a_local_run_whose_prompt_failed_stops_at_its_next_check(setup) -> None:
    """The cloud node fails while the local run is held in its download: ComfyUI ends the prompt and
    cancels the local node's task; the run on the worker thread must then stop at its next check (no
    weight file written, no network loaded) instead of running on, and the next prompt works."""
    server, fake, folder = setup
    _fresh(setup, None)  # the hub holds the file until the test releases it, and opens the job gate
    fake.queue_outcome("failure", "No edges found", "Try another picture")
    name = server.upload_image(_image(), name="off-loop-failing.png")
    start = len(server.log_path.read_text(errors="replace"))
    with pytest.raises(PromptFailed) as failed:
        server.run(_local_and_cloud(server, name), timeout=240)
    assert "No edges found" in failed.value.exception_message
    assert _HeldHub.started is not None  # the local run was in its download when the prompt failed

    _HeldHub.release.set()
    deadline = time.monotonic() + 60  # liveness only
    while "Local run stopped" not in server.log_path.read_text(errors="replace")[start:]:
        assert time.monotonic() < deadline, "the abandoned local run did not stop"
        time.sleep(0.1)
    assert not (folder / "table5_pidinet.pth").exists()
    assert not list(folder.glob("table5_pidinet.pth*"))  # its partial bytes stay hidden under .cache

    _HeldHub.reset(0)  # the next download is not held
    history = server.run(
        {
            "1": {"class_type": "LoadImage", "inputs": {"image": name}},
            "2": _detect(server, ["1", 0], "local", modality="scribble", local_method="pidinet_scribble"),
            "4": _save(["2", 0]),
        },
        timeout=240,
    )
    assert _read(server.output_images(history, "4")[0]).shape == (128, 192, 3)
    assert (folder / "table5_pidinet.pth").read_bytes() == _weight_file()
