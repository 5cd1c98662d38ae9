"""Scenario backend overhead against the fake server with a fixed 1 s job.

Baseline measured in the same run: one image. Then batches of 8 (at the default concurrency of 8,
and at 4). Prints wall times, the batch/single ratio (target: batch of 8 <= 1.5x single),
per-job overhead (job wall time minus the 1 s the fake needs) and polls per job. Uses the
production retry policy and poll schedule; the result cache is off. The fake runs in its own
process, as a real server would, so its work does not compete with the client for the GIL.
Images are 512x512 photo-like (smooth shapes plus light noise).

    python benchmarks/bench_scenario.py [--job-seconds 1.0] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402

from scenario_detect.nodes.scenario.backend import run_scenario  # noqa: E402
from scenario_detect.nodes.scenario.credentials import Credentials  # noqa: E402


def _images(batch: int, size: int = 512) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    frames = []
    for i in range(batch):
        disc = ((x - 0.3 - 0.05 * i) ** 2 + (y - 0.5) ** 2 < 0.04).float()
        base = torch.stack([x, y, 0.5 + 0.5 * torch.sin(6 * math.pi * x * y + i)], dim=-1) * 0.7 + 0.3 * disc[..., None]
        frames.append(base)
    noise = torch.rand(batch, size, size, 3, generator=torch.Generator().manual_seed(batch)) * 0.03
    return (torch.stack(frames) + noise).clamp(0, 1)


def _run(creds: Credentials, batch: int, concurrency: int) -> tuple[float, list[float], list[int]]:
    images = _images(batch)
    started = time.perf_counter()
    result = asyncio.run(run_scenario(images, "canny", {}, credentials=creds, use_cache=False, concurrency=concurrency))
    wall = time.perf_counter() - started
    return wall, result.stats["job_seconds"], result.stats["polls"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-seconds", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fake_scenario.py"), "--job-seconds", str(args.job_seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        env = json.loads(fake.stdout.readline())
        creds = Credentials(env["SCENARIO_API_KEY"], env["SCENARIO_API_SECRET"], env["SCENARIO_BASE_URL"], "bench")
        _run(creds, 1, 1)  # warm-up: imports, first connection
        rows = {}
        for label, batch, concurrency in (
            ("single", 1, 1),
            ("batch 8, concurrency 8 (default)", 8, 8),
            ("batch 8, concurrency 4", 8, 4),
        ):
            walls, overheads, polls = [], [], []
            for _ in range(args.repeat):
                wall, job_seconds, job_polls = _run(creds, batch, concurrency)
                walls.append(wall)
                overheads += [s - args.job_seconds for s in job_seconds]
                polls += job_polls
            rows[label] = (statistics.median(walls), statistics.mean(overheads), statistics.mean(polls))
    finally:
        fake.stdin.close()
        fake.wait(timeout=10)
    single = rows["single"][0]
    print(
        f"fake job duration: {args.job_seconds:g} s, 512x512 images, median of {args.repeat} runs; "
        "overhead/job = job wall time (POST to decoded result) minus the job duration"
    )
    print(f"{'run':<34}{'wall s':>8}{'x single':>10}{'overhead/job s':>16}{'polls/job':>11}")
    for label, (wall, overhead, polls) in rows.items():
        print(f"{label:<34}{wall:>8.2f}{wall / single:>10.2f}{overhead:>16.2f}{polls:>11.1f}")
    ratio = rows["batch 8, concurrency 8 (default)"][0] / single
    verdict = "OK" if ratio <= 1.5 else "TOO SLOW"
    print(f"batch of 8 / single = {ratio:.2f} (target <= 1.5): {verdict}")
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
