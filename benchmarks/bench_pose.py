"""DWPose on three runtimes beside OpenPose body, on the CPU, in one run: ms per image and ratios.

    python benchmarks/bench_pose.py [--sizes 512,1024] [--repeats 5] [--people 1,5] [--threads 2]

Needs the ``bench`` extra (onnxruntime, onnx) for the onnxruntime column; without it that column is skipped.

Networks: DWPose's two files written at full size with random weights in the released layout (``dwpose_nets``:
YOLOX-l 54.2 M parameters, RTMPose-l whole-body 33.6 M, the sizes of the released 217 MB and 135 MB files), traced
into TorchScript archives with the estimator's batch of 5 baked in, as released. OpenPose body from
``tests/model_weights.py`` (the release file format). Runtimes of the same two networks:

torchscript   the archives run as TorchScript, crops padded to the batch of 5 (the pack before issue 17)
eager         the pack's path: the archives' weights in the eager modules, BatchNorm folded, batch = people
onnxruntime   the eager modules exported to ONNX (dynamic batch), CPUExecutionProvider, same thread count

Speed does not depend on the weights' values, but a random detector finds arbitrary people, so the pose stage is
timed on N given person boxes and the total is detector + pose stage for N people. Both methods see the image
with its short side at 512 (``resolution``). Rows: median wall-clock ms per image over ``--repeats`` warm calls,
every runtime timed in turn within each repeat. The machine may be shared: compare the ratios, which come from
the same run and the same moments.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from scene import photo_batch  # noqa: E402


def interleaved_ms(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall-clock ms of each function, timed in turn within every repeat: on a shared machine the
    load drifts, and interleaving gives every runtime the same drift (the ratios are what count)."""
    for fn in fns.values():
        fn()  # warm: loads, allocator, the TorchScript executor's first-call optimisation
    wall: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            wall[name].append((time.perf_counter() - start) * 1000.0)
    return {name: statistics.median(times) for name, times in wall.items()}


def write_networks(root: Path) -> None:
    import dwpose_standins
    import model_weights

    from scenario_detect.nodes.local import aux_detectors as ad
    from scenario_detect.nodes.local import dwpose, dwpose_nets

    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    detector = dwpose_nets.Yolox().eval()
    estimator = dwpose_standins.FixedBatchRTMPose().eval()
    for net in (detector, estimator):
        dwpose_standins._randomise_batchnorm(net, generator, (1.0, 4.0))
    for spec, net, example in (
        (dwpose.DETECTOR, detector, torch.zeros(1, 3, 640, 640)),
        (dwpose.ESTIMATOR, estimator, torch.zeros(5, 3, 384, 288)),
    ):
        dwpose_standins._save(net, example, root.joinpath(*spec.repo.split("/"), spec.filename))
    model_weights.write_random(ad.OPENPOSE_BODY, root)


class OrtNet(torch.nn.Module):
    """An eager network exported to ONNX and run by onnxruntime; returns torch tensors like the module."""

    def __init__(self, module: torch.nn.Module, example: torch.Tensor, outputs: int, threads: int) -> None:
        import onnxruntime as ort

        super().__init__()
        names = [f"out{i}" for i in range(outputs)]
        axes = {"x": {0: "n"}, **{name: {0: "n"} for name in names}}
        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, (example,), buffer, dynamo=False, input_names=["x"], output_names=names, dynamic_axes=axes
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> Any:
        outs = [torch.from_numpy(o) for o in self.session.run(None, {"x": x.numpy()})]
        return outs[0] if len(outs) == 1 else tuple(outs)


def runtimes(threads: int) -> dict[str, tuple[Any, Any]]:
    """(detector, estimator) ``Loaded`` pairs per runtime, all from the same two files."""
    from scenario_detect.nodes.local import dwpose
    from scenario_detect.nodes.local.models import Loaded
    from scenario_detect.nodes.local.weights import weight_path

    def loaded(name: str, module: torch.nn.Module) -> Loaded:
        return Loaded((name, "", "cpu", "torch.float32"), module.eval(), torch.device("cpu"), torch.float32)

    def scripted(spec: dwpose.WeightFile, batch: int) -> Loaded:
        archive = torch.jit.load(str(weight_path(spec)), map_location="cpu")
        return loaded(spec.filename, dwpose.TorchScriptNet(archive, batch))

    detector = dwpose._load(dwpose.DETECTOR, "dwpose_detector")
    estimator = dwpose._load(dwpose.ESTIMATOR, "dwpose_estimator")
    found = {
        "torchscript": (scripted(dwpose.DETECTOR, 1), scripted(dwpose.ESTIMATOR, dwpose.POSE_BATCH)),
        "eager": (detector, estimator),
    }
    try:
        found["onnxruntime"] = (
            loaded("ort_det", OrtNet(detector.module, torch.zeros(1, 3, 640, 640), 1, threads)),
            loaded("ort_pose", OrtNet(estimator.module, torch.zeros(1, 3, 384, 288), 2, threads)),
        )
    except ImportError:
        print("onnxruntime/onnx not installed (pip install -e .[bench]): no onnxruntime column")
    return found


def agreement(pairs: dict[str, tuple[Any, Any]]) -> str:
    """Largest differences of each runtime's raw outputs from the TorchScript archives' on the same input."""
    from scenario_detect.nodes.local import dwpose

    image = torch.rand(1, 3, 640, 640) * 255
    crops = [np.random.default_rng(i).normal(size=(3, 384, 288)).astype(np.float32) for i in range(3)]
    ref_det, ref_pose = pairs["torchscript"][0].module(image), dwpose.estimate(pairs["torchscript"][1], crops)
    notes = []
    for name, (det, est) in pairs.items():
        if name != "torchscript":
            scores = float((det.module(image)[..., 4:] - ref_det[..., 4:]).abs().max())
            simcc = max(float(np.abs(a - b).max()) for a, b in zip(dwpose.estimate(est, crops), ref_pose, strict=True))
            notes.append(f"{name}: detector scores {scores:.1e}, simcc {simcc:.1e}")
    return "max difference from the TorchScript archives: " + "; ".join(notes)


def dwpose_stages(image: torch.Tensor, pair: tuple[Any, Any], people_counts: list[int]) -> dict[str, Callable]:
    """The detector stage and the pose stage for each person count, as functions to time."""
    from scenario_detect.nodes.images import rgb_u8_at
    from scenario_detect.nodes.local import dwpose
    from scenario_detect.nodes.local.models import fit_size

    detector, estimator = pair
    h, w = fit_size(image.shape[1], image.shape[2], 512, 1)
    rgb = rgb_u8_at(image[0].numpy(), (h, w))

    def pose_stage(n: int) -> None:
        crops, where = [], []
        for i in range(n):  # upright boxes side by side, as people in a group photo
            left = w * (0.1 + 0.15 * (i % 5))
            center, scale = dwpose.box_to_center_scale(np.array([left, h * 0.1, left + w * 0.2, h * 0.9]))
            crops.append(dwpose.crop_person(rgb, center, scale))
            where.append((center, scale))
        simcc_x, simcc_y = dwpose.estimate(estimator, crops)
        locs, scores = dwpose.simcc_decode(simcc_x, simcc_y)
        people = []
        for (center, scale), loc, score in zip(where, locs, scores, strict=True):
            people += dwpose.to_openpose(dwpose.crop_to_image(loc, center, scale)[None], score[None])
        dwpose.draw(people, 0.0, h, w)

    stages: dict[str, Callable] = {"detector": lambda: dwpose.detect_people(detector, rgb)}
    for n in people_counts:
        stages[f"pose {n}"] = lambda n=n: pose_stage(n)
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="512,1024")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--people", default="1,5", help="person counts for the pose stage")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch and onnxruntime threads (1: on a shared machine, OpenMP waits)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    root = Path(tempfile.mkdtemp(prefix="bench-pose-"))
    os.environ.update(
        SCENARIO_DETECT_MODELS_DIR=str(root),
        SCENARIO_DETECT_OFFLINE="1",
        HF_HUB_CACHE=str(root / ".empty-hf-cache"),
        AUX_ANNOTATOR_CKPTS_PATH=str(root / ".no-ckpts"),
        SCENARIO_DETECT_DEVICE="cpu",
    )
    write_networks(root)
    from scenario_detect.nodes import modalities as table
    from scenario_detect.nodes.local import load_method

    params = table.default_params()
    openpose = load_method(table.resolve_local_method("pose", "openpose_body"))
    people_counts = [int(n) for n in args.people.split(",") if n]
    with torch.inference_mode():
        pairs = runtimes(args.threads)
        print(
            f"CPU, {args.threads} threads (torch and onnxruntime), full-size random weights, median of {args.repeats}"
        )
        print(agreement(pairs))
        for size in (int(s) for s in args.sizes.split(",") if s):
            image = torch.from_numpy(np.stack(photo_batch(size, 1))).float().contiguous()
            fns: dict[str, Callable] = {"openpose_body": lambda i=image: openpose(i, params)}
            for name, pair in pairs.items():
                fns.update({(name, row): fn for row, fn in dwpose_stages(image, pair, people_counts).items()})
            times = interleaved_ms(fns, args.repeats)
            columns = {
                name: {row: times[(name, row)] for row in ["detector", *(f"pose {n}" for n in people_counts)]}
                for name in pairs
            }
            for column in columns.values():
                for n in people_counts:
                    column[f"total {n}"] = column["detector"] + column[f"pose {n}"]
            print_table(size, times["openpose_body"], columns, people_counts)


def print_table(size: int, openpose_ms: float, columns: dict[str, dict[str, float]], people: list[int]) -> None:
    names = list(columns)
    print(f"\n{size} px input (network side 512): ms per image")
    print(f"| {'row':<14} | " + " | ".join(f"{n:>11}" for n in names) + " |")
    print("|" + "---|" * (len(names) + 1))
    for row in columns["eager"]:
        print(f"| {'dwpose ' + row:<14} | " + " | ".join(f"{columns[n][row]:>11.0f}" for n in names) + " |")
    print(f"| {'openpose_body':<14} | {openpose_ms:>11.0f} |")
    for n in people:
        eager = columns["eager"][f"total {n}"]
        ratios = [f"eager / torchscript {eager / columns['torchscript'][f'total {n}']:.2f}x"]
        if "onnxruntime" in columns:
            ratios.append(f"eager / onnxruntime {eager / columns['onnxruntime'][f'total {n}']:.2f}x")
        ratios.append(f"eager / openpose_body {eager / openpose_ms:.2f}x")
        print(f"{size} px, {n} {'person' if n == 1 else 'people'}: total " + ", ".join(ratios))


if __name__ == "__main__":
    main()
