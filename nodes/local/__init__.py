"""Local detectors: one small function per method behind one interface.

``run_local`` looks the method up in the modality table and imports its module only then, so a
modality's libraries (controlnet_aux, transformers, ...) load the first time it runs, never at
ComfyUI start-up.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from .. import images as image_ops
from ..modalities import AUTO_METHOD, LocalMethod, default_params, resolve_local_method


def load_method(method: LocalMethod):
    module_name, _, function_name = method.entry.partition(":")
    module = importlib.import_module(f"{__package__}.{module_name}")
    return getattr(module, function_name)


def run_local(
    images: torch.Tensor, modality: str, params: dict[str, Any], method: str = AUTO_METHOD
) -> torch.Tensor:
    """Control maps [B, H, W, 3] float32 0..1 for a batch, same height and width as the input."""
    spec = resolve_local_method(modality, method)
    batch = image_ops.to_batch(images) if spec.raw_input else image_ops.sanitized(images)
    merged = default_params() | {k: v for k, v in params.items() if v is not None}
    maps = load_method(spec)(batch, merged)
    if isinstance(maps, tuple):
        # (maps, keypoints): pose methods also give POSE_KEYPOINT entries; the node's pose_keypoint output
        # (the ComfyUI-native work) passes them on, this function returns the maps.
        maps = maps[0]
    if maps.shape[:3] != batch.shape[:3] or maps.shape[3] != 3:
        raise RuntimeError(
            f"local method '{spec.name}' returned shape {list(maps.shape)} for input "
            f"{list(batch.shape)}; this is a bug in the pack, please report it"
        )
    return maps
