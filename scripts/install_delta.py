"""What ``pip install -r requirements.txt`` adds, upgrades or replaces in an existing ComfyUI 0.3.75 environment.

Builds a scratch venv the way a user's ComfyUI env is built (torch 2.14.1 + torchvision 0.29.1, then
ComfyUI 0.3.75's requirements.txt), then asks pip what our requirements.txt would change
(``pip install --dry-run --report``), in two cases:

  1. plain ComfyUI 0.3.75;
  2. the same with ``opencv-contrib-python`` already installed by another pack. pip sees no conflict (the
     two OpenCV wheels have different names) but both ship ``cv2/``: the one installed last overwrites the
     other's files. This case is then installed for real to show what happens to ``cv2`` (its version and
     the contrib-only modules) and that the README's fix gives them back.

    python scripts/install_delta.py                    # scratch venv in ~/.cache/scenario-detect/delta-venv
    python scripts/install_delta.py --venv /tmp/v      # elsewhere; --keep leaves it for inspection

Prints markdown tables (the README's "Installing into an existing ComfyUI" section).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))
from comfy_host import cache_dir, comfyui_dir  # noqa: E402

TORCH = ["torch==2.14.1", "torchvision==0.29.1"]
OPENCV_WHEELS = {"opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"}
# One call into each of several contrib-only modules: after an overwrite by a plain wheel, ``cv2.face`` and the
# others still import (their stub folders stay behind) but the functions are gone.
CONTRIB_CALLS = (
    "face.LBPHFaceRecognizer_create", "ximgproc.createFastLineDetector", "bgsegm.createBackgroundSubtractorMOG",
    "xphoto.createSimpleWB", "saliency.StaticSaliencySpectralResidual_create",
)
CONTRIB_PROBE = f"""
import cv2
works = 0
for call in {CONTRIB_CALLS!r}:
    module, function = call.split(".")
    try:
        getattr(getattr(cv2, module), function)()
        works += 1
    except Exception:
        pass
print(cv2.__version__, works)
"""


def pip(python: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(python), "-m", "pip", *args, "--disable-pip-version-check"],
                          capture_output=True, text=True, timeout=3600)
    if check and done.returncode != 0:
        raise SystemExit(f"pip {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


def installed(python: Path) -> dict[str, str]:
    listing = json.loads(pip(python, "list", "--format", "json").stdout)
    return {p["name"].lower().replace("_", "-"): p["version"] for p in listing}


def comfyui_env(venv: Path) -> Path:
    """A venv holding what ComfyUI 0.3.75 needs (torch pinned as .ci/run does; no torchaudio here)."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip(python, "install", "--quiet", *TORCH)
    reqs = [line.strip() for line in (comfyui_dir() / "requirements.txt").read_text().splitlines()]
    keep = [r for r in reqs if r and not r.startswith("#") and r.split("=")[0].split(">")[0] not in
            {"torch", "torchvision", "torchaudio"}]
    pip(python, "install", "--quiet", *keep)
    return python


def delta(python: Path) -> list[tuple[str, str, str, str]]:
    """(package, before, after, what) for each package the install would touch."""
    before = installed(python)
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        requirements = str(REPO_ROOT / "requirements.txt")
        pip(python, "install", "--dry-run", "--quiet", "--report", report.name, "-r", requirements)
        planned = json.loads(Path(report.name).read_text())["install"]
    rows = []
    for item in planned:
        name = item["metadata"]["name"].lower().replace("_", "-")
        version = item["metadata"]["version"]
        if name in before:
            rows.append((name, before[name], version, "upgrade" if version != before[name] else "reinstall"))
        elif name in OPENCV_WHEELS and OPENCV_WHEELS & before.keys():
            others = ", ".join(sorted(OPENCV_WHEELS & before.keys()))
            rows.append((name, "-", version, f"**overwrites cv2/ of {others}**"))
        else:
            rows.append((name, "-", version, "add"))
    return sorted(rows)


def table(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| package | installed | after | change |", "|---|---|---|---|"]
    lines += [f"| {name} | {old} | {new} | {what} |" for name, old, new, what in rows]
    return "\n".join(lines)


def probe_cv2(python: Path) -> str:
    done = subprocess.run([str(python), "-c", CONTRIB_PROBE], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return f"import cv2 fails: {done.stderr.strip().splitlines()[-1]}"
    version, works = done.stdout.split()
    return f"`cv2.__version__` {version}, {works} of {len(CONTRIB_CALLS)} contrib-only functions work"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=cache_dir() / "delta-venv")
    parser.add_argument("--keep", action="store_true", help="keep the scratch venv")
    args = parser.parse_args()
    started = time.monotonic()
    shutil.rmtree(args.venv, ignore_errors=True)  # a kept venv from an earlier run holds our packages already
    python = comfyui_env(args.venv)
    print(f"ComfyUI 0.3.75 env ready ({time.monotonic() - started:.0f} s): {python}\n")
    print("### 1. plain ComfyUI 0.3.75\n")
    print(table(delta(python)) + "\n")

    pip(python, "install", "--quiet", "opencv-contrib-python")
    contrib = installed(python)["opencv-contrib-python"]
    print(f"### 2. with opencv-contrib-python {contrib} installed by another pack\n")
    print(table(delta(python)) + "\n")
    print(f"- before our install: {probe_cv2(python)}")
    pip(python, "install", "--quiet", "-r", str(REPO_ROOT / "requirements.txt"))
    print(f"- after `pip install -r requirements.txt`: {probe_cv2(python)}")
    # The README's fix: drop the headless wheel, then put contrib's files back (it provides all of cv2).
    pip(python, "uninstall", "--quiet", "-y", "opencv-python-headless")
    pip(python, "install", "--quiet", "--force-reinstall", "--no-deps", f"opencv-contrib-python=={contrib}")
    print(f"- after the README's fix: {probe_cv2(python)}")
    if not args.keep:
        shutil.rmtree(args.venv, ignore_errors=True)
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
