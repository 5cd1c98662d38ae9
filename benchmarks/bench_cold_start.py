"""Cold start: a model-backed method's first run in a fresh process against a weight-free one.

    python benchmarks/bench_cold_start.py [--runs 5] [--size 512] [--methods xdog,pidinet_scribble]

Each run is a fresh ``python -m scenario_detect`` process (the CLI, same code path as the node) on
the same image, so it pays every import, the weight file read, the network build and one forward.
Weights are the random stand-ins of ``tests/random_weights.py`` (same files, same loading code as the
real ones); downloads are disabled. Prints the median wall time per method over ``--runs`` runs, and
each method's ratio to the first (the weight-free baseline). The target of issue 10: the
``pidinet_scribble`` / ``xdog`` ratio at most 1.6.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

MODALITY = {"xdog": "scribble", "pidinet_scribble": "scribble", "hed_scribble": "scribble",
            "mlsd_large": "mlsd", "opencv_lsd": "mlsd", "lineart": "sketch", "normal_bae": "normal"}


def cold_run(method: str, image: Path, out: Path, env: dict[str, str]) -> float:
    cmd = [sys.executable, "-m", "scenario_detect", str(image), "--modality", MODALITY[method],
           "--local-method", method, "-o", str(out)]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--methods", default="xdog,pidinet_scribble")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    import cv2
    import numpy as np
    import random_weights
    from scene import photo_batch

    root = random_weights.models_root()
    env = dict(os.environ, SCENARIO_DETECT_MODELS_DIR=str(root), SCENARIO_DETECT_OFFLINE="1",
               HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(root / ".empty-hf-cache"), SCENARIO_DETECT_DEVICE="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "scene.png"
        frame = photo_batch(args.size, 1)[0]
        cv2.imwrite(str(image), cv2.cvtColor((np.clip(frame, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
        for method in methods:  # one untimed run each: the OS file cache is warm for every method alike
            cold_run(method, image, Path(tmp) / f"warmup_{method}.png", env)
        times: dict[str, list[float]] = {m: [] for m in methods}
        for i in range(args.runs):  # interleaved, so a burst of load on the machine hits every method
            for method in methods:
                times[method].append(cold_run(method, image, Path(tmp) / f"{method}_{i}.png", env))
    base = statistics.median(times[methods[0]])
    print(f"cold start, {args.size} px, median of {args.runs} fresh processes (CPU)")
    for method in methods:
        median = statistics.median(times[method])
        runs = ", ".join(f"{t:.2f}" for t in times[method])
        print(f"{method:18s} {median:6.2f} s   ratio {median / base:4.2f}   runs: {runs}")


if __name__ == "__main__":
    main()
