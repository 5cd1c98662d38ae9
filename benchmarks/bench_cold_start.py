"""Cold start: a model-backed method's first run in a fresh process against a weight-free one.

    python benchmarks/bench_cold_start.py [--runs 5] [--size 512] [--methods xdog,pidinet_scribble]

Each run is a fresh ``python -m scenario_detect`` process (the CLI, same code path as the node) on
the same image, so it pays every import, the weight file read, the network build and one forward.
Weights are the random stand-ins of ``tests/random_weights.py`` (same files, same loading code as the
real ones); downloads are disabled. Prints the median wall time per method over ``--runs`` runs, and
each method's ratio to the first (the weight-free baseline). The target of issue 10: the
``pidinet_scribble`` / ``xdog`` ratio at most 1.6.

``--before DIR`` also runs the methods with another revision of the pack (a folder holding it as
``DIR/scenario_detect``, e.g. ``mkdir -p /tmp/old && git archive <rev> --prefix=scenario_detect/ |
tar -x -C /tmp/old``), interleaved with this one, so both see the same machine load.
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


def cold_run(method: str, image: Path, out: Path, env: dict[str, str], code: Path | None = None) -> float:
    if code is not None:  # PYTHONPATH comes before the editable install of this checkout
        env = dict(env, PYTHONPATH=str(code))
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
    parser.add_argument("--before", type=Path, help="folder holding another revision as scenario_detect/")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    revisions: dict[str, Path | None] = {"": None}
    if args.before:
        revisions["before: "] = args.before.resolve()

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
        runs = [(label + method, method, code) for label, code in revisions.items() for method in methods]
        for _name, method, code in runs:  # one untimed run each: the OS file cache is warm for every one alike
            cold_run(method, image, Path(tmp) / "warmup.png", env, code)
        times: dict[str, list[float]] = {name: [] for name, _, _ in runs}
        for i in range(args.runs):  # interleaved, so a burst of load on the machine hits every one
            for name, method, code in runs:
                times[name].append(cold_run(method, image, Path(tmp) / f"{i}.png", env, code))
    print(f"cold start, {args.size} px, median of {args.runs} fresh processes (CPU)")
    for label in revisions:
        base = statistics.median(times[label + methods[0]])
        for method in methods:
            median = statistics.median(times[label + method])
            runs_text = ", ".join(f"{t:.2f}" for t in times[label + method])
            print(f"{label + method:26s} {median:6.2f} s   ratio {median / base:4.2f}   runs: {runs_text}")


if __name__ == "__main__":
    main()
