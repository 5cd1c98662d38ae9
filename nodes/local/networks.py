"""The shape every network method shares: load the network once, pick the size it sees, run in chunks.

A method describes its network once (``Network``: weight file(s), builder, size rules) and gives
``run_network`` what it does with one chunk (``infer``); loading, the network's input size, the
chunking, progress and Cancel are written here only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .models import MODELS, Loaded, chunk_size, default_chunk, fit_size, network_resolution, run_chunks
from .weights import WeightFile, repo_folder, weight_path

# ``infer(loaded, chunk [b,H,W,3] CPU 0..1, size (h, w) the network sees)`` -> maps [b,H,W,3] or [b,H,W,1].
Infer = Callable[[Loaded, torch.Tensor, tuple[int, int]], torch.Tensor]


@dataclass(frozen=True)
class Network:
    """One network a method runs, described once."""

    name: str  # the cache key and the log's "Loading <name> from ..."
    # One file (read by ``build(path)``), or every file of a hub repository folder (``build(folder)``).
    weights: WeightFile | tuple[WeightFile, ...]
    build: Callable[[Path], torch.nn.Module]
    multiple: int  # both input sides must be multiples of this (the network's total downsampling)
    resolution: int = 512  # the short side it sees unless params["resolution"] says otherwise
    scale: float = 1.0  # times that short side (Depth Anything: 518 at the default 512, its training size)
    half_ok: bool = True  # float16 on CUDA is safe for it (see models.pick_dtype)
    gpu_chunk: int = 4  # images per forward pass on a GPU (one on a CPU: see models.default_chunk)

    def path(self, models_dir: str | Path | None = None) -> Path:
        """The weight file, or the repository folder, found or downloaded (or WeightsUnavailable)."""
        if isinstance(self.weights, WeightFile):
            return weight_path(self.weights, models_dir)
        return repo_folder(self.weights[0].repo, self.weights, models_dir)

    def load(self, models_dir: str | Path | None = None) -> Loaded:
        return MODELS.get(self.name, self.path(models_dir), self.build, half_ok=self.half_ok)

    def size(self, height: int, width: int, params: dict[str, Any]) -> tuple[int, int]:
        """(h, w) the network sees for an input of ``height`` x ``width``."""
        return fit_size(height, width, network_resolution(params, self.resolution) * self.scale, self.multiple)

    def chunk(self, params: dict[str, Any], loaded: Loaded) -> int:
        """Images per forward pass: ``params["chunk"]``, else one on a CPU and ``gpu_chunk`` elsewhere."""
        if "chunk" in params or default_chunk(loaded.device) == 1:
            return chunk_size(params, loaded)
        return self.gpu_chunk


def run_network(images: torch.Tensor, params: dict[str, Any], network: Network, infer: Infer) -> torch.Tensor:
    """``infer`` over ``images`` [B,H,W,3] in chunks with ``network`` loaded: maps [B,H,W,3] 0..1."""
    loaded = network.load()
    size = network.size(images.shape[1], images.shape[2], params)
    return run_chunks(images, network.chunk(params, loaded), lambda chunk: infer(loaded, chunk, size))
