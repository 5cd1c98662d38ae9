"""Canny through Detect versus the naive per-image path of existing packs, measured in one run.

    python benchmarks/bench_canny.py [--batch 8] [--repeats 5] [--kornia]

(a) Detect canny, node entry to node exit (IMAGE in, IMAGE out; through ComfyUI's node class when
    a ComfyUI tree is found via COMFYUI_DIR or the test cache, else through the same `run_detect`)
(b) the naive path: IMAGE -> uint8 RGB numpy -> cv2.Canny -> float IMAGE, per image
(c) bare single-threaded cv2.Canny on pre-made RGB uint8 arrays of the same frames (the floor the
    issue measures against: what the canny annotator computes, with no conversion at all)
(c2) the same on pre-made grayscale arrays, the floor of `local_method: opencv_canny_luma` (a2)
(d) controlnet-aux's CannyDetector at the same resolution (when installed)
(e) with --kornia: ComfyUI's built-in Canny node (kornia, CPU), one image at 512 only (it is slow)
Prints milliseconds per image (median of repeats) and the ratios the issue asks for.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scene import make_scene, photo_batch  # noqa: E402

LOW, HIGH = 100, 200


def comfyui_dir() -> Path | None:
    candidates = [os.environ.get("COMFYUI_DIR"), Path.home() / ".cache/scenario-detect/comfyui-0.3.75"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "comfy_api").is_dir():
            return Path(candidate)
    return None


def import_comfyui(comfy: Path) -> None:
    """Put a ComfyUI tree on sys.path, configured as `main.py --cpu` would (no GPU here)."""
    if str(comfy) not in sys.path:
        sys.path.insert(0, str(comfy))
    import comfy.cli_args

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True


def detect_entry(method: str = "auto"):
    """A callable IMAGE -> IMAGE going through the Detect node when ComfyUI is importable."""
    import importlib

    comfy = comfyui_dir()
    if comfy is not None:
        try:
            import_comfyui(comfy)
            detect = importlib.import_module("scenario_detect.nodes.detect")

            def through_node(images: torch.Tensor) -> torch.Tensor:
                out = asyncio.run(
                    detect.Detect.execute(images, "canny", method, low_threshold=LOW, high_threshold=HIGH)
                )
                return out.args[0]

            return through_node, f"Detect.execute (ComfyUI at {comfy})"
        except Exception as error:  # fall back to the shared entry the node calls
            print(f"note: ComfyUI node import failed ({error}); timing run_detect instead")
    from scenario_detect.nodes.run import run_detect

    def through_run_detect(images: torch.Tensor) -> torch.Tensor:
        return run_detect(images, "canny", {"low_threshold": LOW, "high_threshold": HIGH}, method).maps

    return through_run_detect, "run_detect"


def naive(images: torch.Tensor) -> torch.Tensor:
    outputs = []
    for image in images:
        rgb = np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)
        edges = cv2.Canny(rgb, LOW, HIGH)
        rgb_edges = np.stack([edges] * 3, axis=-1)
        outputs.append(torch.from_numpy(rgb_edges.astype(np.float32) / 255.0))
    return torch.stack(outputs)


def single_threaded(function):
    """``function`` with OpenCV's own worker threads off (cv2.Canny splits large images across them)."""

    def run(argument):
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            return function(argument)
        finally:
            cv2.setNumThreads(threads)

    return run


def timed_rounds(cases: dict[str, tuple], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each case, measured in rounds (every case once per round, in turn).

    On a shared machine the load changes from second to second; interleaving gives every case the
    same conditions, and a ratio taken within each round cancels most of the noise.
    """
    for function, argument in cases.values():
        function(argument)  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (function, argument) in cases.items():
            start = time.perf_counter()
            function(argument)
            samples[name].append(time.perf_counter() - start)
    return samples


def round_ratio(samples: dict[str, list[float]], top: str, bottom: str) -> float:
    """Median over rounds of top/bottom, each ratio taken within one round."""
    return statistics.median(t / b for t, b in zip(samples[top], samples[bottom], strict=True))


def timed(function, argument, repeats: int) -> float:
    function(argument)  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(argument)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 512])
    parser.add_argument("--synthetic", action="store_true", help="synthetic scenes instead of photos")
    parser.add_argument("--kornia", action="store_true", help="also time ComfyUI's built-in Canny (slow)")
    args = parser.parse_args()

    entry, entry_name = detect_entry()
    luma_entry, _ = detect_entry("opencv_canny_luma")
    print(f"(a) is {entry_name}; torch threads {torch.get_num_threads()}, cv2 threads {cv2.getNumThreads()}")
    try:
        from controlnet_aux.canny import CannyDetector

        aux = CannyDetector()
    except ImportError:
        aux = None

    for size in args.sizes:
        frames = photo_batch(size, args.batch) if not args.synthetic else [
            make_scene(size, size, seed=i) for i in range(args.batch)]
        images = torch.from_numpy(np.stack(frames))
        u8 = [np.rint(f * 255).astype(np.uint8) for f in frames]  # the same RGB frames as uint8
        grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in u8]
        n = args.batch
        bare = single_threaded(lambda arrays: [cv2.Canny(a, LOW, HIGH) for a in arrays])
        cases = {"a": (entry, images), "a2": (luma_entry, images), "b": (naive, images), "c": (bare, u8),
                 "c2": (bare, grays)}
        samples = timed_rounds(cases, args.repeats)
        ours, luma, base, floor, gray_floor = (statistics.median(samples[k]) / n * 1000 for k in cases)
        print(f"\n{size}x{size}, batch {n}: ms per image (median of {args.repeats} interleaved rounds)")
        print(f"  (a)  Detect canny (RGB)                       {ours:8.2f}")
        print(f"  (a2) Detect canny, opencv_canny_luma          {luma:8.2f}")
        print(f"  (b)  naive uint8 RGB path                     {base:8.2f}")
        print(f"  (c)  bare cv2.Canny on RGB uint8, 1 thread    {floor:8.2f}")
        print(f"  (c2) bare cv2.Canny on gray uint8, 1 thread   {gray_floor:8.2f}")
        if aux is not None:
            def run_aux(arrays, size=size):
                return [aux(a, LOW, HIGH, detect_resolution=size, image_resolution=size, output_type="np")
                        for a in arrays]

            aux_ms = timed(run_aux, u8, args.repeats) / n * 1000
            print(f"  (d)  controlnet-aux CannyDetector             {aux_ms:8.2f}   (a)/(d) = {ours / aux_ms:.2f}")
        # Ratios: the median of the per-round ratios (each round's cases ran back to back).
        print(f"  ratio (a)/(b)   = {round_ratio(samples, 'a', 'b'):.2f}")
        print(f"  ratio (a)/(c)   = {round_ratio(samples, 'a', 'c'):.2f}  (target <= 2.5)")
        print(f"  ratio (a2)/(c2) = {round_ratio(samples, 'a2', 'c2'):.2f}")
        if args.kornia and size == 512:
            comfy = comfyui_dir()
            if comfy is None:
                print("  (e) skipped: no ComfyUI tree found")
            else:
                import_comfyui(comfy)
                from comfy_extras.nodes_canny import Canny

                one = images[:1]
                start = time.perf_counter()
                Canny.execute(one, 0.4, 0.8)  # kornia: no meaningful warm-up, it is seconds per image
                kornia_ms = (time.perf_counter() - start) * 1000
                print(f"  (e) ComfyUI built-in Canny (kornia, CPU), 1 image: {kornia_ms:.0f} ms"
                      f" = {kornia_ms / ours:.0f}x Detect")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
