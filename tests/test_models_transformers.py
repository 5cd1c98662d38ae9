"""Depth, normal, segmentation and background removal through transformers, with random weights.

The networks are built from small random configurations of the real architectures and saved in a
folder laid out like the hub download (``random_weights``); the detectors then load them through
the real path (``weights.repo_folder`` -> ``from_pretrained(folder, local_files_only=True)`` ->
``models.MODELS``). Random weights say nothing about quality, so what a trained network decides
(near = bright, channel order, palette, mask) is tested on the pure post-processing functions with
inputs whose answer is known.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import random_weights
import torch

from scenario_detect.nodes.local import depth_maps
from scenario_detect.nodes.local import transformers_detectors as td
from scenario_detect.nodes.local.ade20k import ADE20K_NAMES, ADE20K_PALETTE, SUBJECT_CLASSES
from scenario_detect.nodes.local.models import MODELS
from scenario_detect.nodes.local.weights import WeightFileUnusable, WeightsUnavailable

# -- pure post-processing --


def test_depth_normalisation_keeps_near_bright() -> None:
    # Depth Anything predicts disparity: larger = nearer. A ramp growing to the right is nearer on
    # the right, so the right must be white and the left black.
    prediction = torch.linspace(2.0, 40.0, 64).repeat(1, 16, 1)  # [1, 16, 64]
    depth = depth_maps.normalize_depth(prediction)

    assert depth[0, :, -1].eq(1.0).all() and depth[0, :, 0].eq(0.0).all()
    assert bool((depth[0, :, 1:] >= depth[0, :, :-1]).all())


def test_depth_normalisation_is_per_image_and_safe_on_flat_input() -> None:
    prediction = torch.stack([torch.full((8, 8), 3.0), torch.arange(64.0).reshape(8, 8) * 100])
    depth = depth_maps.normalize_depth(prediction)

    assert depth[0].eq(0.0).all()  # no information: black, not NaN
    assert float(depth[1].min()) == 0.0 and float(depth[1].max()) == 1.0


def sphere(size: int = 201, radius: float = 80.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Height (pixels towards the viewer) of a hemisphere, and x, y offsets from its centre."""
    axis = torch.arange(size, dtype=torch.float32)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    dx, dy = x - size // 2, y - size // 2
    height = torch.sqrt((radius**2 - dx**2 - dy**2).clamp_min(0.0))
    return height, dx, dy


def test_sphere_normals_match_the_analytic_normals_in_rgb_left_up_viewer_order() -> None:
    radius = 80.0
    height, dx, dy = sphere(radius=radius)
    normals = depth_maps.normals_from_height(height[None])[0]

    # Analytic unit normal in (right, up, towards viewer) axes: (dx, -dy, h) / r (image y points down).
    # Stored as RGB = (left, up, viewer), each mapped from -1..1 to 0..1.
    expected = torch.stack([-dx / radius, -dy / radius, height / radius], dim=-1) * 0.5 + 0.5
    inside = dx**2 + dy**2 < (0.7 * radius) ** 2  # away from the rim, where the slope is infinite
    assert float((normals - expected).abs()[inside].max()) < 0.01

    centre = normals[100, 100]
    assert torch.allclose(centre, torch.tensor([0.5, 0.5, 1.0]), atol=1e-4)  # faces the camera
    right, left, top, bottom = normals[100, 160], normals[100, 40], normals[40, 100], normals[160, 100]
    assert right[0] < 0.3 and left[0] > 0.7, "R must grow towards the LEFT (ControlNet normalbae)"
    assert top[1] > 0.7 and bottom[1] < 0.3, "G must grow UPWARDS"
    assert all(float(p[2]) > 0.5 for p in (right, left, top, bottom)), "B is the part facing the viewer"


def test_normals_from_depth_face_away_from_the_near_side_and_ignore_far_background() -> None:
    # Nearer (brighter) on the right: the surface turns to the left, so R > 0.5, G = 0.5.
    ramp = torch.linspace(0.2, 1.0, 128).repeat(1, 64, 1)
    normals = depth_maps.normals_from_depth(ramp)
    assert normals.shape == (1, 64, 128, 3)
    assert bool((normals[..., 0] > 0.6).all()) and torch.allclose(normals[..., 1], torch.tensor(0.5))

    # Far background (below BACKGROUND_DEPTH) is flat, facing the camera, however noisy.
    noise = torch.rand(1, 32, 32) * depth_maps.BACKGROUND_DEPTH * 0.9
    flat = depth_maps.normals_from_depth(noise)
    assert torch.allclose(flat, torch.tensor([0.5, 0.5, 1.0]).expand_as(flat))


def test_normal_strength_does_not_depend_on_resolution() -> None:
    small = depth_maps.normals_from_depth(torch.linspace(0.2, 1.0, 100).repeat(1, 50, 1))
    large = depth_maps.normals_from_depth(torch.linspace(0.2, 1.0, 400).repeat(1, 200, 1))
    assert abs(float(small[0, 25, 50, 0]) - float(large[0, 100, 200, 0])) < 0.01


# -- ADE20K palette --


def controlnet_aux_palette() -> list[list[int]] | None:
    """controlnet_aux's ``ade_palette()``, read from its source without importing the package
    (its ``__init__`` imports every detector)."""
    spec = importlib.util.find_spec("controlnet_aux")
    if spec is None or not spec.submodule_search_locations:
        return None
    source = Path(next(iter(spec.submodule_search_locations)), "util.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == "ade_palette":
            return ast.literal_eval(node.body[-1].value)
    return None


def test_palette_is_controlnets_ade20k_palette() -> None:
    assert len(ADE20K_PALETTE) == len(ADE20K_NAMES) == 150
    # Spot checks against mmsegmentation's ADE20K palette, which ControlNet's seg annotator uses.
    assert ADE20K_PALETTE[0] == (120, 120, 120) and ADE20K_NAMES[0] == "wall"
    assert ADE20K_PALETTE[2] == (6, 230, 230) and ADE20K_NAMES[2] == "sky"
    assert ADE20K_PALETTE[12] == (150, 5, 61) and ADE20K_NAMES[12] == "person"
    assert ADE20K_PALETTE[149] == (92, 0, 255) and ADE20K_NAMES[149] == "flag"
    reference = controlnet_aux_palette()
    if reference is None:
        pytest.skip("controlnet_aux is not installed: only the spot checks ran")
    assert [list(c) for c in ADE20K_PALETTE] == reference


def test_labels_are_painted_with_exact_palette_colours_at_the_input_size() -> None:
    logits = torch.zeros(1, 150, 8, 10)
    logits[0, 2, :4] = 5.0  # sky on top
    logits[0, 12, 4:] = 5.0  # person below
    maps = td.paint_labels(td.labels_at(logits, 33, 47))

    assert maps.shape == (1, 33, 47, 3)
    colours = {tuple(c) for c in (maps[0] * 255).round().int().reshape(-1, 3).tolist()}
    assert colours == {(6, 230, 230), (150, 5, 61)}
    assert tuple((maps[0, 0, 0] * 255).round().int().tolist()) == (6, 230, 230)
    assert tuple((maps[0, -1, -1] * 255).round().int().tolist()) == (150, 5, 61)


def test_subject_alpha_keeps_people_and_drops_scenery() -> None:
    person, sky = ADE20K_NAMES.index("person"), ADE20K_NAMES.index("sky")
    assert person in SUBJECT_CLASSES and sky not in SUBJECT_CLASSES
    logits = torch.zeros(2, 150, 16, 16)
    logits[:, sky] = 10.0
    logits[0, person, 4:12, 4:12] = 20.0  # image 0: a person in the middle; image 1: only sky
    alpha = td.subject_alpha(logits, 64, 64)

    assert alpha.shape == (2, 64, 64)
    assert float(alpha[0, 32, 32]) > 0.99 and float(alpha[0, 2, 2]) < 0.01
    assert alpha[1].eq(1.0).all(), "an image with no subject is kept whole, not blacked out"


# -- the real loading path, on random weights --


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("models")
    for repo in (td.DEPTH_REPO, td.SEGMENTATION_REPO):
        random_weights.build(root, repo)
    saved = {k: os.environ.get(k) for k in ("SCENARIO_DETECT_MODELS_DIR", "SCENARIO_DETECT_OFFLINE")}
    os.environ.update(SCENARIO_DETECT_MODELS_DIR=str(root), SCENARIO_DETECT_OFFLINE="1")
    MODELS.clear()
    yield root
    MODELS.clear()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def images(batch: int = 3, height: int = 37, width: int = 53) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(batch, height, width, 3, generator=generator)


@pytest.mark.parametrize(
    "detector", [td.depth_anything, td.normal_from_depth_anything, td.segmentation_ade20k], ids=lambda f: f.__name__
)
def test_detector_output_is_same_size_three_channels_and_deterministic(models_dir: Path, detector) -> None:
    batch = images()  # odd size, batch of 3
    first = detector(batch, {})
    second = detector(batch, {})

    assert first.shape == batch.shape and first.dtype == torch.float32 and first.device.type == "cpu"
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert torch.equal(first, second)


def test_a_batch_gives_the_same_maps_as_one_image_at_a_time(models_dir: Path) -> None:
    # The CPU runs one image per chunk, a GPU several: both must give the same maps.
    batch = images()
    depth_model, seg_model = td.DEPTH.load(), td.SEGMENTATION.load()
    with torch.inference_mode():
        depth = td.predict_depth(depth_model, batch)
        logits = td.predict_logits(seg_model, batch)
        for index in range(batch.shape[0]):
            single = batch[index : index + 1]
            assert torch.allclose(depth[index], td.predict_depth(depth_model, single)[0], atol=1e-5)
            assert torch.allclose(logits[index], td.predict_logits(seg_model, single)[0], atol=1e-4)


def test_depth_is_gray_and_normals_face_the_viewer(models_dir: Path) -> None:
    depth = td.depth_anything(images(), {})
    normals = td.normal_from_depth_anything(images(), {})

    assert torch.equal(depth[..., 0], depth[..., 1]) and torch.equal(depth[..., 0], depth[..., 2])
    assert bool((normals[..., 2] >= 0.5).all()), "no normal may point away from the camera"
    lengths = (normals * 2 - 1).norm(dim=-1)
    assert torch.allclose(lengths, torch.ones_like(lengths), atol=1e-4)


def test_segmentation_colours_all_belong_to_the_palette(models_dir: Path) -> None:
    maps = td.segmentation_ade20k(images(), {})
    colours = {tuple(c) for c in (maps * 255).round().int().reshape(-1, 3).tolist()}
    assert colours <= set(ADE20K_PALETTE)


def test_each_network_is_loaded_once(models_dir: Path) -> None:
    MODELS.clear()
    before = MODELS.load_count("depth_anything_v2_small")
    td.depth_anything(images(1), {})
    td.normal_from_depth_anything(images(1), {})  # same network, same folder
    assert MODELS.load_count("depth_anything_v2_small") == before + 1


def test_grayscale_with_remove_background_runs_the_model_and_composites_on_black(models_dir: Path) -> None:
    from scenario_detect.nodes.local import run_local

    raw = torch.cat([images(2), torch.ones(2, 37, 53, 1)], dim=-1)  # RGBA, as LoadImage may give
    params = {"factor": 1.0, "min_threshold": 0, "max_threshold": 255}
    plain = run_local(raw, "grayscale", {**params, "remove_background": False}).maps
    removed = run_local(raw, "grayscale", {**params, "remove_background": True}).maps
    alpha = td.remove_background(raw[..., :3].contiguous())

    assert removed.shape == (2, 37, 53, 3)
    assert torch.allclose(removed, plain * alpha[..., None], atol=1e-6)


def test_wrong_kind_of_segmentation_model_is_refused_clearly(tmp_path: Path) -> None:
    from transformers import ConvNextConfig, UperNetConfig, UperNetForSemanticSegmentation

    backbone = ConvNextConfig(hidden_sizes=[8, 8, 8, 8], depths=[1, 1, 1, 1], out_features=["stage1", "stage4"])
    config = UperNetConfig(backbone_config=backbone, hidden_size=8, use_auxiliary_head=False, num_labels=19)
    UperNetForSemanticSegmentation(config).save_pretrained(str(tmp_path))
    with pytest.raises(WeightFileUnusable, match="ADE20K model with 150 classes"):
        td.build_segmentation_model(tmp_path)


def test_missing_weights_offline_say_what_to_download_and_where(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SCENARIO_DETECT_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    with pytest.raises(WeightsUnavailable) as missing:
        td.depth_model(models_dir=tmp_path)
    message = str(missing.value)
    assert td.DEPTH_REPO in message and str(tmp_path) in message and "offline" in message


# -- inside a real ComfyUI server --


@pytest.fixture(scope="module")
def uploaded_picture(comfy_server) -> str:
    from test_comfyui_detect import make_test_image

    return comfy_server.upload_image(make_test_image(5), name="transformers-test.png")


@pytest.mark.parametrize("modality", ["depth", "normal", "segmentation"])
def test_model_modality_end_to_end_in_comfyui(comfy_server, uploaded_picture: str, modality: str) -> None:
    from test_comfyui_detect import HEIGHT, WIDTH, detect_graph, read_png

    # normal's auto is BAE (a controlnet-aux network, tests/test_comfyui_models.py): the Depth Anything one here.
    method = "depth_anything_normals" if modality == "normal" else "auto"
    graph = detect_graph(comfy_server, uploaded_picture, modality=modality, local_method=method)
    [path] = comfy_server.output_images(comfy_server.run(graph, timeout=300))
    result = read_png(path)

    assert result.shape == (HEIGHT, WIDTH, 3)
    if modality == "depth":
        assert np.array_equal(result[..., 0], result[..., 1]) and np.array_equal(result[..., 0], result[..., 2])
    elif modality == "normal":
        assert result[..., 2].min() >= 126  # facing the viewer (SaveImage truncates 127.5 to 127)
    else:
        colours = {tuple(c) for c in result.reshape(-1, 3).tolist()}
        assert colours <= set(ADE20K_PALETTE)


def test_grayscale_remove_background_end_to_end_in_comfyui(comfy_server, uploaded_picture: str) -> None:
    from test_comfyui_detect import HEIGHT, WIDTH, detect_graph, read_png

    graph = detect_graph(comfy_server, uploaded_picture, modality="grayscale", remove_background=True)
    [path] = comfy_server.output_images(comfy_server.run(graph, timeout=300))
    result = read_png(path)
    assert result.shape == (HEIGHT, WIDTH, 3)
    assert np.array_equal(result[..., 0], result[..., 1])
