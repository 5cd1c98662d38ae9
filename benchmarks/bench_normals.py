"""Normal maps: BAE (``normal_bae``, normal's ``auto``) against normals from Depth Anything's depth.

    python benchmarks/bench_normals.py [--size 512] [--repeats 3]

Both run warm (the network loaded by a first, untimed call) on the CPU (``SCENARIO_DETECT_DEVICE=cpu``),
one image per call at ``--size`` x ``--size`` (the networks see it with its short side at their
default resolution: 512 for BAE, 518 for Depth Anything). Both networks are full-size random copies
of the real ones (BAE: the stand-in ``scannet.pt`` of ``tests/random_weights.py``; Depth Anything V2
Small: ``bench_models_transformers.build_full_size``): speed does not depend on the weights' values.
Prints the median ms per image of each and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from scene import photo_batch  # noqa: E402

METHODS = ("normal_bae", "depth_anything_normals")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import random_weights
    from bench_models_transformers import build_full_size

    root = Path(tempfile.mkdtemp(prefix="bench-normals-"))
    build_full_size(root)  # full-size Depth Anything V2 Small (the test folders hold a tiny one)
    bae = root / "lllyasviel" / "Annotators" / "scannet.pt"
    bae.parent.mkdir(parents=True)
    bae.symlink_to(random_weights.models_root() / "lllyasviel" / "Annotators" / "scannet.pt")
    os.environ.update(SCENARIO_DETECT_MODELS_DIR=str(root), SCENARIO_DETECT_OFFLINE="1",
                      HF_HUB_CACHE=str(root / ".empty-hf-cache"), SCENARIO_DETECT_DEVICE="cpu")
    from scenario_detect.nodes.local import run_local

    image = torch.from_numpy(photo_batch(args.size, 1)[0])[None]
    medians = {}
    for method in METHODS:
        run_local(image, "normal", {}, method=method)  # load (untimed)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run_local(image, "normal", {}, method=method)
            times.append((time.perf_counter() - start) * 1000.0)
        medians[method] = statistics.median(times)
        print(f"{method:24s} {medians[method]:8.0f} ms/image   runs: {', '.join(f'{t:.0f}' for t in times)}")
    print(f"normal_bae / depth_anything_normals: {medians['normal_bae'] / medians['depth_anything_normals']:.1f}x "
          f"({args.size} px, CPU, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
