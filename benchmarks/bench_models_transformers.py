"""Depth / normal / segmentation through our detectors versus the usual transformers path, one run.

    python benchmarks/bench_models_transformers.py [--size 1024] [--batch 2] [--repeats 3] [--device cpu]

Networks are full-size, randomly initialised copies of the real architectures (Depth Anything V2
Small, UperNet ConvNeXt-tiny ADE20K) saved like the hub download: speed does not depend on the
weights' values, and no download is needed. Per image, median of repeats:

(a) our detector, IMAGE in -> IMAGE out (batched, torch pre/post-processing on the device)
(b) the usual path of existing packs: per image, uint8 -> PIL -> the repository's image processor
    -> network -> ``post_process_*`` -> map -> float IMAGE
(c) the bare network forward at the same resolution as (a) (the floor)
Prints milliseconds per image, (b)/(a), and (a)'s overhead over (c).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scene import photo_batch  # noqa: E402


def build_full_size(root: Path) -> None:
    """The real architectures (configs of the hub repositories) with random weights."""
    from transformers import (
        ConvNextConfig,
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        UperNetConfig,
        UperNetForSemanticSegmentation,
    )

    from scenario_detect.nodes.local import transformers_detectors as td

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import random_weights  # the preprocessor configs of the test folders match the real ones

    torch.manual_seed(0)
    depth = root.joinpath(*td.DEPTH_REPO.split("/"))
    backbone = Dinov2Config(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536, patch_size=14,
        image_size=518, out_indices=[3, 6, 9, 12], reshape_hidden_states=False, apply_layernorm=True,
    )  # fmt: skip
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=384, neck_hidden_sizes=[48, 96, 192, 384],
        fusion_hidden_size=64, head_hidden_size=32, patch_size=14,
    )  # fmt: skip
    DepthAnythingForDepthEstimation(config).save_pretrained(str(depth))
    seg = root.joinpath(*td.SEGMENTATION_REPO.split("/"))
    backbone = ConvNextConfig(
        depths=[3, 3, 9, 3], hidden_sizes=[96, 192, 384, 768], out_features=["stage1", "stage2", "stage3", "stage4"]
    )
    config = UperNetConfig(backbone_config=backbone, hidden_size=512, auxiliary_in_channels=384, num_labels=150)
    UperNetForSemanticSegmentation(config).save_pretrained(str(seg))
    # Only the preprocessor configs are taken from the test builders (the weights there are tiny).
    tiny = Path(tempfile.mkdtemp())
    for repo, folder in ((td.DEPTH_REPO, depth), (td.SEGMENTATION_REPO, seg)):
        built = random_weights.build(tiny, repo)
        (folder / "preprocessor_config.json").write_bytes((built / "preprocessor_config.json").read_bytes())


def timed(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: model load, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: the pack's choice)")
    args = parser.parse_args()
    if args.device:
        os.environ["SCENARIO_DETECT_DEVICE"] = args.device

    root = Path(tempfile.mkdtemp(prefix="bench-transformers-"))
    build_full_size(root)
    os.environ.update(SCENARIO_DETECT_MODELS_DIR=str(root), SCENARIO_DETECT_OFFLINE="1")

    from PIL import Image
    from transformers import AutoImageProcessor

    from scenario_detect.nodes.local import depth_maps
    from scenario_detect.nodes.local import transformers_detectors as td
    from scenario_detect.nodes.local.ade20k import ADE20K_PALETTE

    frames = photo_batch(args.size, args.batch)
    images = torch.from_numpy(np.stack(frames))
    palette = np.asarray(ADE20K_PALETTE, np.uint8)

    def usual_depth(normals: bool) -> torch.Tensor:
        loaded, folder = td.depth_model()
        processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
        network = loaded.module.network
        out = []
        for frame in frames:
            pil = Image.fromarray((frame * 255).astype(np.uint8))
            inputs = processor(images=pil, return_tensors="pt").to(loaded.device, loaded.dtype)
            with torch.inference_mode():
                outputs = network(**inputs)
            depth = processor.post_process_depth_estimation(outputs, target_sizes=[(args.size, args.size)])[0]
            depth = depth_maps.normalize_depth(depth["predicted_depth"][None].float().cpu())
            out.append(depth_maps.normals_from_depth(depth)[0] if normals else depth[0, ..., None].expand(-1, -1, 3))
        return torch.stack(out)

    def usual_segmentation() -> torch.Tensor:
        loaded, folder = td.segmentation_model()
        processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
        network = loaded.module.network
        out = []
        for frame in frames:
            pil = Image.fromarray((frame * 255).astype(np.uint8))
            inputs = processor(images=pil, return_tensors="pt").to(loaded.device, loaded.dtype)
            with torch.inference_mode():
                outputs = network(**inputs)
            labels = processor.post_process_semantic_segmentation(outputs, target_sizes=[(args.size, args.size)])[0]
            out.append(torch.from_numpy(palette[labels.cpu().numpy()].astype(np.float32) / 255.0))
        return torch.stack(out)

    def bare(model: Callable[[], tuple], resolution: int, multiple: int) -> Callable[[], object]:
        from scenario_detect.nodes.local.models import fit_size

        loaded, _ = model()
        size = fit_size(args.size, args.size, resolution, multiple)
        x = torch.rand(args.batch, 3, *size, device=loaded.device, dtype=loaded.dtype)

        def run() -> object:
            with torch.inference_mode():
                result = loaded.module(x)
            if loaded.device.type == "cuda":
                torch.cuda.synchronize()
            return result

        return run

    cases = [
        ("depth", lambda: td.depth_anything(images, {}), lambda: usual_depth(False),
         bare(td.depth_model, td.DEPTH_RESOLUTION, td.DEPTH_MULTIPLE)),
        ("normal", lambda: td.normal_from_depth_anything(images, {}), lambda: usual_depth(True),
         bare(td.depth_model, td.DEPTH_RESOLUTION, td.DEPTH_MULTIPLE)),
        ("segmentation", lambda: td.segmentation_ade20k(images, {}), usual_segmentation,
         bare(td.segmentation_model, td.SEGMENTATION_RESOLUTION, td.SEGMENTATION_MULTIPLE)),
    ]  # fmt: skip
    print(f"{args.batch} images of {args.size}x{args.size}, median of {args.repeats}, torch threads "
          f"{torch.get_num_threads()}, device {td.depth_model()[0].device}")  # fmt: skip
    print(f"{'modality':<13}{'ours ms/img':>13}{'usual ms/img':>14}{'bare fwd':>10}{'usual/ours':>12}{'overhead':>10}")
    for name, ours, usual, forward in cases:
        a = timed(ours, args.repeats) / args.batch * 1000
        b = timed(usual, args.repeats) / args.batch * 1000
        c = timed(forward, args.repeats) / args.batch * 1000
        print(f"{name:<13}{a:>13.0f}{b:>14.0f}{c:>10.0f}{b / a:>11.2f}x{(a - c) / c:>9.0%}")


if __name__ == "__main__":
    main()
