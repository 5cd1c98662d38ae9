"""Test-only ComfyUI node: another node of the prompt that loads and frees models while ours run.

``ModelChurn`` is async, so ComfyUI runs it as a task beside our pending Detect nodes. On the prompt
thread it repeatedly loads a model of its own through ``comfy.model_management.load_models_gpu`` and
then ``unload_all_models()`` (which frees every loaded model, ours included), the calls a KSampler or
a VAE decode make. Global torch forward hooks record, per thread, when a top-level forward starts and
ends; each churn call records whether any forward was in flight on another thread at that moment.
The report (JSON in the node's ``ui.text``) lists the calls and the forward spans, in order of one
shared counter (no clock): the test checks that no call landed inside a forward of ours and that
calls did land between our runs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from typing import Any

import torch

_tick = itertools.count()  # one order for calls and forward edges, across threads
_lock = threading.Lock()
_depth: dict[int, int] = {}  # thread id -> nesting depth of module forwards in flight
_spans: list[dict[str, Any]] = []  # finished top-level forwards off the prompt thread
_open: dict[int, dict[str, Any]] = {}


def _pre(module: torch.nn.Module, args: Any) -> None:
    thread = threading.get_ident()
    with _lock:
        _depth[thread] = _depth.get(thread, 0) + 1
        if _depth[thread] == 1:
            _open[thread] = {"module": type(module).__name__, "thread": threading.current_thread().name,
                             "start": next(_tick)}


def _post(module: torch.nn.Module, args: Any, output: Any) -> None:
    thread = threading.get_ident()
    with _lock:
        _depth[thread] = max(0, _depth.get(thread, 0) - 1)
        if _depth[thread] == 0 and thread in _open:
            span = _open.pop(thread)
            span["end"] = next(_tick)
            _spans.append(span)


torch.nn.modules.module.register_module_forward_pre_hook(_pre)
torch.nn.modules.module.register_module_forward_hook(_post, always_call=True)


def _in_flight_elsewhere() -> list[str]:
    me = threading.get_ident()
    with _lock:
        return [_open[t]["module"] for t, d in _depth.items() if t != me and d > 0 and t in _open]


class ModelChurn:
    """Loads and frees models on the prompt thread until ``forwards`` forwards of others have ended."""

    CATEGORY = "testing"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "churn"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 (ComfyUI's V1 name)
        return {"required": {"forwards": ("INT", {"default": 2, "min": 1, "max": 100}),
                             "tag": ("STRING", {"default": ""})}}

    async def churn(self, forwards: int, tag: str) -> dict[str, Any]:
        import comfy.model_management as mm
        import comfy.model_patcher

        with _lock:
            first_span = len(_spans)
        own = comfy.model_patcher.ModelPatcher(
            torch.nn.Linear(64, 64), load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
        )
        calls: list[dict[str, Any]] = []
        unloaded_others = 0
        for _ in range(200_000):  # bounded: a run that never forwards ends the churn anyway
            busy = _in_flight_elsewhere()
            mm.load_models_gpu([own])
            unloaded_others += sum(1 for m in mm.current_loaded_models if m.model is not own)
            mm.unload_all_models()
            busy += _in_flight_elsewhere()
            calls.append({"tick": next(_tick), "busy": busy})
            with _lock:
                done = len(_spans) - first_span >= forwards and not any(_depth.values())
            if done:
                break
            await asyncio.sleep(0.002)
        with _lock:
            spans = _spans[first_span:]
        report = {"calls": calls, "spans": spans, "unloaded_others": unloaded_others, "tag": tag}
        return {"ui": {"text": [json.dumps(report)]}}


NODE_CLASS_MAPPINGS = {"ModelChurn": ModelChurn}
