"""Screenshots of the Detect node in ComfyUI's real frontend, for the README.

    python scripts/screenshot_node.py [--modality canny --modality grayscale] [-o docs/images]

Starts ComfyUI with this pack (as the tests do: 0.3.75 from ~/.cache/scenario-detect, or
$COMFYUI_DIR), opens it in headless Chromium (/usr/bin/chromium or $CHROMIUM_PATH, through the
Python `playwright` package), adds a Detect node per modality and saves `detect_<modality>.png`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the server and browser helpers the tests use

import comfy_host  # noqa: E402
import web_ui  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", action="append", help="repeatable; default: canny and grayscale")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--scale", type=float, default=2.0, help="device pixel ratio of the screenshots")
    args = parser.parse_args(argv)
    problem = web_ui.browser_unavailable()
    if problem:
        print(f"cannot take screenshots: {problem}", file=sys.stderr)
        return 1
    modalities = args.modality or ["canny", "grayscale"]
    with comfy_host.start_server() as server, web_ui.launch_browser() as browser:
        with web_ui.comfy_page(browser, server.url, scale=args.scale) as page:
            for modality in modalities:
                page.clear_graph()
                node = page.add_detect_node()
                page.set_widget(node, "modality", modality)
                path = page.screenshot_node(node, args.output / f"detect_{modality}.png")
                print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
