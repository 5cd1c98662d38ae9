"""Render every locally available modality on one test image into a labelled contact sheet.

    python scripts/contact_sheet.py [IMAGE] [-o docs/images/contact_sheet.png] [--size 384]

Without IMAGE it uses the synthetic scene from benchmarks/scene.py. Modalities that cannot run
locally with the weights present on this machine are shown as a labelled gray tile with the reason.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def label(tile: np.ndarray, text: str, sub: str = "") -> np.ndarray:
    out = tile.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 26), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 220, 80), 1, cv2.LINE_AA)
    for row, line in enumerate(textwrap.wrap(sub, 40)[:6]):
        cv2.putText(out, line, (8, 60 + 20 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (230, 230, 230), 1, cv2.LINE_AA)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs/images/contact_sheet.png")
    parser.add_argument("--size", type=int, default=384, help="tile height in pixels")
    parser.add_argument("--columns", type=int, default=4)
    args = parser.parse_args()

    from scenario_detect.nodes.images import decode_image
    from scenario_detect.nodes.modalities import MODALITY_NAMES
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
    for modality in MODALITY_NAMES:
        try:
            maps = run_detect(torch.from_numpy(frame)[None], modality, {})
            tiles.append(label((maps[0].numpy() * 255).round().astype(np.uint8), modality))
        except Exception as error:  # a modality without local weights: show why, keep going
            gray = np.full((height, width, 3), 60, np.uint8)
            tiles.append(label(gray, modality, f"not available locally: {error}"))
    columns = args.columns
    rows = -(-len(tiles) // columns)
    sheet = np.zeros((rows * height, columns * width, 3), np.uint8)
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        sheet[r * height:(r + 1) * height, c * width:(c + 1) * width] = tile
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.output} ({sheet.shape[1]}x{sheet.shape[0]}, {len(tiles) - 1} modalities)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
