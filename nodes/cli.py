"""Command line: the Detect node for pipelines outside ComfyUI.

    python -m scenario_detect photo.png --modality canny -o canny.png
    python -m scenario_detect a.png b.png --modality scribble -o out_dir/
    python -m scenario_detect photo.png --modality pose -o pose.png --keypoints pose.json

Same table, same parameters and the same code path as the node; local backend by default.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .modalities import (
    AUTO_METHOD,
    BACKENDS,
    DEFAULT_BACKEND,
    MODALITIES,
    MODALITY_NAMES,
    PARAMS,
    REMOTE_OPTIONS,
    all_local_method_names,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scenario_detect",
        description="Turn images into control maps (edges, depth, pose, ...).",
        epilog="Parameters that apply per modality: "
        + "; ".join(f"{m.name}: {', '.join(m.params) or '-'}" for m in MODALITIES.values()),
    )
    parser.add_argument("images", nargs="+", type=Path, help="input image file(s)")
    parser.add_argument("--modality", "-m", choices=MODALITY_NAMES, default="canny")
    parser.add_argument("--local-method", choices=all_local_method_names(), default=AUTO_METHOD)
    parser.add_argument(
        "--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
        help="local: on this machine; scenario: Scenario's API (key from SCENARIO_API_KEY and "
        "SCENARIO_API_SECRET, or ~/.config/scenario-detect/credentials.json)",
    )
    parser.add_argument(
        "--output", "-o", type=Path, required=True,
        help="output PNG file (one input) or folder (several inputs: <name>_<modality>.png)",
    )
    parser.add_argument(
        "--keypoints", type=Path, default=None, metavar="JSON",
        help="also write the pose keypoints (ComfyUI's POSE_KEYPOINT value, OpenPose JSON in input-image "
        "pixels: a list with one entry per input image; no people for non-pose modalities)",
    )
    for param in PARAMS.values():
        flag = "--" + param.name.replace("_", "-")
        if param.kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=param.default,
                                help=param.tooltip)
        else:
            kind = int if param.kind == "int" else float
            parser.add_argument(flag, type=kind, default=param.default,
                                help=f"{param.tooltip} [{param.min:g}..{param.max:g}, default {param.default}]")
    for option in REMOTE_OPTIONS.values():  # only used with --backend scenario
        flag = "--" + option.name.replace("_", "-")
        if option.kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=option.default,
                                help=option.tooltip)
        else:
            parser.add_argument(flag, type=int if option.kind == "int" else str, default=option.default,
                                help=option.tooltip)
    return parser


def _output_paths(inputs: list[Path], output: Path, modality: str) -> list[Path]:
    if len(inputs) == 1 and output.suffix:
        return [output]
    return [output / f"{path.stem}_{modality}.png" for path in inputs]


def main(argv: list[str] | None = None) -> int:
    """Exit code 0: every map written; 1: some inputs failed (the others were written); 2: none written."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    import json

    import numpy as np
    import torch

    from .images import decode_image, encode_png
    from .local.weights import WeightsUnavailable
    from .modalities import resolve_local_method
    from .run import DetectError, check_params, run_detect

    params = {name: getattr(args, name) for name in PARAMS}
    targets = _output_paths(args.images, args.output, args.modality)
    try:  # problems with the options, not with a file: nothing is read
        params = check_params(args.modality, params)  # once: the backends take these as checked
        if args.backend != "scenario":
            resolve_local_method(args.modality, args.local_method)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed: list[Path] = []
    keypoints: list = []  # one POSE_KEYPOINT entry per map written, in input order
    for index, (source, target) in enumerate(zip(args.images, targets, strict=True)):
        try:
            try:
                data = source.read_bytes()
            except OSError as error:
                raise DetectError(f"cannot read {source}: {error.strerror or error}") from None
            notes: list[str] = []
            frame = decode_image(data, str(source), notes)
            for note in notes:
                print(f"note: {note}", file=sys.stderr)
            if args.backend == "scenario":
                from .local.pose_keypoints import empty_frames
                from .scenario.node_run import run_for_cli

                remote = {name: getattr(args, name) for name in REMOTE_OPTIONS}
                maps = run_for_cli(torch.from_numpy(frame)[None], args.modality, params, remote)
                found = empty_frames(*maps.shape[:3])  # the API returns only images
            else:
                maps, found = run_detect(torch.from_numpy(frame)[None], args.modality, params, args.local_method)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(encode_png(np.ascontiguousarray(maps[0].numpy())))
            keypoints += found
            print(f"{source} -> {target} ({args.modality}, {frame.shape[1]}x{frame.shape[0]})")
        except (ValueError, OSError) as error:  # OSError: missing weights, unreadable or unwritable files
            message = str(error)
            print(f"error: {message if str(source) in message else f'{source}: {message}'}", file=sys.stderr)
            failed.append(source)
            if isinstance(error, WeightsUnavailable):  # every other input would fail the same way
                failed += args.images[index + 1:]
                break
    if args.keypoints is not None and keypoints:
        try:
            args.keypoints.parent.mkdir(parents=True, exist_ok=True)
            args.keypoints.write_text(json.dumps(keypoints))
        except OSError as error:
            print(f"error: cannot write {args.keypoints}: {error.strerror or error}", file=sys.stderr)
            return 1
        people = sum(len(entry["people"]) for entry in keypoints)
        print(f"keypoints -> {args.keypoints} ({people} people in {len(keypoints)} images)")
    if not failed:
        return 0
    written = len(args.images) - len(failed)
    if written:
        print(f"error: {len(failed)} of {len(args.images)} inputs failed ({', '.join(map(str, failed))}); "
              f"the other {written} were written", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
