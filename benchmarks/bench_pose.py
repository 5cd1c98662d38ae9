"""DWPose beside OpenPose body, on the CPU: ms per image, DWPose's detector and pose stages apart.

    python benchmarks/bench_pose.py [--sizes 512,1024] [--repeats 5] [--people 1,5] [--threads 1]

Networks: DWPose's two TorchScript files written at full size with random weights (``dwpose_arch.py``: YOLOX-l
54.2 M parameters, RTMPose-l whole-body 33.6 M, the sizes of the released 217 MB and 135 MB files), traced and
loaded through the pack's real loader; OpenPose body from ``tests/model_weights.py`` (the release file format).
Speed does not depend on the weights' values, but a random detector finds no (or arbitrary) people, so the pose
stage is timed on N given person boxes and the total is detector + pose stage for N people.

Both methods see the image with its short side at 512 (``resolution``), so the input size changes little
besides the resize. Rows: median ms per image over ``--repeats`` warm calls, one image per call, wall clock and
CPU time of this process (all its threads: on a shared machine the wall time also counts waits for a core, and
with several threads the CPU time counts OpenMP threads spinning while they wait; ``--threads 1`` measures the
work itself):

openpose_body      the whole method through its entry function
dwpose detector    letterbox + YOLOX-l forward (640x640) + box decoding + NMS
  of which forward the network alone
dwpose pose N      N crops + RTMPose-l forward (batches of 5, zero-padded) + SimCC decode + mapping + drawing
dwpose total N     detector + pose N
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from scene import photo_batch  # noqa: E402


def median_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU (all threads of this process) milliseconds of ``fn`` after one warm-up call.

    The CPU time is what the work costs; on a shared machine the wall time also holds the waits for a core.
    """
    fn()  # warm: loads, allocator, first-call graph optimisation of the TorchScript executor
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000.0)
        cpu.append((time.process_time() - start_cpu) * 1000.0)
    return statistics.median(wall), statistics.median(cpu)


def write_networks(root: Path) -> None:
    import dwpose_arch
    import model_weights

    from scenario_detect.nodes.local import aux_detectors as ad
    from scenario_detect.nodes.local import dwpose

    torch.manual_seed(0)
    for spec, net, example in (
        (dwpose.DETECTOR, dwpose_arch.yolox_l(), torch.zeros(1, 3, 640, 640)),
        (dwpose.ESTIMATOR, dwpose_arch.rtmpose_l(), torch.zeros(5, 3, 384, 288)),
    ):
        path = root.joinpath(*spec.repo.split("/"), spec.filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.jit.save(torch.jit.trace(net, example), str(path))
    model_weights.write_random(ad.OPENPOSE_BODY, root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="512,1024")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--people", default="1,5", help="person counts for the pose stage")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (0: the default); 1: clean CPU times on a busy machine"
    )
    args = parser.parse_args()
    if args.threads:
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
    from scenario_detect.nodes.local import dwpose, load_method

    params = table.default_params()
    openpose = load_method(table.resolve_local_method("pose", "openpose_body"))
    detector = dwpose._load(dwpose.DETECTOR, "dwpose_detector")
    estimator = dwpose._load(dwpose.ESTIMATOR, "dwpose_estimator")
    people_counts = [int(n) for n in args.people.split(",") if n]

    print(f"CPU, {torch.get_num_threads()} torch threads, random weights at full size, median of {args.repeats}")
    print(f"{'size':>6}  {'row':<24}{'wall ms/img':>12}{'cpu ms/img':>12}")
    for size in (int(s) for s in args.sizes.split(",") if s):
        image = torch.from_numpy(np.stack(photo_batch(size, 1))).float().contiguous()
        with torch.inference_mode():
            rows = [("openpose_body", median_ms(lambda i=image: openpose(i, params), args.repeats))]
            rows += dwpose_rows(image, detector, estimator, people_counts, args.repeats)
        for name, (wall, cpu) in rows:
            print(f"{size:>6}  {name:<24}{wall:>12.0f}{cpu:>12.0f}")


def dwpose_rows(image: torch.Tensor, detector, estimator, people_counts: list[int], repeats: int) -> list:
    from scenario_detect.nodes.images import rgb_u8_at
    from scenario_detect.nodes.local import dwpose
    from scenario_detect.nodes.local.models import fit_size

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

    def forward_only() -> None:
        tensor, _ = dwpose.letterbox(np.ascontiguousarray(rgb[:, :, ::-1]))
        detector.module(torch.from_numpy(tensor)[None])

    det = median_ms(lambda: dwpose.detect_people(detector, rgb), repeats)
    rows = [("dwpose detector", det), ("  of which forward", median_ms(forward_only, repeats))]
    for n in people_counts:
        pose = median_ms(lambda n=n: pose_stage(n), repeats)
        total = (det[0] + pose[0], det[1] + pose[1])
        rows += [(f"dwpose pose {n}", pose), (f"dwpose total {n}", total)]
    return rows


if __name__ == "__main__":
    main()
