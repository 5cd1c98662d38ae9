"""One entry for a detection run, shared by the node and the CLI: validate, then one backend."""

from __future__ import annotations

import logging
from typing import Any

import torch

from .errors import DetectError
from .local import Detection, run_local
from .modalities import AUTO_METHOD
from .params import check_params

__all__ = ["DetectError", "check_params", "run_detect"]  # the first two live below both backends

log = logging.getLogger("scenario_detect")


def run_detect(
    images: torch.Tensor, modality: str, params: dict[str, Any], local_method: str = AUTO_METHOD
) -> Detection:
    """Control maps and pose keypoints for a batch with the local backend (the default)."""
    known = check_params(modality, params)
    try:
        return run_local(images, modality, known, local_method)
    except ValueError as error:
        if isinstance(error, DetectError):
            raise
        raise DetectError(f"Detect ({modality}, local): {error}") from None
