"""Small adapters to the ComfyUI host: progress, interrupt, device, folders.

The backends call these instead of importing ComfyUI, so the same code runs under the CLI and in
plain unit tests (where each adapter falls back to a sensible default).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path


def in_comfyui() -> bool:
    """True when running inside a ComfyUI process (its modules are already imported)."""
    return "comfy.model_management" in sys.modules and "folder_paths" in sys.modules


class Interrupted(Exception):
    """Raised when the user pressed Cancel; inside ComfyUI the host's own exception is raised."""


def interrupted() -> bool:
    if not in_comfyui():
        return False
    import comfy.model_management as mm

    return bool(mm.processing_interrupted())


def throw_if_interrupted() -> None:
    if in_comfyui():
        import comfy.model_management as mm

        mm.throw_exception_if_processing_interrupted()


def progress_bar(total: int) -> Callable[[float], None]:
    """A callable taking the absolute progress (0..total); a no-op outside ComfyUI."""
    if not in_comfyui() or total <= 0:
        return lambda value: None
    import comfy.utils

    bar = comfy.utils.ProgressBar(total)
    return lambda value: bar.update_absolute(min(float(value), float(total)), total)


def torch_device():
    """ComfyUI's compute device (GPU when it has one); the CPU elsewhere."""
    import torch

    if in_comfyui():
        import comfy.model_management as mm

        return mm.get_torch_device()
    if os.environ.get("SCENARIO_DETECT_DEVICE"):
        return torch.device(os.environ["SCENARIO_DETECT_DEVICE"])
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def user_directory() -> Path:
    """ComfyUI's user folder, or ~/.config/scenario-detect for the CLI."""
    if in_comfyui():
        import folder_paths

        return Path(folder_paths.get_user_directory())
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "scenario-detect"
