"""Local detectors: one small function per method behind one interface.

``run_local`` looks the method up in the modality table and imports its module only then, so a
modality's libraries (controlnet_aux, transformers, ...) load the first time it runs, never at
ComfyUI start-up.

A method's entry function returns the maps ``[B, H, W, 3]``, or ``(maps, keypoints)`` when it finds
poses: one ``pose_keypoints.frame_entry`` per image, in input-image pixels.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

import torch

from .. import images as image_ops
from ..modalities import AUTO_METHOD, LocalMethod, default_params, resolve_local_method
from .pose_keypoints import PoseKeypointFrame, empty_frames


class Detection(NamedTuple):
    """What a local run gives: the control maps and ComfyUI's POSE_KEYPOINT value for the batch."""

    maps: torch.Tensor  # [B, H, W, 3] float32 0..1, the input's height and width
    keypoints: list[PoseKeypointFrame]  # one entry per image; empty people for non-pose methods


def load_method(method: LocalMethod):
    module_name, _, function_name = method.entry.partition(":")
    module = importlib.import_module(f"{__package__}.{module_name}")
    return getattr(module, function_name)


def run_local(
    images: torch.Tensor, modality: str, params: dict[str, Any], method: str = AUTO_METHOD
) -> Detection:
    """Control maps and pose keypoints for a batch, same height and width as the input."""
    spec = resolve_local_method(modality, method)
    batch = image_ops.to_batch(images) if spec.raw_input else image_ops.sanitized(images)
    merged = default_params() | {k: v for k, v in params.items() if v is not None}
    result = load_method(spec)(batch, merged)
    maps, keypoints = result if isinstance(result, tuple) else (result, None)
    count, height, width = batch.shape[:3]
    if maps.shape[:3] != batch.shape[:3] or maps.shape[3] != 3:
        raise RuntimeError(
            f"local method '{spec.name}' returned shape {list(maps.shape)} for input "
            f"{list(batch.shape)}; this is a bug in the pack, please report it"
        )
    if keypoints is None:
        keypoints = empty_frames(count, height, width)
    elif len(keypoints) != count or any(
        (f["canvas_width"], f["canvas_height"]) != (width, height) for f in keypoints
    ):
        raise RuntimeError(
            f"local method '{spec.name}' returned keypoints for {len(keypoints)} image(s) or another canvas "
            f"size than the input {width}x{height} x {count}; this is a bug in the pack, please report it"
        )
    return Detection(maps, keypoints)
