"""Load each network once, run it on ComfyUI's device, give the memory back when ComfyUI asks.

Public API (model-backed detectors use only this):

- ``MODELS``: the one process-level ``ModelCache``. Detectors are plain functions called by the
  node, so the cache cannot be owned by a per-call object; it is one explicit object instead of
  scattered globals. ``MODELS.clear()`` drops every network; ``MODELS.load_count(name)`` says how
  many times a network was built from disk (tests assert a second run does not reload).
- ``MODELS.get(name, path, build, half_ok=True) -> Loaded``: the network built by ``build(path)``
  (a CPU float32 ``torch.nn.Module`` with its weights loaded strictly), moved to the device and
  dtype, ready for inference. The key is (name, file path, device, dtype). ``path`` may be a folder
  (a whole repository). Inside ComfyUI the module's ``.device`` attribute must be assignable
  (``ModelPatcher`` sets it): wrap a transformers ``PreTrainedModel`` (read-only ``device``) in a
  plain ``nn.Module``.
- ``Loaded.module`` / ``.device`` / ``.dtype``; ``Loaded.prepare(x)`` moves an input there.
- ``run_chunks(images, chunk, fn)``: run ``fn`` over a [B,H,W,3] batch in chunks, with progress
  and interrupt checks between chunks, into one preallocated output. ``fn`` may return
  [b,H,W,3] or [b,H,W,1] (broadcast to 3 channels), any dtype or device; it is copied and the copy
  clamped to 0..1, so ``fn``'s own tensor is never modified.
- ``to_model(images, size)`` / ``from_model(maps, height, width)``: resize a chunk in and out.

Memory, inside ComfyUI: each network is wrapped in a ``comfy.model_patcher.ModelPatcher`` and
every use goes through ``comfy.model_management.load_models_gpu([patcher])``, the path ComfyUI's
own CLIP-vision and upscaler models take. So ComfyUI sees our networks in ``current_loaded_models``:
it frees VRAM for them like for its own models, and when it unloads them (another model needs the
VRAM, the user presses "Unload models"/"Free model and node cache" (``unload_all_models``), or an
out-of-memory error) the patcher's ``ON_DETACH`` callback drops our entry as well, so the RAM copy
goes too and the next run loads the file again. Outside ComfyUI the networks stay until ``clear()``.

Precision: float16 on CUDA for networks marked ``half_ok`` (ComfyUI's ``should_use_fp16`` decides
inside ComfyUI, so ``--force-fp32`` is honoured); float32 elsewhere.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .. import host
from .weights import built_from

log = logging.getLogger("scenario_detect.models")


@dataclass
class Loaded:
    """A network ready for inference, and the ComfyUI patcher that manages its memory (if any)."""

    key: tuple[str, str, str, str]
    module: torch.nn.Module
    device: torch.device
    dtype: torch.dtype
    patcher: Any = field(default=None, repr=False)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(device=self.device, dtype=self.dtype, non_blocking=True)


def pick_dtype(device: torch.device, half_ok: bool) -> torch.dtype:
    if not half_ok or device.type != "cuda":
        return torch.float32
    if host.in_comfyui():
        import comfy.model_management as mm

        return torch.float16 if mm.should_use_fp16(device) else torch.float32
    return torch.float16


class ModelCache:
    """Networks built from weight files, keyed by (name, file path, device, dtype)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str, str], Loaded] = {}
        self._loads: Counter[str] = Counter()
        self._lock = threading.RLock()

    def get(
        self,
        name: str,
        path: str | Path,
        build: Callable[[Path], torch.nn.Module],
        *,
        half_ok: bool = True,
        device: torch.device | None = None,
    ) -> Loaded:
        device = torch.device(device) if device is not None else host.torch_device()
        dtype = pick_dtype(device, half_ok)
        key = (name, str(Path(path).resolve()), str(device), str(dtype))
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._load(key, Path(path), build, device, dtype)
        if entry.patcher is None:
            return entry
        import comfy.model_management as mm

        # From here to the end of the run no other node may load, move or free models: claim_device
        # parks ComfyUI's prompt thread (local_thread.py). Outside our lock, which the prompt thread takes
        # when ComfyUI unloads one of our networks; reading and building it above ran beside the prompt.
        host.claim_device()
        with self._lock:
            entry = self._entries.setdefault(key, entry)  # unloaded while we waited: still usable, keep it
            # Frees VRAM for us if needed and moves the network back if ComfyUI offloaded it.
            mm.load_models_gpu([entry.patcher], force_full_load=True)
        return entry

    def _load(
        self,
        key: tuple[str, str, str, str],
        path: Path,
        build: Callable[[Path], torch.nn.Module],
        device: torch.device,
        dtype: torch.dtype,
    ) -> Loaded:
        log.info("Loading %s from %s on %s (%s)", key[0], path, device, dtype)
        module = built_from(path, build)  # a bad file: one WeightFileUnusable naming it, not the reader's error
        module.eval().requires_grad_(False)
        module.to(dtype=dtype)
        entry = Loaded(key, module, device, dtype)
        if host.in_comfyui():
            entry.patcher = self._patcher(entry)
        else:
            module.to(device)
        self._entries[key] = entry
        self._loads[key[0]] += 1
        return entry

    def _patcher(self, entry: Loaded) -> Any:
        import comfy.model_management as mm
        import comfy.model_patcher
        from comfy.patcher_extension import CallbacksMP

        patcher = comfy.model_patcher.ModelPatcher(
            entry.module, load_device=entry.device, offload_device=mm.unet_offload_device()
        )
        key = entry.key

        def on_detach(detached: Any, unpatch_all: bool) -> None:
            # load_models_gpu detaches an already loaded model with unpatch_all=False before putting
            # it back on its list: that is not an unload. A real unload (free_memory,
            # unload_all_models, an out-of-memory error) detaches with unpatch_all=True.
            if not unpatch_all:
                return
            released = self.forget(key)
            if released is None:
                return
            # ComfyUI is still iterating current_loaded_models: if the network died right now, its
            # cleanup finalizer would pop entries mid-loop (IndexError in free_memory). Keep it
            # alive until ComfyUI drops its LoadedModel record, which happens after the loop.
            for record in list(mm.current_loaded_models):
                if record.model is detached:
                    weakref.finalize(record, _release, released)
                    break

        patcher.add_callback(CallbacksMP.ON_DETACH, on_detach)
        return patcher

    def forget(self, key: tuple[str, str, str, str]) -> Loaded | None:
        """Drop one network from the cache (the caller may still hold it); returns it, if cached."""
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is not None:
            log.info("Released %s", key[0])
        return entry

    def clear(self) -> None:
        """Drop every network (ComfyUI's copies are detached first, so its bookkeeping stays right)."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            if entry.patcher is not None:
                import comfy.model_management as mm

                # Let ComfyUI forget it: unload through its own list so no stale entry remains.
                for loaded in list(mm.current_loaded_models):
                    if loaded.model is entry.patcher:
                        loaded.model_unload()
                        mm.current_loaded_models.remove(loaded)
        if entries and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def load_count(self, name: str | None = None) -> int:
        """How many times ``name`` (or any network) was built from disk in this process."""
        return sum(self._loads.values()) if name is None else self._loads[name]

    def loaded(self) -> list[tuple[str, str, str, str]]:
        with self._lock:
            return list(self._entries)


def _release(entry: Loaded) -> None:
    """Finalizer target: holding ``entry`` as its argument kept the network alive until now."""


MODELS = ModelCache()


def run_chunks(images: torch.Tensor, chunk: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``fn`` over ``images`` [B,H,W,3] in chunks of ``chunk``; the outputs fill one [B,H,W,3] tensor."""
    batch = images.shape[0]
    out = torch.empty((batch, images.shape[1], images.shape[2], 3), dtype=torch.float32)
    progress = host.progress_bar(batch)
    chunk = max(1, int(chunk))
    with torch.inference_mode():
        for start in range(0, batch, chunk):
            host.throw_if_interrupted()
            stop = min(batch, start + chunk)
            out[start:stop] = fn(images[start:stop]).to("cpu")  # copies (and casts) into the output
            out[start:stop].nan_to_num_(0.0).clamp_(0.0, 1.0)  # fp16 overflow must not reach the image
            progress(stop)
    return out


def default_chunk(device: torch.device) -> int:
    """Images per forward pass. On CPU one at a time is fastest per image (measured at 512 px on
    2 cores: batches of 4 cost 5-55 % more per image, cache-bound); GPUs gain from batching (a
    ``networks.Network`` may ask for larger GPU batches: ``gpu_chunk``)."""
    return 1 if device.type == "cpu" else 4


def network_resolution(params: dict[str, Any], default: int = 512) -> int:
    """The short side a network sees (the node's ``resolution`` widget, ``--resolution``), at least 64 px."""
    return max(64, int(params.get("resolution", default)))


def chunk_size(params: dict[str, Any], loaded: Loaded | None = None) -> int:
    """Images per forward pass: ``default_chunk`` for the model's device, or ``params["chunk"]``.

    ``chunk`` is a programmatic option on purpose (tests run batches through several chunks on a CPU):
    the node and the CLI never set it, as ``run.check_params`` keeps only the table's parameters.
    """
    if "chunk" in params:
        return max(1, int(params["chunk"]))
    return default_chunk(loaded.device if loaded is not None else torch.device("cpu"))


def fit_size(height: int, width: int, resolution: int, multiple: int) -> tuple[int, int]:
    """The size a network sees: short side ~``resolution``, both sides multiples of ``multiple``.

    The long side is capped at 4x ``resolution`` so a sliver of an image cannot ask for a huge map.
    """
    scale = min(resolution / min(height, width), 4 * resolution / max(height, width))
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    return h, w


def to_model(images: torch.Tensor, size: tuple[int, int], loaded: Loaded) -> torch.Tensor:
    """[b,H,W,3] 0..1 CPU -> [b,3,h,w] on the network's device and dtype, resized (area/bilinear)."""
    x = loaded.prepare(images.permute(0, 3, 1, 2))
    if tuple(x.shape[-2:]) != tuple(size):
        shrinking = size[0] < x.shape[-2] and size[1] < x.shape[-1]
        x = (
            F.interpolate(x, size=size, mode="area")
            if shrinking
            else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        )
    # Channels-last memory (what the permuted IMAGE view already is): measured on CPU at 512 px, one
    # image per pass, M-LSD and PiDiNet run 15-20 % faster than on NCHW, the others the same.
    return x.contiguous(memory_format=torch.channels_last)


def from_model(maps: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[b,C,h,w] (C = 1 or 3) -> [b,H,W,3] float32, resized back to the input size exactly."""
    maps = maps.float()
    if tuple(maps.shape[-2:]) != (height, width):
        maps = F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)
    if maps.shape[1] == 1:
        maps = maps.expand(-1, 3, -1, -1)
    return maps.permute(0, 2, 3, 1)
