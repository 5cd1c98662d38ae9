"""Model-backed (controlnet-aux network) local methods: first run, warm runs, batch vs single images.

    python benchmarks/bench_models.py [--size 512] [--repeats 3] [--methods mlsd_large,lineart]

Networks are the real architectures with random weights in the release file formats
(``tests/random_weights.py``, built once and cached): speed does not depend on the weights' values.
All runs on the CPU (``SCENARIO_DETECT_DEVICE=cpu``). Per method:

first   one image, cold: weight resolution + file read + strict load + inference (the model cache is
        cleared before; the one-off ``import controlnet_aux`` is timed separately, on its own line)
single  warm, one image per call, median ms per image over 4 calls x repeats (no load: asserted)
batch4  warm, one call with 4 images, ms per image (median of repeats)
Ratios: batch4/single (below 1: batching pays), first/single (what the first run costs extra), and
single vs the modality's weight-free method (the baseline, measured in the same run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from scene import photo_batch  # noqa: E402


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default="", help="comma-separated method names (default: all)")
    args = parser.parse_args()

    import random_weights

    root = random_weights.models_root()
    os.environ.update(
        SCENARIO_DETECT_MODELS_DIR=str(root),
        SCENARIO_DETECT_OFFLINE="1",
        HF_HUB_CACHE=str(root / ".empty-hf-cache"),
        SCENARIO_DETECT_DEVICE="cpu",
    )
    from scenario_detect.nodes import modalities as table
    from scenario_detect.nodes.local import load_method
    from scenario_detect.nodes.local.models import MODELS

    import_ms = timed(lambda: __import__("controlnet_aux"))
    frames = photo_batch(args.size, 4)
    batch = torch.from_numpy(__import__("numpy").stack(frames)).float().contiguous()
    one = batch[:1].contiguous()
    wanted = {m for m in args.methods.split(",") if m}

    print(f"CPU, {torch.get_num_threads()} torch threads, {args.size}x{args.size} photos, random weights")
    print(f"import controlnet_aux (once per process): {import_ms:.0f} ms")
    header = (
        f"{'modality':<14}{'method':<18}{'first ms':>10}{'single ms/img':>15}{'batch4 ms/img':>15}"
        f"{'batch4/single':>15}{'first/single':>14}{'baseline':>12}{'base ms/img':>13}{'single/base':>13}"
    )
    print(header)
    for modality in table.MODALITIES.values():
        params = table.default_params()
        free = [m for m in modality.local_methods if not m.needs_weights]
        base_name, base_ms = "-", float("nan")
        if free:
            base_fn = load_method(free[0])
            base_fn(one, params)
            base_name = free[0].name
            base_ms = statistics.median(timed(lambda f=base_fn, p=params: f(one, p)) for _ in range(4 * args.repeats))
        for method in modality.local_methods:
            if not method.entry.startswith("aux_detectors:") or (wanted and method.name not in wanted):
                continue
            fn = load_method(method)
            MODELS.clear()
            first = timed(lambda f=fn, p=params: f(one, p))
            loads = MODELS.load_count()
            singles = [timed(lambda f=fn, p=params: f(one, p)) for _ in range(4 * args.repeats)]
            batched = [timed(lambda f=fn, p=params: f(batch, p)) / 4 for _ in range(args.repeats)]
            assert MODELS.load_count() == loads, "a warm run loaded a network again"
            single, per_img = statistics.median(singles), statistics.median(batched)
            print(
                f"{modality.name:<14}{method.name:<18}{first:>10.0f}{single:>15.0f}{per_img:>15.0f}"
                f"{per_img / single:>15.2f}{first / single:>14.1f}{base_name:>12}{base_ms:>13.1f}"
                f"{single / base_ms:>13.0f}"
            )
            MODELS.clear()


if __name__ == "__main__":
    main()
