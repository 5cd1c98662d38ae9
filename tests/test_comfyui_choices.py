"""Unknown choices are refused by a real ComfyUI, not silently replaced by a default.

ComfyUI skips its own list check for every input the node's ``validate_inputs`` names, so a
``backend: "Scenario"`` sent through the HTTP API used to pass validation and run locally. Each
combo the node validates itself must refuse values outside its list and name the list.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from comfy_host import ComfyServer
from PIL import Image

from scenario_detect.nodes.modalities import BACKENDS, MODALITY_NAMES, NODE_ID, all_local_method_names

pytestmark = [pytest.mark.comfyui, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def picture(comfy_server: ComfyServer) -> str:
    pixels = np.random.default_rng(7).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return comfy_server.upload_image(Image.fromarray(pixels), name="choices-test.png")


def _graph(server: ComfyServer, picture: str, **overrides: Any) -> dict[str, Any]:
    info = server.object_info(NODE_ID)["input"]
    inputs: dict[str, Any] = {"image": ["1", 0]}
    for section in ("required", "optional"):
        for name, spec in info.get(section, {}).items():
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if name != "image" and "default" in options:
                inputs[name] = options["default"]
    inputs.update(overrides)
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": picture}},
        "2": {"class_type": NODE_ID, "inputs": inputs},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": uuid.uuid4().hex[:12]}},
    }


def _refusal(server: ComfyServer, picture: str, **overrides: Any) -> str:
    """The Detect node's validation error text for a graph that must be refused (HTTP 400)."""
    queued_before = server.get_json("/queue")
    body = server.rejected_prompt(_graph(server, picture, **overrides))
    assert set(body["node_errors"]) == {"2"}, body
    assert server.get_json("/queue") == queued_before  # nothing was queued, so nothing ran
    return " ".join(f"{e.get('message', '')} {e.get('details', '')}" for e in body["node_errors"]["2"]["errors"])


@pytest.mark.parametrize("value", ["Scenario", "cloud", "remote", "LOCAL", "", "scenario "])
def test_an_unknown_backend_is_refused_with_the_list(comfy_server: ComfyServer, picture: str, value: str) -> None:
    text = _refusal(comfy_server, picture, backend=value)
    assert f"backend must be one of {', '.join(BACKENDS)}; got {value!r}" in text


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unknown_local_method_is_refused_whatever_the_backend(
    comfy_server: ComfyServer, picture: str, backend: str
) -> None:
    text = _refusal(comfy_server, picture, backend=backend, local_method="opencv_Canny")
    assert f"local_method must be one of {', '.join(all_local_method_names())}; got 'opencv_Canny'" in text


def test_an_unknown_modality_is_refused_with_the_list(comfy_server: ComfyServer, picture: str) -> None:
    text = _refusal(comfy_server, picture, modality="Canny", backend="scenario")
    assert f"modality must be one of {', '.join(MODALITY_NAMES)}; got 'Canny'" in text


def test_the_listed_values_still_run(comfy_server: ComfyServer, picture: str) -> None:
    history = comfy_server.run(_graph(comfy_server, picture, backend="local", modality="canny", local_method="auto"))
    [path] = comfy_server.output_images(history)
    with Image.open(path) as image:
        assert image.size == (64, 48)
