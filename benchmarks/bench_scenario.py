"""Scenario backend overhead against the fake server with a fixed 1 s job.

Baseline measured in the same run: one image. Then batches of 8 (at the default concurrency of 8,
and at 4). Prints wall times, the batch/single ratio (target: batch of 8 <= 1.5x single),
per-job overhead (job wall time minus the 1 s the fake needs) and polls per job. Uses the
production retry policy and poll schedule; the result cache is off. The fake runs in its own
process, as a real server would, so its work does not compete with the client for the GIL.
Images are 512x512 photo-like (smooth shapes plus light noise).

    python benchmarks/bench_scenario.py [--job-seconds 1.0] [--repeat 3]

``--cancel-latency N`` measures something else: in a real ComfyUI (started like the tests start it)
talking to the fake, N times: queue a Detect, wait until its job is polled in progress, press
Cancel (``POST /interrupt``), and time until the job's cancel request reaches the fake. Prints the
median and the worst.

    python benchmarks/bench_scenario.py --cancel-latency 20
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


def cancel_latency(count: int) -> int:
    """Seconds from Cancel in ComfyUI to the cancel request at Scenario, ``count`` times."""
    import uuid

    import comfy_host
    import numpy as np
    from fake_scenario import FakeScenario
    from PIL import Image

    times: list[float] = []
    with FakeScenario(job_seconds=60) as fake:
        options = comfy_host.ServerOptions(env={**fake.env(), "SCENARIO_DETECT_CACHE": "0"})
        with comfy_host.start_server(options, name="bench-cancel") as server:
            info = server.object_info("ScenarioDetect")["input"]
            defaults = {
                name: spec[1]["default"]
                for section in ("required", "optional")
                for name, spec in info.get(section, {}).items()
                if len(spec) > 1 and isinstance(spec[1], dict) and "default" in spec[1]
            }
            for i in range(count):
                fake.reset()
                fake.queue_outcome("stuck", stage="in-progress")
                pixels = np.random.default_rng(i).integers(0, 255, (64, 96, 3), dtype=np.uint8)
                name = server.upload_image(Image.fromarray(pixels), name=f"cancel-{uuid.uuid4().hex[:8]}.png")
                graph = {
                    "1": {"class_type": "LoadImage", "inputs": {"image": name}},
                    "2": {
                        "class_type": "ScenarioDetect",
                        "inputs": {**defaults, "image": ["1", 0], "backend": "scenario"},
                    },
                    "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
                }
                prompt_id = server.queue_prompt(graph)
                # Polled at least once in progress: the node is following a running job.
                fake.wait_until(
                    lambda: any(
                        r.method == "GET" and "/v1/jobs/" in r.path and r.answered.is_set() for r in fake.requests
                    )
                )
                pressed = time.monotonic()
                server.interrupt()
                fake.wait_until(lambda: bool(fake.canceled_jobs()), what="the cancel request")
                times.append(fake.requests_to("POST", "/action$")[0].at - pressed)
                try:
                    server.wait_for(prompt_id, timeout=60)
                except comfy_host.PromptFailed:
                    pass  # interrupted, as expected
    print(
        f"Cancel (POST /interrupt) -> cancel request at Scenario, {count} Cancels in ComfyUI: "
        f"median {statistics.median(times) * 1000:.0f} ms, worst {max(times) * 1000:.0f} ms"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-seconds", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cancel-latency", type=int, default=0, metavar="N", help="measure N Cancels in ComfyUI")
    args = parser.parse_args()
    if args.cancel_latency:
        return cancel_latency(args.cancel_latency)
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
