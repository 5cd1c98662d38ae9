"""The Detect node inside a real ComfyUI server (0.3.75, or ``$COMFYUI_DIR``), driven over HTTP.

Graphs are API-format prompts (LoadImage -> Detect -> SaveImage), the same path a user's
workflow or a script takes; results are read back from the PNG files ComfyUI saved.
"""

from __future__ import annotations

import uuid
from typing import Any

import comfy_host
import cv2
import numpy as np
import pytest
from comfy_host import ComfyServer, PromptFailed
from PIL import Image, ImageDraw

from scenario_detect.nodes import modalities as table

pytestmark = pytest.mark.comfyui

# Not square, so a swapped height/width shows.
WIDTH, HEIGHT = 320, 240
API_MODALITIES = [
    "canny",
    "depth",
    "grayscale",
    "lineart_anime",
    "mlsd",
    "normal",
    "pose",
    "scribble",
    "segmentation",
    "sketch",
]
WEIGHT_FREE = ["canny", "grayscale", "mlsd", "scribble", "sketch"]
LINE_MODALITIES = ["canny", "mlsd", "scribble", "sketch"]

# Canny reference vs ComfyUI's output: the gray conversion is re-implemented here (float BT.601 luma,
# rounded), so rounding at exact .5 levels could flip a few edge pixels. Measured: 0 differ.
CANNY_MAX_DIFFERING_FRACTION = 1e-4  # 7 pixels of 320x240


def make_test_image(seed: int = 0, width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
    """A deterministic picture with edges of every kind: gradient, boxes, discs, lines, a polygon."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack([x * 200 / width + 20, y * 180 / height + 30, (x + y) * 90 / (width + height) + 60], -1)
    image = Image.fromarray(background.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)

    def color() -> tuple[int, int, int]:
        return tuple(int(c) for c in rng.integers(0, 256, 3))

    for _ in range(4):
        x0, y0 = int(rng.integers(0, width - 60)), int(rng.integers(0, height - 60))
        draw.rectangle([x0, y0, x0 + int(rng.integers(20, 60)), y0 + int(rng.integers(20, 60))], fill=color())
    for _ in range(3):
        cx, cy, r = int(rng.integers(30, width - 30)), int(rng.integers(30, height - 30)), int(rng.integers(8, 28))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color(), outline=(0, 0, 0), width=2)
    for _ in range(5):
        points = [int(v) for v in rng.integers(0, [width, height, width, height])]
        draw.line(points, fill=color(), width=int(rng.integers(1, 4)))
    draw.polygon([(40, height - 20), (90, height - 80), (140, height - 20)], fill=(250, 250, 250))
    return image


def luma_u8(image: Image.Image) -> np.ndarray:
    """Gray as nodes/images.py computes it from what LoadImage gives: float RGB/255 -> BT.601 luma
    (cv2) -> x255, rounded half to even, saturated."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255.0)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return np.clip(np.rint(gray * np.float32(255.0)), 0, 255).astype(np.uint8)


def read_png(path) -> np.ndarray:
    with Image.open(path) as png:
        return np.asarray(png.convert("RGB"))


def widget_defaults(info: dict[str, Any]) -> dict[str, Any]:
    """Every widget of a node at its default value (combos: default or first option)."""
    values: dict[str, Any] = {}
    for section in ("required", "optional"):
        for name, spec in info["input"].get(section, {}).items():
            kind, options = spec[0], spec[1] if len(spec) > 1 else {}
            if isinstance(kind, list):  # V1 combo
                values[name] = options.get("default", kind[0])
            elif kind == "COMBO":
                values[name] = options.get("default", options["options"][0])
            elif kind in ("INT", "FLOAT", "BOOLEAN", "STRING"):
                values[name] = options.get("default")
    return values


def detect_inputs(server: ComfyServer, **overrides: Any) -> dict[str, Any]:
    inputs = widget_defaults(server.object_info("ScenarioDetect"))
    if "backend" in inputs:  # these tests are about the local backend
        inputs["backend"] = "local"
    inputs.update(overrides)
    return inputs


def detect_graph(server: ComfyServer, image_name: str, **overrides: Any) -> dict[str, Any]:
    """LoadImage (1) -> Detect (2) -> SaveImage (3), with a unique prefix so no result is cached."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "2": {"class_type": "ScenarioDetect", "inputs": {"image": ["1", 0], **detect_inputs(server, **overrides)}},
        "3": {
            "class_type": "SaveImage",
            "inputs": {"images": ["2", 0], "filename_prefix": f"detect-{uuid.uuid4().hex[:10]}"},
        },
    }


def weight_free_method(modality: str) -> str:
    methods = [m.name for m in table.MODALITIES[modality].local_methods if not m.needs_weights]
    assert methods, f"{modality} has no weight-free local method in the table"
    return methods[0]


@pytest.fixture(scope="module")
def test_image() -> Image.Image:
    return make_test_image(0)


@pytest.fixture(scope="module")
def uploaded(comfy_server: ComfyServer, test_image: Image.Image) -> str:
    return comfy_server.upload_image(test_image, name="detect-test-0.png")


def names_input(error: dict[str, Any], input_name: str, builtin_type: str) -> bool:
    """True when a node error blames ``input_name``: ComfyUI's own range/list check, or the node's
    ``validate_inputs`` (which takes over those checks for the inputs it declares) naming it."""
    if error["type"] == builtin_type:
        return error.get("extra_info", {}).get("input_name") == input_name
    if error["type"] == "custom_validation_failed":
        return input_name in f"{error.get('details', '')}".split(" - ", 1)[-1]
    return False


# --------------------------------------------------------------------------------------------------


def test_object_info_lists_detect_with_table_widgets(comfy_server: ComfyServer) -> None:
    info = comfy_server.object_info("ScenarioDetect")
    required = info["input"]["required"]
    widgets = {**required, **info["input"].get("optional", {})}

    assert required["image"][0] == "IMAGE"
    assert info["output"][0] == "IMAGE"  # the control maps; graphs here link output 0
    # Frozen order: saved workflows link outputs by index; the keypoints type is core's name exactly.
    assert info["output"] == ["IMAGE", "STRING", "POSE_KEYPOINT"]
    assert info["output_name"] == ["control_map", "asset_ids", "pose_keypoint"]
    assert info["category"] == "image/preprocessors"

    modality = required["modality"]
    assert modality[0] == "COMBO"
    assert modality[1]["options"] == API_MODALITIES == list(table.MODALITY_NAMES)

    method = widgets["local_method"]
    assert method[1]["options"][0] == "auto"
    assert method[1].get("default", "auto") == "auto"
    assert set(method[1]["options"]) == set(table.all_local_method_names())

    expected = {
        "low_threshold": ("INT", 100, 0, 255),
        "high_threshold": ("INT", 200, 0, 255),
        "min_threshold": ("INT", 0, 0, 255),
        "max_threshold": ("INT", 255, 0, 255),
        "factor": ("FLOAT", 1.0, 0.0, 10.0),
        "keypoint_threshold": ("FLOAT", 0.3, 0.0, 1.0),
    }
    for name, (kind, default, low, high) in expected.items():
        spec = widgets[name]
        assert (spec[0], spec[1]["default"], spec[1]["min"], spec[1]["max"]) == (kind, default, low, high), name
    assert widgets["remove_background"][0] == "BOOLEAN"
    assert widgets["remove_background"][1]["default"] is False

    # Every parameter of the table is a widget with the table's range, default and tooltip.
    kinds = {"int": "INT", "float": "FLOAT", "bool": "BOOLEAN"}
    for param in table.PARAMS.values():
        spec = widgets[param.name]
        assert spec[0] == kinds[param.kind], param.name
        assert spec[1]["default"] == param.default, param.name
        assert spec[1].get("tooltip"), f"{param.name} has no tooltip"
        if param.min is not None:
            assert (spec[1]["min"], spec[1]["max"]) == (param.min, param.max), param.name


def keypoints_graph(server: ComfyServer, image_name: str, batch: int = 1, **overrides: Any) -> dict[str, Any]:
    """LoadImage -> RepeatImageBatch -> Detect -> PreviewAny (core's "Preview as Text") on pose_keypoint."""
    graph = detect_graph(server, image_name, **overrides)
    graph["4"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": batch}}
    graph["2"]["inputs"]["image"] = ["4", 0]
    graph["3"] = {"class_type": "PreviewAny", "inputs": {"source": ["2", 2]}}
    return graph


def pose_keypoint_value(server: ComfyServer, graph: dict[str, Any], timeout: float = 120) -> Any:
    """The POSE_KEYPOINT value the Detect node gave, as PreviewAny serialised it (JSON)."""
    import json

    history = server.run(graph, timeout=timeout)
    return json.loads(history["outputs"]["3"]["text"][0])


def test_pose_keypoint_output_of_a_non_pose_modality(comfy_server: ComfyServer, uploaded: str) -> None:
    value = pose_keypoint_value(comfy_server, keypoints_graph(comfy_server, uploaded, batch=2, modality="canny"))
    assert value == [{"canvas_width": WIDTH, "canvas_height": HEIGHT, "people": []}] * 2


@pytest.mark.parametrize("method", ["opencv_canny", "opencv_canny_luma"])
def test_canny_matches_opencv_reference(
    comfy_server: ComfyServer, uploaded: str, test_image: Image.Image, method: str
) -> None:
    low, high = 60, 150
    history = comfy_server.run(
        detect_graph(comfy_server, uploaded, modality="canny", local_method=method, low_threshold=low,
                     high_threshold=high)
    )
    [path] = comfy_server.output_images(history)
    result = read_png(path)

    assert result.shape == (HEIGHT, WIDTH, 3)
    assert (result[..., 0] == result[..., 1]).all() and (result[..., 0] == result[..., 2]).all()
    if method == "opencv_canny":  # ControlNet's canny annotator: cv2.Canny on the RGB image, pixel for pixel
        reference = cv2.Canny(np.asarray(test_image.convert("RGB")), low, high)
        assert reference.any(), "the test image should have edges"
        assert np.array_equal(result[..., 0], reference)
        return
    reference = cv2.Canny(luma_u8(test_image), low, high)
    assert reference.any(), "the test image should have edges"
    differing = np.count_nonzero(result[..., 0] != reference)
    assert differing <= CANNY_MAX_DIFFERING_FRACTION * reference.size, (
        f"{differing} of {reference.size} pixels differ from cv2.Canny on the luma"
    )


@pytest.mark.parametrize("modality", WEIGHT_FREE)
def test_weight_free_modality_end_to_end(
    comfy_server: ComfyServer, uploaded: str, test_image: Image.Image, modality: str
) -> None:
    graph = detect_graph(comfy_server, uploaded, modality=modality, local_method=weight_free_method(modality))
    [path] = comfy_server.output_images(comfy_server.run(graph))
    result = read_png(path)

    assert result.shape == (HEIGHT, WIDTH, 3)
    gray = result[..., 0].astype(np.int16)
    if modality in LINE_MODALITIES:
        white = np.count_nonzero(gray > 127) / gray.size
        assert 0.001 < white < 0.4, f"{modality}: {white:.2%} of pixels are white; expected lines on black"
        assert np.count_nonzero(gray < 32) / gray.size > 0.5, f"{modality}: background is not mostly black"
    else:  # grayscale at factor 1 and the full 0..255 window is the luma itself
        # SaveImage truncates x*255 instead of rounding, so a level may come back one lower.
        assert np.abs(gray - luma_u8(test_image)).max() <= 1
        assert gray.std() > 10


def test_batch_of_three_gives_three_maps(comfy_server: ComfyServer) -> None:
    images = [make_test_image(seed) for seed in (1, 2, 3)]
    names = [comfy_server.upload_image(image, name=f"detect-batch-{i}.png") for i, image in enumerate(images)]
    low, high = 50, 120
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": names[0]}},
        "2": {"class_type": "LoadImage", "inputs": {"image": names[1]}},
        "3": {"class_type": "LoadImage", "inputs": {"image": names[2]}},
        "4": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "5": {"class_type": "ImageBatch", "inputs": {"image1": ["4", 0], "image2": ["3", 0]}},
        "6": {
            "class_type": "ScenarioDetect",
            "inputs": {
                "image": ["5", 0],
                **detect_inputs(
                    comfy_server,
                    modality="canny",
                    local_method=weight_free_method("canny"),
                    low_threshold=low,
                    high_threshold=high,
                ),
            },
        },
        "7": {
            "class_type": "SaveImage",
            "inputs": {"images": ["6", 0], "filename_prefix": f"detect-batch-{uuid.uuid4().hex[:10]}"},
        },
    }
    paths = comfy_server.output_images(comfy_server.run(graph))

    assert len(paths) == 3
    for path, image in zip(paths, images, strict=True):
        result = read_png(path)
        assert result.shape == (HEIGHT, WIDTH, 3)
        # Each map is the canny of its own image, in batch order.
        assert np.array_equal(result[..., 0], cv2.Canny(np.asarray(image.convert("RGB")), low, high))


@pytest.mark.parametrize(
    ("overrides", "error_type", "input_name"),
    [
        ({"low_threshold": 999}, "value_bigger_than_max", "low_threshold"),
        ({"high_threshold": -1}, "value_smaller_than_min", "high_threshold"),
        ({"modality": "nope"}, "value_not_in_list", "modality"),
        ({"local_method": "nope"}, "value_not_in_list", "local_method"),
    ],
)
def test_invalid_widget_value_is_refused(
    comfy_server: ComfyServer, uploaded: str, overrides: dict[str, Any], error_type: str, input_name: str
) -> None:
    body = comfy_server.rejected_prompt(detect_graph(comfy_server, uploaded, **overrides))
    errors = body["node_errors"]["2"]["errors"]
    assert any(names_input(error, input_name, error_type) for error in errors), errors
    # Only the Detect node is blamed; the image loader and saver are fine.
    assert set(body["node_errors"]) == {"2"}


def test_low_above_high_threshold_is_refused_at_validation(comfy_server: ComfyServer, uploaded: str) -> None:
    body = comfy_server.rejected_prompt(
        detect_graph(comfy_server, uploaded, modality="canny", low_threshold=200, high_threshold=100)
    )
    errors = body["node_errors"]["2"]["errors"]
    text = " ".join(f"{e.get('message', '')} {e.get('details', '')}" for e in errors)
    assert "low_threshold" in text and "high_threshold" in text, errors


def test_model_method_without_weights_says_where_to_put_them(tmp_path) -> None:
    """A model-backed modality on a machine with no weights and downloads off fails at run time with
    our message: which file, its URL and the folder to put it in. Its own server: the shared one may
    have random weights registered by other test modules."""
    needs_weights = [
        m.name for m in table.MODALITIES.values() if m.local_methods and all(lm.needs_weights for lm in m.local_methods)
    ]
    if not needs_weights:
        pytest.skip("no modality depends on model weights only")
    modality = needs_weights[0]
    options, models = comfy_host.without_weights(tmp_path)
    with comfy_host.start_server(options, name="no-weights") as server:
        tree_models = comfy_host.comfyui_dir() / "models" / "scenario_detect"
        if tree_models.is_dir() and any(tree_models.iterdir()):
            pytest.skip(f"{tree_models} holds weights; this test needs a ComfyUI without any")
        name = server.upload_image(make_test_image(0), name="no-weights.png")
        with pytest.raises(PromptFailed) as failure:
            server.run(detect_graph(server, name, modality=modality, local_method="auto"))

    message = failure.value.exception_message
    assert failure.value.error["node_type"] == "ScenarioDetect"
    assert failure.value.error["exception_type"].endswith("WeightsUnavailable")
    assert "https://" in message  # where to download it
    assert str(models) in message  # where to put it
    assert "Traceback" not in message
