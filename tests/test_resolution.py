"""The `resolution` option: the short side every local network sees, the map always at the input's size.

In the table (validated, kept by `check_params`, never sent to the API), through the real network code
with random weights (``random_weights.models_root()``), through a real ComfyUI prompt and the CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import random_weights
import torch
from PIL import Image

from scenario_detect.nodes import modalities as table
from scenario_detect.nodes import widget_visibility as wv
from scenario_detect.nodes.local import run_local
from scenario_detect.nodes.run import DetectError, check_params, run_detect

pytest.importorskip("controlnet_aux")

# One network method per family (controlnet-aux, transformers), each with two resolutions that give
# the network different input sizes at this image size (M-LSD sides are multiples of 64, PiDiNet 8,
# lineart 8, Depth Anything 14, UperNet 32).
NETWORK_CASES = [
    ("mlsd", "mlsd_large", 64, 192),
    ("scribble", "pidinet_scribble", 64, 128),
    ("sketch", "lineart", 64, 128),
    ("depth", "depth_anything_v2", 64, 128),
    ("normal", "depth_anything_normals", 64, 128),
    ("segmentation", "upernet_ade20k", 64, 128),
]


@pytest.fixture(scope="module")
def models_dir() -> Iterator[Path]:
    with random_weights.only_these_weights(random_weights.models_root()) as root:
        yield root


def photo(height: int = 72, width: int = 104, seed: int = 5) -> torch.Tensor:
    """Smooth blobs plus fine noise: content at every scale, so the network's input size shows."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((4, 6, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.random((height, width, 3)).astype(np.float32) * 0.3
    return torch.from_numpy(np.clip(smooth * 0.7 + fine, 0.0, 1.0))[None]


# -- the table --


def test_resolution_is_a_validated_local_option_the_api_never_sees() -> None:
    param = table.NETWORK_PARAMS["resolution"]
    assert (param.kind, param.default, param.min) == ("int", 512, 64) and param.max >= 4096
    assert table.default_params()["resolution"] == 512
    assert check_params("depth", {"resolution": 1024, "low_threshold": 10})["resolution"] == 1024
    with pytest.raises(DetectError, match="resolution=32 is below its minimum 64"):
        check_params("depth", {"resolution": 32})
    with pytest.raises(DetectError, match="resolution must be a number"):
        check_params("depth", {"resolution": "big"})
    for modality in table.MODALITY_NAMES:  # the API has no such field: the scenario backend ignores it
        fields = table.api_fields(modality, {"resolution": 1024})
        assert "resolution" not in fields and 1024 not in fields.values()


def test_resolution_applies_to_network_methods_only() -> None:
    rules = wv.network_method_rules()
    assert "canny" not in rules and "grayscale" not in rules
    assert rules["depth"] == ["auto", "depth_anything_v2"]  # its default is a network
    assert rules["mlsd"] == ["mlsd_large"]  # auto is the weight-free opencv_lsd
    assert rules["pose"][0] == "auto" and "dwpose" in rules["pose"]
    every_network = {m.name for mod in table.MODALITIES.values() for m in mod.local_methods if m.needs_weights}
    assert {m for methods in rules.values() for m in methods} - {"auto"} == every_network
    rule = wv.widget_rules()["resolution"]
    assert rule == {"modalities": list(rules), "backends": [wv.LOCAL]}


# -- the networks --


@pytest.mark.parametrize(("modality", "method", "low", "high"), NETWORK_CASES, ids=[c[1] for c in NETWORK_CASES])
def test_resolution_changes_the_network_map_not_its_size(
    models_dir: Path, modality: str, method: str, low: int, high: int
) -> None:
    image = photo()
    small = run_local(image, modality, {"resolution": low}, method).maps
    large = run_local(image, modality, {"resolution": high}, method).maps
    assert small.shape == large.shape == (1, 72, 104, 3)
    assert float((small - large).abs().max()) > 0.01, "resolution did not reach the network"
    again = run_local(image, modality, {"resolution": high}, method).maps
    assert torch.equal(large, again)


def test_default_resolution_is_today_s_512(models_dir: Path) -> None:
    image = photo(height=96, width=160)
    default = run_local(image, "sketch", {}, "lineart").maps
    assert torch.equal(default, run_local(image, "sketch", {"resolution": 512}, "lineart").maps)
    assert not torch.equal(default, run_local(image, "sketch", {"resolution": 256}, "lineart").maps)


def test_weight_free_methods_ignore_resolution() -> None:
    image = photo()
    for modality in ("canny", "mlsd", "scribble", "sketch"):
        a = run_detect(image, modality, {"resolution": 64}).maps
        b = run_detect(image, modality, {"resolution": 2048}).maps
        assert torch.equal(a, b), modality


# -- the CLI --


def test_cli_resolution_flag(models_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray((photo()[0].numpy() * 255).astype(np.uint8)).save(source)
    outputs = {}
    for resolution in (64, 128):
        target = tmp_path / f"out{resolution}.png"
        result = subprocess.run(
            [sys.executable, "-m", "scenario_detect", str(source), "-m", "sketch", "--local-method", "lineart",
             "--resolution", str(resolution), "-o", str(target)],
            capture_output=True, text=True, timeout=300,
            env=dict(os.environ),  # only_these_weights: the random-weight folder, offline, CPU
        )
        assert result.returncode == 0, result.stderr[-2000:]
        outputs[resolution] = np.asarray(Image.open(target).convert("RGB"))
    assert outputs[64].shape == outputs[128].shape == (72, 104, 3)
    assert not np.array_equal(outputs[64], outputs[128])
    refused = subprocess.run(
        [sys.executable, "-m", "scenario_detect", str(source), "--resolution", "8", "-o", str(tmp_path / "x.png")],
        capture_output=True, text=True, timeout=300,
    )
    assert refused.returncode == 2 and "resolution=8 is below its minimum 64" in refused.stderr


# -- a real ComfyUI prompt --


def _saved_map(server, graph: dict) -> np.ndarray:
    history = server.run(graph, timeout=300)
    [path] = server.output_images(history)
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.comfyui
def test_resolution_through_a_real_comfyui_prompt(comfy_server) -> None:
    from test_comfyui_detect import HEIGHT, WIDTH, detect_graph, make_test_image

    info = comfy_server.object_info("ScenarioDetect")
    spec = info["input"]["optional"]["resolution"]  # optional: prompts and workflows saved before it still load
    assert spec[0] == "INT" and (spec[1]["default"], spec[1]["min"]) == (512, 64) and spec[1]["max"] >= 4096
    assert spec[1][wv.FOR_METHODS_KEY] == wv.network_method_rules()
    order = [*info["input"]["required"], *info["input"]["optional"]]
    assert order[-1] == "resolution"  # added last: saved widget values (positional) keep their meaning

    image = comfy_server.upload_image(make_test_image(4), name="resolution-test.png")
    maps = {
        resolution: _saved_map(comfy_server, detect_graph(
            comfy_server, image, modality="sketch", local_method="lineart", resolution=resolution))
        for resolution in (64, 128)
    }
    assert maps[64].shape == maps[128].shape == (HEIGHT, WIDTH, 3)
    assert not np.array_equal(maps[64], maps[128])
    # A prompt saved before the input existed: no `resolution` at all, runs at the default 512.
    old = detect_graph(comfy_server, image, modality="sketch", local_method="lineart")
    del old["2"]["inputs"]["resolution"]
    default = _saved_map(comfy_server, detect_graph(
        comfy_server, image, modality="sketch", local_method="lineart", resolution=512))
    assert np.array_equal(_saved_map(comfy_server, old), default)
    # Out of range: ComfyUI's own validation refuses it before anything runs, naming the input.
    body = comfy_server.rejected_prompt(detect_graph(comfy_server, image, modality="depth", resolution=32))
    errors = body["node_errors"]["2"]["errors"]
    assert any(e["type"] == "value_smaller_than_min" and e["extra_info"]["input_name"] == "resolution"
               for e in errors), errors
