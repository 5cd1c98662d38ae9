"""Render every modality on one test image into a labelled contact sheet (the README's first picture).

    python scripts/contact_sheet.py [IMAGE] [-o docs/images/contact_sheet.png] [--size 384] [--download]

Without IMAGE it uses the synthetic scene from benchmarks/scene.py. Each modality runs its default
(`auto`) local method through the same `run_detect` as the node. A method whose weights are not on
this machine gets a card instead of a map: its name, "weights not on this machine", the download
size (from the modality table) and "downloaded on first use". Nothing is downloaded unless
`--download` is given; any other failure stops the script (a broken method must not hide in a tile).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

HEADER = 26  # pixels of the black title bar on every tile
FONT = cv2.FONT_HERSHEY_SIMPLEX


def label(tile: np.ndarray, text: str) -> np.ndarray:
    out = tile.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], HEADER), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 19), FONT, 0.6, (255, 220, 80), 1, cv2.LINE_AA)
    return out


def card(height: int, width: int, modality: str, method: str, size: str) -> np.ndarray:
    """A tidy tile for a method whose weights are missing: centred lines on dark gray."""
    tile = np.full((height, width, 3), 48, np.uint8)
    cv2.rectangle(tile, (10, HEADER + 10), (width - 11, height - 11), (90, 90, 90), 1, cv2.LINE_AA)
    lines = [
        (method, 0.7, (255, 255, 255), 2),
        ("weights not on this machine", 0.5, (210, 210, 210), 1),
        (f"{size} download" if size else "download size: see docs/models.md", 0.5, (210, 210, 210), 1),
        ("downloaded on first use", 0.5, (150, 200, 255), 1),
    ]
    gap = 34
    top = HEADER + (height - HEADER - gap * (len(lines) - 1)) // 2
    for row, (text, scale, colour, thick) in enumerate(lines):
        (w, _), _ = cv2.getTextSize(text, FONT, scale, thick)
        cv2.putText(tile, text, ((width - w) // 2, top + row * gap), FONT, scale, colour, thick, cv2.LINE_AA)
    return label(tile, modality)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs/images/contact_sheet.png")
    parser.add_argument("--size", type=int, default=384, help="tile height in pixels")
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--download", action="store_true", help="download missing weights (default: never)")
    args = parser.parse_args()
    if not args.download:
        os.environ["SCENARIO_DETECT_OFFLINE"] = "1"  # read before the first lookup

    from scenario_detect.nodes.images import decode_image
    from scenario_detect.nodes.local.weights import WeightsUnavailable
    from scenario_detect.nodes.modalities import MODALITY_NAMES, resolve_local_method
    from scenario_detect.nodes.run import run_detect

    if args.image:
        frame = decode_image(args.image.read_bytes())
    else:
        from scene import make_scene

        frame = make_scene(args.size, args.size * 4 // 3)
    height = args.size
    width = round(frame.shape[1] * height / frame.shape[0])
    frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    tiles = [label((frame * 255).astype(np.uint8), "input")]
    maps_shown = 0
    for modality in MODALITY_NAMES:
        method = resolve_local_method(modality, "auto")
        try:
            maps = run_detect(torch.from_numpy(frame)[None], modality, {}).maps
        except WeightsUnavailable:
            tiles.append(card(height, width, modality, method.name, method.download))
            continue
        tiles.append(label((maps[0].numpy() * 255).round().astype(np.uint8), f"{modality} ({method.name})"))
        maps_shown += 1
    columns = args.columns
    rows = -(-len(tiles) // columns)
    sheet = np.zeros((rows * height, columns * width, 3), np.uint8)
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        sheet[r * height:(r + 1) * height, c * width:(c + 1) * width] = tile
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.output} ({sheet.shape[1]}x{sheet.shape[0]}: {maps_shown} maps, "
          f"{len(tiles) - 1 - maps_shown} weight cards)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
