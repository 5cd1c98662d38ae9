"""Model-backed detectors (controlnet-aux networks) with random weights, through the real loaders.

Random weight files (``model_weights.py``, in the release formats: PiDiNet wrapped and prefixed,
OpenPose without stage prefixes) sit in a models folder laid out like the download
(``<folder>/lllyasviel/Annotators/<file>``, ``random_weights.models_root()``); every detector then
resolves, reads (``weights_only=True``), strictly loads and runs them on CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import random_weights
import torch

from scenario_detect.nodes.local import aux_detectors as ad
from scenario_detect.nodes.local import run_local
from scenario_detect.nodes.local.models import MODELS, ModelCache, fit_size
from scenario_detect.nodes.local.pose_drawing import Point, draw_people
from scenario_detect.nodes.local.weights import WeightFileUnusable, WeightsUnavailable

pytest.importorskip("controlnet_aux")

# (modality, local method, detector function, model names in the cache)
CASES = [
    ("mlsd", "mlsd_large", ad.mlsd, ["mlsd"]),
    ("scribble", "pidinet_scribble", ad.scribble_pidinet, ["pidinet"]),
    ("scribble", "hed_scribble", ad.scribble_hed, ["hed"]),
    ("sketch", "lineart", ad.sketch_lineart, ["lineart"]),
    ("sketch", "lineart_coarse", ad.sketch_lineart_coarse, ["lineart_coarse"]),
    ("lineart_anime", "lineart_anime", ad.lineart_anime, ["lineart_anime"]),
    ("pose", "openpose_body", ad.pose_body, ["openpose_body"]),
    ("pose", "openpose_full", ad.pose_full, ["openpose_body", "openpose_hand", "openpose_face"]),
    ("normal", "normal_bae", ad.normal_bae, ["normal_bae"]),
]
# Small inputs and a small network resolution keep the suite quick on two cores; the full-size
# path is the same code with other numbers (see benchmarks/bench_models.py).
PARAMS = {"resolution": 128, "keypoint_threshold": 0.3}


@pytest.fixture(scope="module")
def models_dir() -> Iterator[Path]:
    """The session's random-weight models folder (built once, cached across sessions)."""
    with random_weights.only_these_weights(random_weights.models_root()) as root:
        yield root


def _image(batch: int = 2, height: int = 40, width: int = 56) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.rand(batch, height, width, 3, generator=g)


@pytest.mark.parametrize(("modality", "method", "fn", "names"), CASES, ids=[c[1] for c in CASES])
def test_detector_runs_once_loaded(models_dir: Path, modality: str, method: str, fn, names: list[str]) -> None:
    images = _image()
    before = {n: MODELS.load_count(n) for n in names}
    first, keypoints = run_local(images, modality, dict(PARAMS), method=method)
    assert first.shape == images.shape and first.dtype == torch.float32
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    # One POSE_KEYPOINT entry per image, canvas = the input (56 x 40), whatever the network size.
    assert [(k["canvas_width"], k["canvas_height"]) for k in keypoints] == [(56, 40), (56, 40)]
    for person in (p for k in keypoints for p in k["people"]):
        assert modality == "pose" and len(person["pose_keypoints_2d"]) == 18 * 3
        assert len(person["hand_left_keypoints_2d"]) == 21 * 3 and len(person["face_keypoints_2d"]) == 70 * 3
    # At most one build per network (none when an earlier test of this module left it cached; other modules'
    # runs count in the same process, so only the difference is ours).
    assert all(MODELS.load_count(n) - before[n] <= 1 for n in names)
    loads = MODELS.load_count()
    second = fn(images, dict(PARAMS))
    if modality == "pose":
        second, second_keypoints = second
        assert second_keypoints == keypoints
    assert torch.equal(first, second)  # deterministic
    assert MODELS.load_count() == loads  # the second run reused the loaded networks


def test_batch_equals_single_images_and_odd_sizes(models_dir: Path) -> None:
    images = _image(batch=3, height=37, width=61)
    batch = ad.sketch_lineart(images, {"resolution": 96, "chunk": 2})
    singles = torch.cat([ad.sketch_lineart(images[i : i + 1], {"resolution": 96}) for i in range(3)])
    assert batch.shape == (3, 37, 61, 3)
    torch.testing.assert_close(batch, singles, atol=1e-5, rtol=0)


def test_missing_weights_error_names_the_file(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCENARIO_DETECT_MODELS_DIR", str(tmp_path / "empty"))
    with pytest.raises(WeightsUnavailable) as caught:
        run_local(_image(), "mlsd", {}, method="mlsd_large")
    message = str(caught.value)
    assert "mlsd_large_512_fp32.pth" in message
    assert "https://huggingface.co/lllyasviel/Annotators/resolve/main/mlsd_large_512_fp32.pth" in message
    assert str(tmp_path / "empty" / "lllyasviel" / "Annotators") in message


def test_missing_weights_error_lists_every_file_of_the_model(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """openpose_full needs three files: with none on disk, one error names all three (size, URL, folder)."""
    monkeypatch.setenv("SCENARIO_DETECT_MODELS_DIR", str(tmp_path / "empty"))
    with pytest.raises(WeightsUnavailable) as caught:
        run_local(_image(), "pose", {}, method="openpose_full")
    listed = [line for line in str(caught.value).splitlines() if line.startswith("  - ")]
    folder = tmp_path / "empty" / "lllyasviel" / "Annotators"
    assert listed == [
        f"  - {spec.filename}, {spec.size}: https://huggingface.co/lllyasviel/Annotators/resolve/main/"
        f"{spec.filename} -> folder {folder}"
        for spec in (ad.OPENPOSE_BODY, ad.OPENPOSE_HAND, ad.OPENPOSE_FACE)
    ]


def test_wrong_file_is_refused_strictly(models_dir: Path, tmp_path: Path) -> None:
    # A lineart file where the M-LSD file should be: strict loading names the path, no fallback.
    wrong = tmp_path / "mlsd_large_512_fp32.pth"
    wrong.write_bytes((models_dir / "lllyasviel" / "Annotators" / "sk_model.pth").read_bytes())
    with pytest.raises(WeightFileUnusable, match="holds the weights of another network"):
        ModelCache().get("mlsd", wrong, ad.build_mlsd)


def test_cache_key_and_clear(models_dir: Path, tmp_path: Path) -> None:
    cache = ModelCache()
    path = models_dir / "lllyasviel" / "Annotators" / "table5_pidinet.pth"
    first = cache.get("pidinet", path, ad.build_pidinet, device=torch.device("cpu"))
    assert cache.get("pidinet", path, ad.build_pidinet, device=torch.device("cpu")) is first
    assert cache.load_count("pidinet") == 1
    copy = tmp_path / "table5_pidinet.pth"
    copy.write_bytes(path.read_bytes())
    cache.get("pidinet", copy, ad.build_pidinet, device=torch.device("cpu"))  # another file: another entry
    assert cache.load_count("pidinet") == 2 and len(cache.loaded()) == 2
    cache.clear()
    assert cache.loaded() == []
    cache.get("pidinet", path, ad.build_pidinet, device=torch.device("cpu"))
    assert cache.load_count("pidinet") == 3


def test_keypoint_threshold_filters_by_confidence() -> None:
    op = ad.aux("open_pose")
    person = op.BodyResult(
        [op.Keypoint(10.0, 20.0, 0.9, 0), op.Keypoint(30.0, 40.0, 0.2, 1), None] + [None] * 15, 1.1, 2
    )
    kept = ad.confident_keypoints(person, 0.5, height=100, width=50)
    assert (kept[0].x, kept[0].y) == (0.2, 0.2) and kept[1] is None and kept[2] is None
    loose = ad.confident_keypoints(person, 0.1, height=100, width=50)
    assert (loose[1].x, loose[1].y) == (0.6, 0.4)
    both = draw_people([(loose, None, None, None)], 100, 50)
    one = draw_people([(kept, None, None, None)], 100, 50)
    none = draw_people([(ad.confident_keypoints(person, 1.0, 100, 50), None, None, None)], 100, 50)
    # Nose (keypoint 1) to neck (2) is a limb: drawn only when both ends pass the threshold.
    assert both.sum() > one.sum() > 0 and not none.any()
    assert tuple(both[20, 10]) == (255, 0, 0)  # the nose dot in OpenPose's first colour (RGB)


def test_hand_and_face_drawing() -> None:
    hand = [Point(0.1 + 0.02 * i, 0.5 + 0.01 * i) for i in range(21)]
    face = [Point(0.5, 0.2), Point(-1.0, -1.0)]  # negative: not detected
    canvas = draw_people([([None] * 18, hand, None, face)], 100, 100)
    assert canvas.any() and tuple(canvas[20, 50]) == (255, 255, 255)


def test_fit_size_keeps_aspect_and_multiples() -> None:
    assert fit_size(512, 512, 512, 64) == (512, 512)
    h, w = fit_size(720, 1280, 512, 64)
    assert (h, w) == (512, 896) and h % 64 == 0 and w % 64 == 0
    assert fit_size(10, 3000, 512, 256) == (256, 2048)  # a sliver: the long side is capped at 4x
    assert np.all(np.array(fit_size(7, 5, 64, 8)) % 8 == 0)


def test_hand_and_face_estimators_run_on_our_networks(models_dir: Path) -> None:
    # Random body weights find no person, so exercise the hand/face stages on a crop directly.
    op = ad.aux("open_pose")
    root = models_dir / "lllyasviel" / "Annotators"
    hand = ad._estimator(
        op.Hand, MODELS.get("openpose_hand", root / "hand_pose_model.pth", ad.build_openpose_hand, half_ok=False)
    )
    face = ad._estimator(
        op.Face, MODELS.get("openpose_face", root / "facenet.pth", ad.build_openpose_face, half_ok=False)
    )
    crop = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    assert hand(crop).shape == (21, 2)
    heatmaps = face(crop)
    assert heatmaps.shape[0] == 71  # 70 landmarks + background
    face.compute_peaks_from_heatmaps(heatmaps)  # random heatmaps have no peak over the threshold


def _reference(method: str):
    """controlnet-aux's own detector for ``method``, around the network our cache loaded."""
    import controlnet_aux as ca

    root = random_weights.models_root() / "lllyasviel" / "Annotators"
    net = {
        "mlsd_large": ("mlsd", "mlsd_large_512_fp32.pth", ad.build_mlsd),
        "pidinet_scribble": ("pidinet", "table5_pidinet.pth", ad.build_pidinet),
        "hed_scribble": ("hed", "ControlNetHED.pth", ad.build_hed),
        "lineart": ("lineart", "sk_model.pth", ad.build_lineart),
        "lineart_coarse": ("lineart_coarse", "sk_model2.pth", ad.build_lineart),
        "lineart_anime": ("lineart_anime", "netG.pth", ad.build_lineart_anime),
        "normal_bae": ("normal_bae", "scannet.pt", ad.build_normal_bae),
    }[method]
    module = MODELS.get(net[0], root / net[1], net[2], device=torch.device("cpu")).module
    return {
        "mlsd_large": lambda: (ca.MLSDdetector(module), {}),
        # Ours folds PiDiNet's difference convolutions into plain ones: the reference gets the
        # original network, loaded as controlnet-aux's from_pretrained does.
        "pidinet_scribble": lambda: (ca.PidiNetDetector(_original_pidinet(root / net[1])), {"scribble": True}),
        "hed_scribble": lambda: (ca.HEDdetector(module), {"scribble": True}),
        "lineart": lambda: (ca.LineartDetector(module, module), {}),
        "lineart_coarse": lambda: (ca.LineartDetector(module, module), {"coarse": True}),
        "lineart_anime": lambda: (ca.LineartAnimeDetector(module), {}),
        "normal_bae": lambda: (ca.NormalBaeDetector(module), {}),
    }[method]()


def _original_pidinet(path: Path) -> torch.nn.Module:
    net = ad.aux("pidi.model").pidinet()
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    net.load_state_dict({k.replace("module.", ""): v for k, v in state.items()})
    return net.eval()


PARITY = [c for c in CASES if c[1] in ("mlsd_large", "lineart", "lineart_coarse", "lineart_anime")]


def _u8(image: torch.Tensor) -> np.ndarray:
    return (image[0].numpy() * 255.0 + 0.5).astype(np.uint8)


@pytest.mark.parametrize(("modality", "method", "fn", "names"), PARITY, ids=[c[1] for c in PARITY])
def test_matches_controlnet_aux_reference(models_dir: Path, modality: str, method: str, fn, names) -> None:
    """At 512x512 (no resizing on either side) our map equals the reference pipeline's, up to its
    uint8 rounding: same input convention (channel order, scaling), same post-processing."""
    image = _image(batch=1, height=512, width=512)
    ours = fn(image, {})[0].numpy()
    detector, kwargs = _reference(method)
    ref = detector(_u8(image), detect_resolution=512, image_resolution=512, output_type="np", **kwargs)
    ref = ref.astype(np.float32) / 255.0
    assert ref.shape == ours.shape and ref.std() > 0.01  # a map with content, not a flat image
    differ = np.abs(ours - ref) > 0.1
    lit = ref > 0.5
    # Relative to the smaller of the two classes, so a sparse line map cannot pass by being black.
    assert differ.mean() <= 0.02 * min(lit.mean(), 1.0 - lit.mean()) + 1e-5, f"{differ.mean():.3%} differ"


SOFT_EDGES = {
    "pidinet_scribble": ("pidinet", "table5_pidinet.pth", ad.build_pidinet, ad.pidinet_edges),
    "hed_scribble": ("hed", "ControlNetHED.pth", ad.build_hed, ad.hed_edges),
}


@pytest.mark.parametrize("method", list(SOFT_EDGES))
def test_soft_edges_match_controlnet_aux_reference(models_dir: Path, method: str) -> None:
    """PiDiNet and HED before the scribble step (random weights give maps near 0.5, where the
    scribble threshold is meaningless): BGR vs RGB, 0..1 vs 0..255 inputs and side-output fusion."""
    name, filename, build, edges = SOFT_EDGES[method]
    image = _image(batch=1, height=512, width=512)
    u8 = _u8(image)
    quantised = torch.from_numpy(u8.astype(np.float32) / 255.0)[None]  # the reference sees uint8
    loaded = MODELS.get(
        name, models_dir / "lllyasviel" / "Annotators" / filename, build, half_ok=False, device=torch.device("cpu")
    )
    with torch.inference_mode():
        ours = edges(loaded, quantised, (512, 512))[0, 0].numpy()
    detector, _ = _reference(method)
    ref = detector(u8, detect_resolution=512, image_resolution=512, output_type="np")[..., 0] / 255.0
    assert float(np.abs(ours - ref).max()) <= 1.01 / 255.0  # the reference truncates to uint8


def test_scribble_thinning_matches_controlnet_reference() -> None:
    """Our non-maximum suppression + blur + threshold against controlnet-aux's ``nms`` recipe."""
    import cv2

    util = ad.aux("util")
    canvas = np.zeros((256, 256), np.uint8)
    cv2.line(canvas, (20, 30), (230, 200), 255, 3)
    cv2.circle(canvas, (128, 128), 60, 200, 5)
    soft = cv2.GaussianBlur(canvas, (0, 0), 4.0)
    soft = (soft.astype(np.float32) * (255.0 / soft.max())).astype(np.uint8)
    ref = util.nms(soft, 127, 3.0)
    ref = cv2.GaussianBlur(ref, (0, 0), 3.0)
    ref = (ref > 4).astype(np.float32)
    ours = ad._thin_lines(soft.astype(np.float32) / 255.0)
    assert ref.mean() > 0.01
    assert float(np.mean(ours != ref)) < 0.002


def test_body_drawing_matches_openpose_reference() -> None:
    op = ad.aux("open_pose")
    rng = np.random.default_rng(5)
    points = [Point(float(x), float(y)) for x, y in rng.uniform(0.1, 0.9, (18, 2))]
    points[4] = points[11] = None  # missing joints: their limbs are skipped
    ours = draw_people([(points, None, None, None)], 240, 320)
    ref = op.util.draw_bodypose(np.zeros((240, 320, 3), np.uint8), points)
    assert ref.any()
    assert float(np.mean(np.any(ours != ref, axis=-1))) < 0.005  # ellipse rasterising at the edges


def test_normal_bae_matches_controlnet_aux_reference(models_dir: Path) -> None:
    """BAE normals against controlnet-aux's NormalBaeDetector on the same stand-in weights, at 256 px
    (no resizing on either side): ImageNet normalisation, the finest prediction, (n + 1) / 2 colours."""
    image = _image(batch=1, height=256, width=256)
    u8 = _u8(image)
    quantised = torch.from_numpy(u8.astype(np.float32) / 255.0)[None]  # the reference sees uint8
    ours = ad.normal_bae(quantised, {"resolution": 256})[0].numpy()
    detector, _ = _reference("normal_bae")
    ref = detector(u8, detect_resolution=256, image_resolution=256, output_type="np").astype(np.float32) / 255.0
    assert ref.shape == ours.shape and ref.std() > 0.01
    assert float(np.abs(ours - ref).max()) <= 1.01 / 255.0  # the reference truncates to uint8


def test_bae_and_depth_normals_share_one_rgb_convention() -> None:
    """A sphere's unit normals in BAE's axes (X left, Y up, Z towards the viewer) coloured by the BAE
    path give the colours the depth-derived path gives the same sphere's height field."""
    from scenario_detect.nodes.local import depth_maps

    size, radius = 101, 40.0
    axis = torch.arange(size, dtype=torch.float32) - size // 2
    dy, dx = torch.meshgrid(axis, axis, indexing="ij")  # dx right, dy down
    height = torch.sqrt((radius**2 - dx**2 - dy**2).clamp_min(0.0))
    unit = torch.stack([-dx, -dy, height]) / radius  # (left, up, viewer) = (-right, -down, viewer)
    bae = depth_maps.normal_rgb(unit).permute(1, 2, 0)
    from_depth = depth_maps.normals_from_height(height[None])[0]
    inside = dx**2 + dy**2 < (0.7 * radius) ** 2
    assert float((bae - from_depth).abs()[inside].max()) < 0.01
    assert bae[50, 10, 0] > 0.7 and bae[10, 50, 1] > 0.7  # left side is red, top is green


# A fresh process runs one method, then reports what it imported on top of torch and the pack.
FIRST_RUN_PROBE = r"""
import json, sys
import torch
from scenario_detect.nodes.local import run_local
before = set(sys.modules)
run_local(torch.rand(1, 64, 64, 3), sys.argv[1], {"resolution": 64}, method=sys.argv[2])
added = sorted(set(sys.modules) - before)
import controlnet_aux  # what other code in the process sees: the whole package, on demand
complete = hasattr(controlnet_aux, "HEDdetector") and hasattr(controlnet_aux.pidi, "PidiNetDetector")
print(json.dumps({"added": added, "complete": complete}))
"""
HEAVY_OR_UNRELATED = ["timm", "mediapipe", "skimage", "matplotlib", "scipy", "einops", "huggingface_hub",
                      "transformers", "onnxruntime", "torchvision", "geffnet"]
BAE_MODULES = {"controlnet_aux.normalbae", "controlnet_aux.normalbae.nets", "controlnet_aux.normalbae.nets.NNET",
               "controlnet_aux.normalbae.nets.submodules", "controlnet_aux.normalbae.nets.submodules.encoder",
               "controlnet_aux.normalbae.nets.submodules.decoder",
               "controlnet_aux.normalbae.nets.submodules.submodules"}


@pytest.mark.parametrize(
    ("modality", "method", "own", "needs"),
    [
        ("scribble", "pidinet_scribble", {"controlnet_aux.pidi", "controlnet_aux.pidi.model"}, []),
        # BAE's EfficientNet comes from the copy controlnet-aux ships (torch.hub on a local folder).
        ("normal", "normal_bae", BAE_MODULES, ["geffnet"]),
        # OpenPose's own package imports scipy, scikit-image and torchvision (its hand/face crops).
        ("pose", "openpose_body", {"controlnet_aux.open_pose", "controlnet_aux.open_pose.body",
                                   "controlnet_aux.open_pose.hand", "controlnet_aux.open_pose.face",
                                   "controlnet_aux.open_pose.model", "controlnet_aux.open_pose.util",
                                   "controlnet_aux.util"},
         ["scipy", "skimage", "torchvision", "huggingface_hub", "matplotlib"]),
    ],
    ids=["pidinet_scribble", "normal_bae", "openpose_body"],
)
def test_first_run_imports_only_its_own_network(
    models_dir: Path, modality: str, method: str, own: set[str], needs: list[str]
) -> None:
    """Cold start: a model-backed method's first run in a fresh process imports its own network's
    modules, not controlnet_aux's package __init__ (every detector: DWPose, SAM, timm, mediapipe...).
    Other code importing controlnet_aux afterwards still gets the whole package."""
    import json
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", FIRST_RUN_PROBE, modality, method],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),  # the fixture's models folder, offline
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    detectors = {name for name in report["added"] if name.startswith("controlnet_aux")}
    assert detectors == {"controlnet_aux"} | own
    others = {name.split(".")[0] for name in report["added"]} & set(HEAVY_OR_UNRELATED)
    assert others <= set(needs), f"imported {sorted(others - set(needs))}"
    assert report["complete"]
