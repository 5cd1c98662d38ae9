"""Small adapters to the ComfyUI host: progress, interrupt, device, folders.

The backends call these instead of importing ComfyUI, so the same code runs under the CLI and in
plain unit tests (where each adapter falls back to a sensible default).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path


def in_comfyui() -> bool:
    """True when running inside a ComfyUI process (its modules are already imported)."""
    return "comfy.model_management" in sys.modules and "folder_paths" in sys.modules


class Interrupted(Exception):
    """Raised when the user pressed Cancel; inside ComfyUI the host's own exception is raised."""


# Set by nodes/local_thread.py for a run on its worker thread: the awaiting node task was cancelled
# (its prompt failed or was interrupted elsewhere), so the run must stop at its next check even if
# another node already consumed ComfyUI's global interrupt flag.
_ABANDONED: ContextVar[threading.Event | None] = ContextVar("scenario_detect_abandoned", default=None)


def set_abandon_event(event: threading.Event | None) -> None:
    _ABANDONED.set(event)


def _abandoned() -> bool:
    event = _ABANDONED.get()
    return event is not None and event.is_set()


def _throw_if_abandoned() -> None:
    if _abandoned():
        raise Interrupted("the local run was abandoned: its prompt was cancelled or failed")


# Set by nodes/local_thread.py for a run on its worker thread inside ComfyUI: called before the run first
# touches ComfyUI's model management (``load_models_gpu``), it blocks until ComfyUI's prompt thread is
# parked, so no other node can load, move or free models until the run ends (see local_thread.py).
_DEVICE_CLAIM: ContextVar[Callable[[], None] | None] = ContextVar("scenario_detect_device_claim", default=None)
# Set by nodes/device_fallback.py while a method reruns on the CPU after failing on the device.
_DEVICE_OVERRIDE: ContextVar[str | None] = ContextVar("scenario_detect_device_override", default=None)


def set_device_claim(claim: Callable[[], None] | None) -> None:
    _DEVICE_CLAIM.set(claim)


def claim_device() -> None:
    """Own the device for the rest of this run (a no-op outside a ComfyUI worker run)."""
    claim = _DEVICE_CLAIM.get()
    if claim is not None:
        claim()


@contextmanager
def device_override(device: str) -> Iterator[None]:
    """Within the block ``torch_device()`` answers ``device`` (the CPU rerun of a failed method)."""
    token = _DEVICE_OVERRIDE.set(device)
    try:
        yield
    finally:
        _DEVICE_OVERRIDE.reset(token)


def interrupted() -> bool:
    if _abandoned():
        return True
    if not in_comfyui():
        return False
    import comfy.model_management as mm

    return bool(mm.processing_interrupted())


def throw_if_interrupted() -> None:
    _throw_if_abandoned()
    if in_comfyui():
        import comfy.model_management as mm

        mm.throw_exception_if_processing_interrupted()


def progress_bar(total: int) -> Callable[[float], None]:
    """A callable taking the absolute progress (0..total); a no-op outside ComfyUI.

    Each update is also a stop point: ComfyUI's hook raises on Cancel, and an abandoned worker run
    (see ``set_abandon_event``) raises ``Interrupted``. The hook reads the executing node from a
    context variable, so a worker thread must run in a copy of the node task's context.
    """
    if not in_comfyui() or total <= 0:
        return lambda value: _throw_if_abandoned()
    import comfy.utils

    bar = comfy.utils.ProgressBar(total)

    def update(value: float) -> None:
        _throw_if_abandoned()
        bar.update_absolute(min(float(value), float(total)), total)

    return update


def torch_device():
    """ComfyUI's compute device (GPU when it has one); the CPU elsewhere; during a device
    fallback (``device_override``), the CPU."""
    import torch

    if _DEVICE_OVERRIDE.get() is not None:
        return torch.device(_DEVICE_OVERRIDE.get())
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
