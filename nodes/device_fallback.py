"""A network method that fails on ComfyUI's device reruns once on the CPU, and stays there.

Some devices cannot run every op or dtype our networks use (MPS, DirectML's ``privateuseone``, which
cannot run TorchScript at all, XPU, ...). ``run_with_cpu_fallback`` wraps one method run: an
error on a device other than the CPU (torch's "not implemented for", "unsupported", TorchScript
errors, whatever their type) logs one warning naming the device, the method and the
reason, and the same run is repeated with ``host.torch_device()`` answering the CPU. The pair
(method, device) is remembered for the process, so later runs of that method go straight to the
CPU; other methods still try the device. An error on the CPU is the caller's (it is raised as is),
and so are interrupts, out-of-memory errors (a device problem of the moment, not of the method) and
our own ``ValueError``/``OSError`` messages (bad input, missing weights).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import torch

from . import host

log = logging.getLogger("scenario_detect")
T = TypeVar("T")

# (method, device) pairs that failed on the device in this process: the explicit record the
# "remember it for the process" rule needs; never cleared (a device does not learn new ops).
_CPU_ONLY: set[tuple[str, str]] = set()
_CPU_ONLY_LOCK = threading.Lock()


def _reason(error: BaseException) -> str:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return first if len(first) <= 200 else first[:197] + "..."


def _device_failure(error: BaseException) -> bool:
    # Devices fail in many shapes (NotImplementedError for a missing op, RuntimeError for a dtype,
    # AssertionError from TorchScript's .to(), ...): everything but what is surely not the device's.
    if isinstance(error, (host.Interrupted, ValueError, OSError, torch.cuda.OutOfMemoryError)):
        return False
    return type(error).__name__ != "InterruptProcessingException"  # ComfyUI's Cancel


def cpu_only(method: str, device: str) -> bool:
    """True when ``method`` failed on ``device`` earlier in this process and now runs on the CPU."""
    with _CPU_ONLY_LOCK:
        return (method, device) in _CPU_ONLY


def run_with_cpu_fallback(method: str, run: Callable[[], T]) -> T:
    """``run()`` on ComfyUI's device; on a device failure, once more on the CPU (see the module doc)."""
    device = str(host.torch_device())
    if device == "cpu":
        return run()
    if not cpu_only(method, device):
        try:
            return run()
        except Exception as error:
            if not _device_failure(error):
                raise
            log.warning(
                "Detect: local method '%s' failed on the %s device (%s: %s); running it on the CPU "
                "instead, for the rest of this session", method, device, type(error).__name__, _reason(error),
            )
            with _CPU_ONLY_LOCK:
                _CPU_ONLY.add((method, device))
    with host.device_override("cpu"):
        return run()
