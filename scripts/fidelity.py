"""How closely each local method follows the reference implementation it is modelled on -> docs/fidelity.md.

    python scripts/fidelity.py                    # measure every method, print the table
    python scripts/fidelity.py --write            # ... and write docs/fidelity.md
    python scripts/fidelity.py --only opencv_canny,levels   # a subset (tests/test_fidelity.py runs the fast rows);
                                                            # with --write, only those rows of the doc change

Ours always runs through the pack's own entry (``run_local``), on the same pixels as the reference.
The references run their own code: controlnet-aux 0.0.10 detectors load the same weight files through
their own ``from_pretrained``; transformers models run through their own image processors; DWPose is
compared with the ``dwpose`` 1.0.1 package's TorchScript pipeline; ControlNet's XDoG scribble and
normal-from-depth annotators have no package, so their published formulas are written out here.
No real weights are reachable offline: the networks are the tests' stand-ins (random weights in the
released containers, ``tests/random_weights.py``, ``tests/dwpose_standins.py``). Random weights say
nothing about quality, but any difference in pre- or post-processing (resize, channel order, scaling,
thresholds, drawing) shows up in the comparison just as it would with the real files.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # random_weights, dwpose_standins: the tests' stand-in weights
DOC = ROOT / "docs" / "fidelity.md"
EXAMPLE_INPUT = ROOT / "docs" / "images" / "example_input.png"


@dataclass(frozen=True)
class Row:
    method: str
    reference: str
    settings: str
    agreement: str
    differences: str = "none"


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def aux(name: str) -> str:
    return f"controlnet-aux {version('controlnet-aux')} `{name}`"


# -- inputs: non-square photos, sides multiples of 64 so no reference resizes anything --


def photos() -> list[np.ndarray]:
    """uint8 RGB photos: scikit-image's samples cropped to multiples of 64, and the README's example."""
    from skimage import data

    example = cv2.cvtColor(cv2.imread(str(EXAMPLE_INPUT)), cv2.COLOR_BGR2RGB)
    return [data.coffee()[:384, :576], data.chelsea()[:256, :448], data.rocket()[:384, :640], example]


def photo_512() -> np.ndarray:
    """One 512x768 photo (short side 512: the default resolution, so neither side resizes the input)."""
    from skimage import data

    return np.ascontiguousarray(cv2.resize(data.coffee(), (768, 512), interpolation=cv2.INTER_AREA))


def ours(rgb: np.ndarray, modality: str, method: str, **params) -> np.ndarray:
    """Our map as uint8 [H, W, 3], through the pack's local entry."""
    from scenario_detect.nodes.local import run_local

    image = torch.from_numpy(rgb.astype(np.float32) / 255.0)[None]
    maps = run_local(image, modality, params, method).maps
    return (maps[0].numpy() * 255.0).round().astype(np.uint8)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 127, b > 127
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def identical(a: np.ndarray, b: np.ndarray) -> str:
    same = float(np.mean(a == b))
    if same == 1.0:
        return "pixel-identical"
    return f"{same:.2%} of pixels identical, max diff {int(np.abs(a.astype(int) - b).max())}"


def compare_maps(a: np.ndarray, b: np.ndarray) -> str:
    """Pixel identity, max and mean difference of two uint8 maps (0..255 levels)."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    if not diff.any():
        return "pixel-identical"
    lit = f"; IoU of lit pixels {iou(a, b):.3f}" if (a > 127).any() or (b > 127).any() else ""
    return f"{np.mean(diff == 0):.2%} identical, max diff {int(diff.max())}, mean {diff.mean():.2f} levels{lit}"


# -- weight-free methods --


def canny_rows() -> list[Row]:
    from controlnet_aux.canny import CannyDetector

    images = photos()
    ref = [CannyDetector()(p, 100, 200, detect_resolution=min(p.shape[:2]), image_resolution=min(p.shape[:2]),
                           output_type="np")[..., 0] for p in images]
    rgb = [ours(p, "canny", "opencv_canny")[..., 0] for p in images]
    luma = [ours(p, "canny", "opencv_canny_luma")[..., 0] for p in images]
    bare = all(np.array_equal(o, cv2.Canny(p, 100, 200)) for o, p in zip(rgb, images, strict=True))
    same = all(np.array_equal(o, r) for o, r in zip(rgb, ref, strict=True))
    ious = [iou(lo, r) for lo, r in zip(luma, ref, strict=True)]
    # OpenCV's uint8 RGB->gray rounds in fixed point; ours rounds the float luma: a level apart at a few pixels.
    grays = [cv2.cvtColor(p, cv2.COLOR_RGB2GRAY) for p in images]
    luma_bare = np.concatenate([(o == cv2.Canny(g, 100, 200)).ravel() for o, g in zip(luma, grays, strict=True)])
    sizes = ", ".join(f"{p.shape[1]}x{p.shape[0]}" for p in images)
    return [
        Row("opencv_canny", f"{aux('CannyDetector')} (lllyasviel's canny annotator: `cv2.Canny` on RGB)",
            f"low 100, high 200; {len(images)} photos {sizes}, detect_resolution = short side (no resize)",
            ("pixel-identical" if same else "differs") + " to CannyDetector on every photo; "
            + ("pixel-identical" if bare else "differs") + " to `cv2.Canny(rgb_uint8, 100, 200)`"),
        Row("opencv_canny_luma", "ComfyUI core's Canny node's idea (edges of the luma); computed with `cv2.Canny` "
            "on BT.601 luma, not core's kornia", "as opencv_canny",
            f"{int((~luma_bare).sum())} of {luma_bare.size} pixels differ from `cv2.Canny(cvtColor(rgb_uint8, "
            f"RGB2GRAY))` (the luma rounded from float, not in OpenCV's fixed point); IoU with the annotator's RGB map "
            f"{min(ious):.2f}-{max(ious):.2f}",
            "deliberate: luma only, ~4x cheaper; loses edges between colours of similar luma (the ControlNet "
            "annotator's map is `opencv_canny`)"),
    ]


def levels_row() -> list[Row]:
    from PIL import Image

    photo = photos()[0]
    mine = ours(photo, "grayscale", "levels")[..., 0]
    pil = np.asarray(Image.fromarray(photo).convert("L"))
    return [Row("levels", "Scenario API `grayscale` (not public); at neutral settings: PIL `convert('L')` "
                "(BT.601 luma)", "factor 1, window 0..255, 576x384 photo",
                f"vs PIL: {identical(mine, pil)}",
                "contrast/window maths are the API's parameters, documented in the README (no reference)")]


def _xdog_reference(rgb: np.ndarray, threshold: int = 32) -> np.ndarray:
    # ControlNet 1.1's scribble_xdog annotator (gradio_annotator.py), written out: DoG of each RGB channel
    # (sigma 0.5 and 5.0), the channel minimum, thresholded at `threshold`.
    g1 = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), 0.5)
    g2 = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), 5.0)
    dog = (255 - np.min(g2 - g1, axis=2)).clip(0, 255).astype(np.uint8)
    result = np.zeros_like(rgb[..., 0], dtype=np.uint8)
    result[2 * (255 - dog) > threshold] = 255
    return result


def xdog_row() -> list[Row]:
    photo = photo_512()
    mine = ours(photo, "scribble", "xdog")[..., 0]
    ref = _xdog_reference(photo)
    return [Row("xdog", "ControlNet 1.1 `scribble_xdog` annotator (lllyasviel/ControlNet-v1-1-nightly; no package: "
                "its formula, threshold 32)", "768x512 photo", f"IoU {iou(mine, ref):.2f}",
                "deliberate: DoG of the luma with sigmas scaled to the short side (same look at any size) and "
                "strokes dilated to scribble width; the reference's 1-px DoG outline of each channel is thinner")]


def no_reference_rows() -> list[Row]:
    return [
        Row("pencil", "none (Scenario API `sketch` is not public)", "-", "not measured",
            "own design: dodge-blend pencil lines; `lineart` is the ControlNet lineart annotator"),
        Row("opencv_lsd", "none for the weight-free stand-in; `mlsd_large` is the M-LSD annotator", "-",
            "not measured (M-LSD's lines need its real weights to compare with)",
            "deliberate: OpenCV's LSD + length filter, no download; `auto` keeps it first so nothing downloads"),
    ]


# -- controlnet-aux networks (same weight files, loaded by controlnet-aux itself) --


def _aux_folder() -> Path:
    import random_weights

    return random_weights.models_root() / "lllyasviel" / "Annotators"


AUX_CASES = {
    # method: (modality, detector class, from_pretrained kwargs, call kwargs)
    "mlsd_large": ("mlsd", "MLSDdetector", {}, {"thr_v": 0.1, "thr_d": 0.1}),
    "lineart": ("sketch", "LineartDetector", {}, {}),
    "lineart_coarse": ("sketch", "LineartDetector", {}, {"coarse": True}),
    "lineart_anime": ("lineart_anime", "LineartAnimeDetector", {}, {}),
    "normal_bae": ("normal", "NormalBaeDetector", {}, {}),
    "pidinet_scribble": ("scribble", "PidiNetDetector", {}, {"scribble": True, "safe": False}),
    "hed_scribble": ("scribble", "HEDdetector", {}, {"scribble": True, "safe": False}),
}
ROUNDING = "none; max 1 level: the reference truncates to uint8, ours rounds"
AUX_NOTES = {
    "lineart": ROUNDING,
    "lineart_coarse": ROUNDING,
    "lineart_anime": ROUNDING,
    "normal_bae": ROUNDING,
    "mlsd_large": "lines drawn 1 px per 512 px of short side (the reference: always 1 px at detect size)",
    "pidinet_scribble": "scribble step (NMS, blur, threshold) re-implemented; random weights give soft edges "
    "near 0.5, where the threshold amplifies float noise: the soft edges themselves are compared in "
    "tests/test_models_aux.py (max diff 1 level)",
    "hed_scribble": "as pidinet_scribble",
}


def aux_row(method: str) -> list[Row]:
    import controlnet_aux

    modality, name, load, call = AUX_CASES[method]
    photo = photo_512()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = getattr(controlnet_aux, name).from_pretrained(str(_aux_folder()), **load)
        ref = detector(photo, detect_resolution=512, image_resolution=512, output_type="np", **call)
    mine = ours(photo, modality, method)
    ref = ref if ref.ndim == 3 else np.repeat(ref[..., None], 3, axis=2)
    settings = "768x512 photo, resolution 512 / detect_resolution 512" + "".join(f", {k}={v}" for k, v in call.items())
    return [Row(method, aux(name), settings, compare_maps(mine, ref), AUX_NOTES.get(method, "none"))]


def openpose_rows() -> list[Row]:
    from controlnet_aux.open_pose import util as op_util

    from scenario_detect.nodes.local.pose_drawing import Point, draw_people

    rng = np.random.default_rng(5)
    points = [Point(float(x), float(y)) for x, y in rng.uniform(0.1, 0.9, (18, 2))]
    points[4] = points[11] = None
    mine = draw_people([(points, None, None, None)], 512, 768)
    ref = op_util.draw_bodypose(np.zeros((512, 768, 3), np.uint8), points)
    differ = int(np.any(mine != ref, axis=-1).sum())
    drawn = "pixel-identical" if differ == 0 else (
        f"{differ} of {mine.shape[0] * mine.shape[1]} pixels differ (ellipse rasterising at limb ends)")
    note = ("the network is controlnet-aux's own class on the same file; random weights find no person, so the "
            "drawing is compared on fixed keypoints (16 of 18 present)")
    return [
        Row("openpose_body", aux("OpenposeDetector") + " (body)", "body drawing, 768x512 canvas",
            drawn, note),
        Row("openpose_full", aux("OpenposeDetector") + " (body, hands, face)", "as openpose_body",
            "body drawing as openpose_body; hands and face use controlnet-aux's estimators on our networks "
            "(tests/test_models_aux.py)", note),
    ]


# -- transformers models --


def _repo(repo: str) -> Path:
    import random_weights

    return random_weights.repo_dir(random_weights.models_root(), repo)


def _depth_reference(photo: np.ndarray) -> np.ndarray:
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    folder = _repo("depth-anything/Depth-Anything-V2-Small-hf")
    processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForDepthEstimation.from_pretrained(str(folder), local_files_only=True).eval()
    with torch.inference_mode():
        predicted = model(**processor(images=photo, return_tensors="pt")).predicted_depth
    depth = torch.nn.functional.interpolate(predicted[:, None], size=photo.shape[:2], mode="bicubic")[0, 0]
    depth = (depth - depth.min()) / (depth.max() - depth.min()).clamp_min(1e-6)
    return (depth.clamp(0, 1).numpy() * 255.0).round().astype(np.uint8)


def depth_rows() -> list[Row]:
    photo = photo_512()
    ref = _depth_reference(photo)
    mine = ours(photo, "depth", "depth_anything_v2")[..., 0]
    ref_normals = _normals_reference(ref.astype(np.float32) / 255.0)
    mine_normals = ours(photo, "normal", "depth_anything_normals").astype(np.float32) / 127.5 - 1.0
    angle = np.degrees(np.arccos(np.clip(np.sum(_unit(mine_normals) * _unit(ref_normals), axis=2), -1, 1)))
    return [
        Row("depth_anything_v2", f"transformers {version('transformers')} `AutoImageProcessor` + "
            "`AutoModelForDepthEstimation` (Depth-Anything-V2-Small-hf)", "768x512 photo, 518 px short side, "
            "bicubic back to input size, min-max per image", compare_maps(mine, ref),
            "resize by area/bilinear on float pixels (the processor: bicubic on uint8, keep-aspect to multiples "
            "of 14 with a 518 lower bound)"),
        Row("depth_anything_normals", "ControlNet 1.0 normal-from-MiDaS annotator (its formula: Sobel of the "
            "depth, background below 0.1 flat, z = 2 pi) on the reference depth above",
            "768x512 photo; normals compared as vectors (left, up, viewer)",
            f"angle between normals: median {np.median(angle):.1f}, mean {angle.mean():.1f}, 99th percentile "
            f"{np.percentile(angle, 99):.1f} deg",
            "deliberate: relief scaled to the image size (DEPTH_RELIEF 0.3 of the long side) so the look does not "
            "depend on resolution (the reference's relief follows MiDaS's raw depth scale); stored RGB = (left, up, "
            "viewer) as normalbae expects (ControlNet 1.0 stored them reversed)"),
    ]


def _normals_reference(depth: np.ndarray) -> np.ndarray:
    # ControlNet 1.0's normal-from-MiDaS, written out: Sobel gradients of the depth (here a 0..255 depth
    # image), flat where the normalised depth is under bg_th 0.1, z = a = 2 pi, normalised. Its (x, y, z) are
    # already (left, up, viewer) axes for a near-is-larger depth; it stores them reversed (BGR), compared here
    # as vectors.
    levels = depth * 255.0
    x = cv2.Sobel(levels, cv2.CV_32F, 1, 0, ksize=3)
    y = cv2.Sobel(levels, cv2.CV_32F, 0, 1, ksize=3)
    x[depth < 0.1] = 0
    y[depth < 0.1] = 0
    return np.stack([x, y, np.full_like(x, np.pi * 2.0)], axis=2)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=2, keepdims=True).clip(1e-6)


def segmentation_row() -> list[Row]:
    from controlnet_aux.util import ade_palette
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    from scenario_detect.nodes.local.ade20k import ADE20K_PALETTE

    folder = _repo("openmmlab/upernet-convnext-tiny")
    photo = photo_512()
    processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForSemanticSegmentation.from_pretrained(str(folder), local_files_only=True).eval()
    with torch.inference_mode():
        logits = model(**processor(images=photo, return_tensors="pt")).logits
    labels = processor.post_process_semantic_segmentation(
        type("Out", (), {"logits": logits})(), target_sizes=[photo.shape[:2]])[0].numpy()
    ref = np.asarray(ADE20K_PALETTE, np.uint8)[labels]
    mine = ours(photo, "segmentation", "upernet_ade20k")
    agree = float(np.mean(np.all(mine == ref, axis=2)))
    palette = [list(c) for c in ADE20K_PALETTE] == [list(c) for c in ade_palette()]
    return [Row("upernet_ade20k", f"transformers {version('transformers')} UperNet + its image processor; palette: "
                f"{aux('util.ade_palette')}", "768x512 photo, 512 px short side",
                f"{agree:.1%} of pixels the same class; palette " + ("identical" if palette else "differs"),
                "deliberate: keeps the aspect ratio (the processor squashes to 512x512); ControlNet's own seg "
                "annotator (UperNet + UniFormer, mmseg) has no package for numpy 2")]


# -- DWPose --


def dwpose_row() -> list[Row]:
    import dwpose_standins
    import random_weights

    from scenario_detect.nodes.local import run_local

    photo = _figure(512, 768)
    with tempfile.TemporaryDirectory() as folder, random_weights.only_these_weights(
        dwpose_standins.write_all(Path(folder))
    ) as root:
        image = torch.from_numpy(photo.astype(np.float32) / 255.0)[None]
        frame = run_local(image, "pose", {"keypoint_threshold": 0.0}, "dwpose").keypoints[0]
        ref = _dwpose_reference(root, photo)
    mine = [np.array(p["pose_keypoints_2d"]).reshape(18, 3) for p in frame["people"]]
    if not mine or ref is None or len(ref) != len(mine):
        agreement = f"people found: ours {len(mine)}, reference {0 if ref is None else len(ref)}"
    else:
        diffs = [np.abs(m[idx, :2] - r[[c for c in COCO_OF_OPENPOSE if c is not None], :2]).max()
                 for m, r in zip(mine, ref, strict=True)
                 for idx in [[i for i, c in enumerate(COCO_OF_OPENPOSE) if c is not None]]]
        agreement = f"{len(mine)} person(s) both; body keypoints max diff {max(diffs):.3f} px"
    return [Row("dwpose", f"dwpose {version('dwpose')} TorchScript pipeline (`dw_torchscript.jit_det`, `jit_pose`: "
                "comfyui_controlnet_aux's)", "768x512 image, resolution 512 (no resize), stand-in networks that "
                "find a bright figure", agreement,
                "the detector gets BGR, as YOLOX was trained (the reference passes its input as is)")]


# OpenPose's 18 body points as COCO-WholeBody indices (None: the neck, the mean of the shoulders).
COCO_OF_OPENPOSE = [0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]


def _figure(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    blob = 235.0 * np.exp(-(((x - width * 0.3) / (width * 0.08)) ** 2 + ((y - height * 0.5) / (height * 0.25)) ** 2))
    return np.clip(rng.uniform(0, 40, (height, width, 3)) + blob[..., None], 0, 255).astype(np.uint8)


def _dwpose_reference(root: Path, rgb: np.ndarray) -> np.ndarray | None:
    spec = importlib.util.find_spec("dwpose")
    base = Path(next(iter(spec.submodule_search_locations))) / "dw_torchscript"
    det, pose = (_load_file(base / name) for name in ("jit_det.py", "jit_pose.py"))
    from scenario_detect.nodes.local import dwpose

    detector = torch.jit.load(str(root.joinpath(*dwpose.DETECTOR.repo.split("/"), dwpose.DETECTOR.filename)))
    estimator = torch.jit.load(str(root.joinpath(*dwpose.ESTIMATOR.repo.split("/"), dwpose.ESTIMATOR.filename)))
    with torch.inference_mode():
        boxes = det.inference_detector(detector, np.ascontiguousarray(rgb[:, :, ::-1]), detect_classes=[0])
        if boxes is None or len(boxes) == 0:
            return None
        keypoints, _ = pose.inference_pose(estimator, boxes, rgb)
    return keypoints


def _load_file(path: Path):
    module_spec = importlib.util.spec_from_file_location("_ref_" + path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


MEASURES: dict[str, Callable[[], list[Row]]] = {
    "opencv_canny": canny_rows,  # also the opencv_canny_luma row
    "levels": levels_row,
    "xdog": xdog_row,
    "pencil": no_reference_rows,  # also opencv_lsd
    **{method: (lambda m=method: aux_row(m)) for method in AUX_CASES},
    "openpose_body": openpose_rows,  # also openpose_full
    "depth_anything_v2": depth_rows,  # also depth_anything_normals
    "upernet_ade20k": segmentation_row,
    "dwpose": dwpose_row,
}
FAST = ("opencv_canny", "levels", "xdog", "pencil")  # weight-free: what tests/test_fidelity.py runs


def measure(only: list[str] | None = None) -> list[Row]:
    rows: list[Row] = []
    for key, run in MEASURES.items():
        if only is None or key in only:
            rows += run()
    return rows


def render(rows: list[Row]) -> str:
    lines = [
        "# Fidelity of the local methods to their references",
        "",
        "Generated by `python scripts/fidelity.py --write` (what it compares and how: its docstring). One row per",
        "local method: the reference implementation it follows, the settings compared, the agreement measured",
        "and, where a method differs on purpose, how and why. Networks run on the tests' stand-in weights (random",
        "weights in the released containers: no real weights are reachable offline), so the rows measure the",
        "pre- and post-processing around the same network, not the network's quality.",
        "",
        "| method | reference | settings compared | agreement | deliberate differences |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| `{r.method}` | {r.reference} | {r.settings} | {r.agreement} | {r.differences} |" for r in rows]
    return "\n".join(lines) + "\n"


def updated_doc(rows: list[Row]) -> str:
    """docs/fidelity.md with the rows of ``rows`` replaced (``--only`` with ``--write``), others kept."""
    fresh = {line.split("`")[1]: line for line in render(rows).splitlines() if line.startswith("| `")}
    lines = DOC.read_text().splitlines()
    return "\n".join(fresh.get(line.split("`")[1], line) if line.startswith("| `") else line for line in lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"write {DOC.relative_to(ROOT)}")
    parser.add_argument("--only", default="", help="comma-separated keys of MEASURES")
    args = parser.parse_args()
    only = [k for k in args.only.split(",") if k] or None
    import random_weights

    with random_weights.only_these_weights(random_weights.models_root()):
        rows = measure(only)
    text = render(rows)
    print(text)
    if args.write:
        DOC.write_text(updated_doc(rows) if only and DOC.exists() else text)
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
