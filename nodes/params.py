"""Parameter checks shared by both backends (and the node and the CLI): below both, importing neither."""

from __future__ import annotations

from typing import Any

from .errors import DetectError
from .modalities import NETWORK_PARAMS, PARAMS, validation_errors


def check_params(modality: str, params: dict[str, Any]) -> dict[str, Any]:
    """The known parameters of ``params``, or a DetectError naming every problem with them."""
    known = {name: value for name, value in params.items() if name in PARAMS or name in NETWORK_PARAMS}
    errors = validation_errors(modality, known)
    if errors:
        raise DetectError("Detect: " + "; ".join(errors))
    return known
