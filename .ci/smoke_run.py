"""Smoke runs of the pack on the Python running this script (called by .ci/smoke, once per version's venv).

Four checks, each bounded in time (a 3.11-only call can hang a cloud run on 3.10 rather than fail it):
  local CLI      python -m scenario_detect in.png -m canny: a map at the input size, with edges
  cloud CLI      the same with --backend scenario against tests/fake_scenario.py: one billed job, map at size
  ComfyUI local  a real ComfyUI 0.3.75 (tests/comfy_host.py) runs LoadImage -> Detect (canny) -> SaveImage
  ComfyUI cloud  the same prompt with backend=scenario against the fake
Prints one line per check and appends a row to the markdown table given with --table. Exit 1 if any failed.
Only the pack's own dependencies are needed here (no pytest): the venvs hold what a user installs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

import numpy as np  # noqa: E402
from comfy_host import SCRUBBED_ENV, ComfyServer, ServerOptions, start_server  # noqa: E402
from fake_scenario import FakeScenario  # noqa: E402
from PIL import Image  # noqa: E402

CLI_TIMEOUT_S = 120  # a cloud run on the fake takes ~2 s; a hung one is stopped here
PROMPT_TIMEOUT_S = 120
GUARD_ENV = "SCENARIO_DETECT_TEST_GUARD"  # the pack's HTTP client refuses non-loopback hosts when set


def picture(path: Path) -> Path:
    """A 90x50 test image with hard edges (canny must find some)."""
    pixels = np.zeros((50, 90, 3), dtype=np.uint8)
    pixels[10:40, 20:70] = (230, 200, 40)
    pixels[:, 75:] = np.random.default_rng(3).integers(0, 255, (50, 15, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def check_map(path: Path, size: tuple[int, int]) -> None:
    with Image.open(path) as image:
        if image.size != size:
            raise AssertionError(f"map is {image.size}, the input {size}")
        if np.asarray(image.convert("L")).max() == 0:
            raise AssertionError("map is all black")


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    done = subprocess.run(
        [sys.executable, "-m", "scenario_detect", *args],
        env={**clean, **env}, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise AssertionError(f"exit {done.returncode}: {done.stderr.strip()[-600:]}")
    return done


def local_cli(work: Path, fake: FakeScenario, env: dict[str, str]) -> None:
    out = work / "local.png"
    run_cli([str(picture(work / "in.png")), "-m", "canny", "-o", str(out)], env)
    check_map(out, (90, 50))


def cloud_cli(work: Path, fake: FakeScenario, env: dict[str, str]) -> None:
    out, billed = work / "cloud.png", len(fake.billed_jobs)
    done = run_cli([str(picture(work / "in.png")), "--backend", "scenario", "-m", "canny", "-o", str(out)],
                   {**env, **fake.env()})
    check_map(out, (90, 50))
    if len(fake.billed_jobs) != billed + 1:
        raise AssertionError(f"{len(fake.billed_jobs) - billed} jobs billed, expected 1")
    if fake.key in done.stdout + done.stderr or fake.secret in done.stdout + done.stderr:
        raise AssertionError("the key or secret was printed")


def widget_defaults(server: ComfyServer) -> dict[str, Any]:
    values: dict[str, Any] = {}
    info = server.object_info("ScenarioDetect")["input"]
    for section in ("required", "optional"):
        for name, spec in info.get(section, {}).items():
            kind, options = spec[0], spec[1] if len(spec) > 1 else {}
            if isinstance(kind, list) or kind == "COMBO":
                values[name] = options.get("default", (kind if isinstance(kind, list) else options["options"])[0])
            elif kind in ("INT", "FLOAT", "BOOLEAN", "STRING"):
                values[name] = options.get("default")
    return values


def comfy_prompt(server: ComfyServer, work: Path, backend: str) -> None:
    name = server.upload_image(picture(work / "in.png"), name=f"smoke-{uuid.uuid4().hex[:8]}.png")
    inputs = {**widget_defaults(server), "modality": "canny", "backend": backend}
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "ScenarioDetect", "inputs": {**inputs, "image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": f"smoke-{backend}"}},
    }
    [path] = server.output_images(server.run(graph, timeout=PROMPT_TIMEOUT_S))
    check_map(path, (90, 50))


def attempt(label: str, check: Callable[[], None]) -> str:
    started = time.monotonic()
    try:
        check()
        result = "pass"
    except subprocess.TimeoutExpired:
        result = f"FAIL: no answer after {CLI_TIMEOUT_S} s"
    except Exception as error:  # noqa: BLE001 - every failure becomes a table cell
        first_line = str(error).splitlines()[0].split("; server log")[0] if str(error) else ""
        result = f"FAIL: {type(error).__name__}: {first_line[:160]}"
    print(f"   {label:<16} {result} ({time.monotonic() - started:.1f} s)", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, help="markdown table to append this Python's row to")
    args = parser.parse_args()
    version = ".".join(map(str, sys.version_info[:3]))
    results: list[str] = []
    with tempfile.TemporaryDirectory(prefix="smoke-") as tmp, FakeScenario(job_seconds=0.2) as fake:
        work, guard = Path(tmp), Path(tmp) / "guard.log"
        env = {GUARD_ENV: str(guard), "SCENARIO_DETECT_CACHE": "0",
               "XDG_CONFIG_HOME": str(work / "config"), "HF_HUB_OFFLINE": "1"}
        results.append(attempt("local CLI", lambda: local_cli(work, fake, env)))
        results.append(attempt("cloud CLI", lambda: cloud_cli(work, fake, env)))
        options = ServerOptions(env={**env, **fake.env()})
        try:
            with start_server(options, name=f"smoke-py{version}") as server:
                results.append(attempt("ComfyUI local", lambda: comfy_prompt(server, work, "local")))
                results.append(attempt("ComfyUI cloud", lambda: comfy_prompt(server, work, "scenario")))
        except Exception as error:  # noqa: BLE001 - the server did not start: both cells say why
            reason = f"FAIL: ComfyUI did not start: {str(error).splitlines()[0][:160]}"
            print(f"   ComfyUI          {reason}", flush=True)
            results += [reason] * (4 - len(results))
        if guard.exists() and guard.read_text().strip():
            results = [f"FAIL: a request left this machine: {guard.read_text().strip()[:160]}"] * 4
    if args.table:
        with args.table.open("a") as table:
            table.write(f"| {version} | " + " | ".join(r.replace("|", "/") for r in results) + " |\n")
    return 0 if all(r == "pass" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
