"""Local detectors: one small function per method behind one interface.

``METHODS`` maps each local method of the modality table (``modalities.LocalMethod.name``) to what
runs it: its function and the weight files it reads. Each entry imports its module only when that
method runs, so a modality's libraries (controlnet_aux, transformers, ...) load the first time it
runs, never at ComfyUI start-up.

A method's function returns the maps ``[B, H, W, 3]``, or ``(maps, keypoints)`` when it finds
poses: one ``pose_keypoints.frame_entry`` per image, in input-image pixels.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import torch

from .. import images as image_ops
from ..modalities import AUTO_METHOD, LocalMethod, default_params, resolve_local_method
from .pose_keypoints import PoseKeypointFrame, empty_frames
from .weights import WeightFile, WeightFileUnusable, weight_paths

LocalFunction = Callable[[torch.Tensor, dict[str, Any]], Any]


class Detection(NamedTuple):
    """What a local run gives: the control maps and ComfyUI's POSE_KEYPOINT value for the batch."""

    maps: torch.Tensor  # [B, H, W, 3] float32 0..1, the input's height and width
    keypoints: list[PoseKeypointFrame]  # one entry per image; empty people for non-pose methods


class Runner(NamedTuple):
    """What runs one local method."""

    function: LocalFunction
    # Every weight file it reads, fetched together before it runs: offline or on a failed download,
    # one error lists them all. Hub-folder models (transformers) list theirs in ``repo_folder``.
    weights: tuple[WeightFile, ...] = ()
    check: Callable[[], None] | None = None  # fails early (before any download) when a package is missing


def _opencv() -> ModuleType:
    return importlib.import_module(".opencv_detectors", __package__)


def _aux() -> ModuleType:
    return importlib.import_module(".aux_detectors", __package__)


def _hub() -> ModuleType:
    return importlib.import_module(".transformers_detectors", __package__)


def _dwpose() -> ModuleType:
    return importlib.import_module(".dwpose", __package__)


def _aux_network(function: str, *networks: str) -> Callable[[], Runner]:
    """A controlnet-aux method: its function and its networks' weight files."""

    def runner() -> Runner:
        aux = _aux()
        return Runner(getattr(aux, function), tuple(getattr(aux, n).weights for n in networks), aux.need_aux)

    return runner


def grayscale(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """Grayscale levels; with ``remove_background`` the segmentation model blacks out the background
    (transformers and a download, so its module is imported only then)."""
    if params.get("remove_background"):
        return _hub().grayscale_without_background(images, params)
    return _opencv().grayscale(images, params)


# Method name -> its runner, built on first use (the module is imported then).
METHODS: dict[str, Callable[[], Runner]] = {
    "opencv_canny": lambda: Runner(_opencv().canny),
    "opencv_canny_luma": lambda: Runner(_opencv().canny_luma),
    "levels": lambda: Runner(grayscale),
    "pencil": lambda: Runner(_opencv().sketch_pencil),
    "xdog": lambda: Runner(_opencv().scribble_xdog),
    "opencv_lsd": lambda: Runner(_opencv().mlsd_lines),
    "mlsd_large": _aux_network("mlsd", "MLSD_NET"),
    "pidinet_scribble": _aux_network("scribble_pidinet", "PIDINET_NET"),
    "hed_scribble": _aux_network("scribble_hed", "HED_NET"),
    "lineart": _aux_network("sketch_lineart", "LINEART_NET"),
    "lineart_coarse": _aux_network("sketch_lineart_coarse", "LINEART_COARSE_NET"),
    "lineart_anime": _aux_network("lineart_anime", "LINEART_ANIME_NET"),
    "normal_bae": _aux_network("normal_bae", "NORMAL_BAE_NET"),
    "openpose_body": _aux_network("pose_body", "OPENPOSE_BODY_NET"),
    "openpose_full": _aux_network("pose_full", "OPENPOSE_BODY_NET", "OPENPOSE_HAND_NET", "OPENPOSE_FACE_NET"),
    "dwpose": lambda: Runner(_dwpose().pose_dwpose, _dwpose().WEIGHTS),
    "depth_anything_v2": lambda: Runner(_hub().depth_anything),
    "depth_anything_normals": lambda: Runner(_hub().normal_from_depth_anything),
    "upernet_ade20k": lambda: Runner(_hub().segmentation_ade20k),
}


def load_method(method: LocalMethod) -> LocalFunction:
    """The function of a local method (its module imported now)."""
    return METHODS[method.name]().function


def run_local(
    images: torch.Tensor, modality: str, params: dict[str, Any], method: str = AUTO_METHOD
) -> Detection:
    """Control maps and pose keypoints for a batch, same height and width as the input."""
    spec = resolve_local_method(modality, method)
    runner = METHODS[spec.name]()
    batch = image_ops.to_batch(images) if spec.raw_input else image_ops.sanitized(images)
    merged = default_params() | {k: v for k, v in params.items() if v is not None}
    if runner.check is not None:
        runner.check()
    found = dict(zip(weight_paths(runner.weights), runner.weights, strict=True)) if runner.weights else {}
    try:
        result = runner.function(batch, merged)
    except WeightFileUnusable as error:
        if error.spec is None and error.path in found:  # give the message the file's description and URL
            raise error.naming(found[error.path]) from error.__cause__
        raise
    maps, keypoints = result if isinstance(result, tuple) else (result, None)
    _check_result(spec.name, batch, maps, keypoints)
    return Detection(maps, keypoints if keypoints is not None else empty_frames(*batch.shape[:3]))


def _check_result(name: str, batch: torch.Tensor, maps: torch.Tensor, keypoints: list | None) -> None:
    """A method's output must match its input's shape: anything else is a bug of the pack."""
    count, height, width = batch.shape[:3]
    if maps.shape[:3] != batch.shape[:3] or maps.shape[3] != 3:
        raise RuntimeError(
            f"local method '{name}' returned shape {list(maps.shape)} for input "
            f"{list(batch.shape)}; this is a bug in the pack, please report it"
        )
    if keypoints is not None and (
        len(keypoints) != count or any((f["canvas_width"], f["canvas_height"]) != (width, height) for f in keypoints)
    ):
        raise RuntimeError(
            f"local method '{name}' returned keypoints for {len(keypoints)} image(s) or another canvas "
            f"size than the input {width}x{height} x {count}; this is a bug in the pack, please report it"
        )
