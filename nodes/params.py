"""Parameter checks shared by both backends (and the node and the CLI): below both, importing neither."""

from __future__ import annotations

from typing import Any

from .errors import DetectError
from .modalities import NETWORK_PARAMS, PARAMS, CheckedParams, validation_errors


def check_params(modality: str, params: dict[str, Any]) -> CheckedParams:
    """The known parameters of ``params``, or a DetectError naming every problem with them.

    Validated once: the result is a ``CheckedParams``, which later checks take as it is.
    """
    if isinstance(params, CheckedParams) and params.modality == modality:
        return params
    known = {name: value for name, value in params.items() if name in PARAMS or name in NETWORK_PARAMS}
    errors = validation_errors(modality, known)
    if errors:
        raise DetectError("Detect: " + "; ".join(errors))
    return CheckedParams(modality, known)
