"""One entry for a detection run, shared by the node and the CLI: validate, then one backend."""

from __future__ import annotations

import logging
from typing import Any

import torch

from .device_fallback import run_with_cpu_fallback
from .errors import DetectError
from .local import Detection, run_local
from .modalities import AUTO_METHOD, resolve_local_method
from .params import check_params

__all__ = ["DetectError", "check_params", "run_detect"]  # the first two live below both backends

log = logging.getLogger("scenario_detect")


def run_detect(
    images: torch.Tensor, modality: str, params: dict[str, Any], local_method: str = AUTO_METHOD
) -> Detection:
    """Control maps and pose keypoints for a batch with the local backend (the default)."""
    known = check_params(modality, params)
    try:
        spec = resolve_local_method(modality, local_method)
        if not spec.needs_weights:  # OpenCV on the CPU: no device to fall back from
            return run_local(images, modality, known, local_method)
        return run_with_cpu_fallback(spec.name, lambda: run_local(images, modality, known, local_method))
    except ValueError as error:
        if isinstance(error, DetectError):
            raise
        raise DetectError(f"Detect ({modality}, local): {error}") from None
