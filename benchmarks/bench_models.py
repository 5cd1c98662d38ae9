"""Model-backed (controlnet-aux network) local methods: first run, warm runs, batch vs single images.

    python benchmarks/bench_models.py [--size 512] [--repeats 3] [--methods mlsd_large,lineart]

Networks are the real architectures with random weights in the release file formats
(``tests/random_weights.py``, built once and cached): speed does not depend on the weights' values.
All runs on the CPU (``SCENARIO_DETECT_DEVICE=cpu``). Per method:

first   one image, cold: weight resolution + file read + strict load + inference (the model cache is
        cleared before; the one-off ``import controlnet_aux`` is timed separately, on its own line)
single  warm, one image per call, median ms per image over 4 calls x repeats (no load: asserted)
batch4  warm, one call with 4 images, ms per image (median of repeats)
usual   the path of existing packs, per image: float IMAGE -> uint8 numpy -> controlnet-aux's own
        detector ``__call__`` (same network objects, detect/image resolution 512) -> cv2.resize back
        to the input size -> float IMAGE (median ms per image)
Ratios: batch4/single (below 1: batching pays), first/single (what the first run costs extra),
usual/single (above 1: ours is faster) and single vs the modality's weight-free method.
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


def usual_path(method: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """controlnet-aux's detector object for ``method``, around the networks our cache holds."""
    import cv2
    import numpy as np

    from scenario_detect.nodes.local import aux_detectors as ad
    from scenario_detect.nodes.local.models import MODELS

    nets = {key[0]: MODELS.get(key[0], key[1], lambda p: None).module for key in MODELS.loaded()}
    import controlnet_aux as ca

    op = ad.aux("open_pose")
    calls = {
        "mlsd_large": lambda: (ca.MLSDdetector(nets["mlsd"]), {}),
        "pidinet_scribble": lambda: (ca.PidiNetDetector(nets["pidinet"]), {"scribble": True}),
        "hed_scribble": lambda: (ca.HEDdetector(nets["hed"]), {"scribble": True}),
        "lineart": lambda: (ca.LineartDetector(nets["lineart"], nets["lineart"]), {}),
        "lineart_coarse": lambda: (
            ca.LineartDetector(nets["lineart_coarse"], nets["lineart_coarse"]),
            {"coarse": True},
        ),
        "lineart_anime": lambda: (ca.LineartAnimeDetector(nets["lineart_anime"]), {}),
        "openpose_body": lambda: (ca.OpenposeDetector(_wrap(op.Body, nets["openpose_body"])), {}),
        "openpose_full": lambda: (
            ca.OpenposeDetector(
                _wrap(op.Body, nets["openpose_body"]),
                _wrap(op.Hand, nets["openpose_hand"]),
                _wrap(op.Face, nets["openpose_face"], face=True),
            ),
            {"hand_and_face": True},
        ),
    }
    if method not in calls:
        return None
    detector, kwargs = calls[method]()

    def run(images: torch.Tensor) -> torch.Tensor:
        outs = []
        for frame in images.numpy():
            u8 = (frame * 255.0 + 0.5).astype(np.uint8)
            out = detector(u8, detect_resolution=512, image_resolution=512, output_type="np", **kwargs)
            out = cv2.resize(out, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_LINEAR)
            outs.append(torch.from_numpy(out.astype(np.float32) / 255.0))
        return torch.stack(outs)

    return run


def _wrap(cls: type, net: torch.nn.Module, face: bool = False) -> object:
    obj = cls.__new__(cls)
    obj.model = net
    if face:
        from controlnet_aux.open_pose import face as face_module

        params = face_module.params
        obj.inference_size, obj.sigma = params["inference_img_size"], params["gaussian_sigma"]
        obj.threshold = params["heatmap_peak_thresh"]
    return obj


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
        f"{'batch4/single':>15}{'first/single':>14}{'usual ms/img':>14}{'usual/single':>14}"
        f"{'baseline':>12}{'base ms/img':>13}{'single/base':>13}"
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
            if not load_method(method).__module__.endswith(".aux_detectors") or (wanted and method.name not in wanted):
                continue
            fn = load_method(method)
            MODELS.clear()
            first = timed(lambda f=fn, p=params: f(one, p))
            loads = MODELS.load_count()
            singles = [timed(lambda f=fn, p=params: f(one, p)) for _ in range(4 * args.repeats)]
            batched = [timed(lambda f=fn, p=params: f(batch, p)) / 4 for _ in range(args.repeats)]
            assert MODELS.load_count() == loads, "a warm run loaded a network again"
            single, per_img = statistics.median(singles), statistics.median(batched)
            usual_ms = float("nan")
            usual = usual_path(method.name)
            if usual is not None:
                try:
                    usual(one)
                    usual_ms = statistics.median(timed(lambda u=usual: u(one)) for _ in range(2 * args.repeats))
                except Exception as exc:  # e.g. its hand drawing needs matplotlib
                    print(f"  ({method.name}: controlnet-aux's own path failed: {type(exc).__name__}: {exc})")
            print(
                f"{modality.name:<14}{method.name:<18}{first:>10.0f}{single:>15.0f}{per_img:>15.0f}"
                f"{per_img / single:>15.2f}{first / single:>14.1f}{usual_ms:>14.0f}{usual_ms / single:>14.2f}"
                f"{base_name:>12}{base_ms:>13.1f}{single / base_ms:>13.0f}"
            )
            MODELS.clear()


if __name__ == "__main__":
    main()
