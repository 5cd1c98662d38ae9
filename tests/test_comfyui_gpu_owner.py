"""One GPU, one owner: no other node's model load or free runs while our network is on the device.

A real ComfyUI with a test-only node (``tests/comfy_nodes/model_churn``): in the same prompt as two
local Detect nodes (PiDiNet, then M-LSD, random weights), ``ModelChurn`` loads a model of its own and
calls ``unload_all_models()`` over and over on ComfyUI's prompt thread, as a sampler or VAE node of
an independent branch would. Global torch forward hooks in that node record every top-level forward
(which thread, and its start and end on one shared counter); each churn call records whether a
forward was in flight on another thread.

What must hold: no churn call lands inside one of our forwards (the worker holds the prompt thread
from its first ``load_models_gpu`` to the end of the method), churn calls land between our two runs
(the prompt thread is free while the next run reads its weights), the churn really unloaded our
networks (ComfyUI's list held models other than its own), and the maps equal those of the same
graph without the churn. On the worker design before this change (forwards on the worker while the
prompt thread ran on), churn calls landed inside the forwards and the first assertion failed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comfy_host
import numpy as np
import pytest
import random_weights
from PIL import Image
from test_comfyui_detect import detect_inputs, make_test_image

pytestmark = [pytest.mark.comfyui, pytest.mark.timeout(600)]
pytest.importorskip("controlnet_aux")

NODES_DIR = Path(__file__).parent / "comfy_nodes"
METHODS = (("scribble", "pidinet_scribble"), ("mlsd", "mlsd_large"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[comfy_host.ComfyServer]:
    options = comfy_host.ServerOptions(
        extra_paths={"scenario_detect": str(random_weights.models_root()), "custom_nodes": str(NODES_DIR)},
        env={
            "SCENARIO_DETECT_OFFLINE": "1",
            "HF_HUB_CACHE": str(tmp_path_factory.mktemp("empty-hf")),
            "SCENARIO_DETECT_MODELS_DIR": "",
            "AUX_ANNOTATOR_CKPTS_PATH": str(tmp_path_factory.mktemp("no-ckpts")),
        },
    )
    with comfy_host.start_server(options, name="gpu-owner") as started:
        yield started


def _graph(server: comfy_host.ComfyServer, image: str, churn: bool) -> dict[str, Any]:
    graph: dict[str, Any] = {"1": {"class_type": "LoadImage", "inputs": {"image": image}}}
    for index, (modality, method) in enumerate(METHODS):
        detect, save = str(10 + index), str(20 + index)
        inputs = detect_inputs(server, modality=modality, local_method=method)
        graph[detect] = {"class_type": "ScenarioDetect", "inputs": {"image": ["1", 0], **inputs}}
        graph[save] = {"class_type": "SaveImage",
                       "inputs": {"images": [detect, 0], "filename_prefix": f"owner-{uuid.uuid4().hex[:8]}"}}
    if churn:
        graph["30"] = {"class_type": "ModelChurn", "inputs": {"forwards": len(METHODS), "tag": uuid.uuid4().hex}}
    return graph


def _maps(server: comfy_host.ComfyServer, history: dict[str, Any]) -> list[np.ndarray]:
    return [
        np.asarray(Image.open(path).convert("RGB"))
        for index in range(len(METHODS))
        for path in server.output_images(history, str(20 + index))
    ]


def test_no_model_management_call_lands_inside_our_forwards(server: comfy_host.ComfyServer) -> None:
    assert "ModelChurn" in server.object_info(), server.log_tail()
    picture = make_test_image(3)
    reference = _maps(server, server.run(_graph(server, server.upload_image(picture, name="owner-a.png"), False),
                                         timeout=300))
    history = server.run(_graph(server, server.upload_image(picture, name="owner-b.png"), True), timeout=300)
    report = json.loads(history["outputs"]["30"]["text"][0])
    artifacts = comfy_host.ARTIFACTS_DIR
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "gpu_owner_report.json").write_text(json.dumps(report, indent=1))

    ours = [span for span in report["spans"] if span["thread"].startswith("scenario-detect-local")]
    assert len(ours) >= len(METHODS), report["spans"]
    inside = [call for call in report["calls"] if call["busy"]]
    assert not inside, f"{len(inside)} model-management calls ran during a forward of ours: {inside[:3]}"
    between = [c for c in report["calls"] if ours[0]["end"] < c["tick"] < ours[-1]["start"]]
    assert between, "the churn never ran between our two runs: the prompt thread was held too long"
    assert report["unloaded_others"] > 0, "the churn never found one of our networks loaded"
    after = _maps(server, history)
    assert len(after) == len(reference) == len(METHODS)
    for got, expected in zip(after, reference, strict=True):
        assert np.array_equal(got, expected)
