"""One entry for a detection run, shared by the node and the CLI: validate, then one backend."""

from __future__ import annotations

import logging
from typing import Any

import torch

from .local import Detection, run_local
from .modalities import AUTO_METHOD, PARAMS, CheckedParams, validation_errors

log = logging.getLogger("scenario_detect")


class DetectError(ValueError):
    """A detection cannot run as asked; the message says why and what to do."""


def check_params(modality: str, params: dict[str, Any]) -> CheckedParams:
    """The known parameters, validated once: a ``CheckedParams`` passes later checks as is."""
    if isinstance(params, CheckedParams) and params.modality == modality:
        return params
    known = {name: value for name, value in params.items() if name in PARAMS}
    errors = validation_errors(modality, known)
    if errors:
        raise DetectError("Detect: " + "; ".join(errors))
    return CheckedParams(modality, known)


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
