"""Command line: the Detect node for pipelines outside ComfyUI.

    python -m scenario_detect photo.png --modality canny -o out/canny.png
    python -m scenario_detect a.png b.png --modality scribble -o out/
    python -m scenario_detect photo.png --modality pose -o out/pose.jpg --keypoints out/pose.json

Same table, same parameters and the same code path as the node; local backend by default. Options
are checked (ranges, pairs, method, output name) before anything heavy is imported or any file read.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .modalities import (
    AUTO_METHOD,
    BACKENDS,
    DEFAULT_BACKEND,
    MODALITIES,
    MODALITY_NAMES,
    NETWORK_PARAMS,
    PARAMS,
    REMOTE_OPTIONS,
    CheckedParams,
    Param,
    all_local_method_names,
    resolve_local_method,
    validation_errors,
)

# Output extension -> format written (OpenCV's encoders; WebP without a quality is lossless).
OUTPUT_FORMATS = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WebP (lossless)", ".bmp": "BMP",
    ".tif": "TIFF", ".tiff": "TIFF",
}
FOLDER_FORMAT = ".png"  # maps written into a folder


def plural(count: int, noun: str, many: str | None = None) -> str:
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def _in_range(param: Param) -> Callable[[str], int | float]:
    """An argparse type that parses a number and checks its range: one message per bad value."""
    kind = int if param.kind == "int" else float

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        problem = param.check(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


def _epilog() -> str:
    lines = ["modalities: parameters that apply; local methods (the first is what auto runs)"]
    for modality in MODALITIES.values():
        methods = ", ".join(m.name + ("" if m.needs_weights else " (weight-free)") for m in modality.local_methods)
        lines.append(f"  {modality.name}: {', '.join(modality.params) or 'no parameters'}; {methods or 'none'}")
    lines.append("output formats (by the extension of -o): " + ", ".join(OUTPUT_FORMATS))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scenario_detect", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Turn images into control maps (edges, depth, pose, ...).", epilog=_epilog(),
    )
    parser.add_argument("images", nargs="+", type=Path, help="input image file(s)")
    parser.add_argument("--modality", "-m", choices=MODALITY_NAMES, default="canny", help="(default: %(default)s)")
    parser.add_argument(
        "--local-method", choices=all_local_method_names(), default=AUTO_METHOD, metavar="METHOD",
        help="how the local backend computes the modality; each modality's methods are listed below "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
        help="local: on this machine; scenario: Scenario's API (key from SCENARIO_API_KEY and "
        "SCENARIO_API_SECRET, or ~/.config/scenario-detect/credentials.json) (default: %(default)s)",
    )
    parser.add_argument(
        "--output", "-o", type=Path, required=True,
        help="output file for one input (its extension picks the format, see below), or a folder for "
        f"several inputs: <name>_<modality>{FOLDER_FORMAT}, made unique if two inputs share a name",
    )
    parser.add_argument(
        "--keypoints", type=Path, default=None, metavar="JSON",
        help="also write the pose keypoints (ComfyUI's POSE_KEYPOINT value, OpenPose JSON in input-image "
        "pixels): one entry per input, in order, with its \"file\"; a failed input has \"error\" instead "
        "of people; non-pose modalities give no people",
    )
    for param in (*PARAMS.values(), *NETWORK_PARAMS.values()):  # --resolution: local networks only
        flag = "--" + param.name.replace("_", "-")
        if param.kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=param.default,
                                help=f"{param.tooltip} (default: %(default)s)")
        else:
            parser.add_argument(flag, type=_in_range(param), default=param.default, metavar=param.kind.upper(),
                                help=f"{param.tooltip} [{param.min:g}..{param.max:g}] (default: %(default)s)")
    for option in REMOTE_OPTIONS.values():  # only used with --backend scenario
        flag = "--" + option.name.replace("_", "-")
        if option.kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=option.default,
                                help=f"{option.tooltip} (default: %(default)s)")
        else:
            parser.add_argument(flag, type=int if option.kind == "int" else str, default=option.default,
                                help=f"{option.tooltip} (default: %(default)s)")
    return parser


def output_paths(inputs: list[Path], output: Path, modality: str) -> tuple[list[Path], list[str]]:
    """One output path per input, never twice the same, and a note for each renamed one.

    Raises ValueError for what cannot work: a file name for several inputs, an unknown extension.
    """
    if output.suffix.lower() in OUTPUT_FORMATS or (len(inputs) == 1 and output.suffix):
        if len(inputs) > 1:
            raise ValueError(f"-o {output} names one file but {len(inputs)} inputs were given; give a folder")
        if output.suffix.lower() not in OUTPUT_FORMATS:
            raise ValueError(f"-o {output}: cannot write {output.suffix} files; use one of "
                             f"{', '.join(OUTPUT_FORMATS)}, or a folder name without an extension")
        return [output], []
    natural = [f"{path.stem}_{modality}" for path in inputs]
    taken = {name.lower() for name in natural}
    seen: set[str] = set()
    targets, notes = [], []
    for source, name in zip(inputs, natural, strict=True):
        unique, count = name, 1
        while unique.lower() in seen or (unique != name and unique.lower() in taken):
            count += 1
            unique = f"{name}_{count}"
        seen.add(unique.lower())
        targets.append(output / f"{unique}{FOLDER_FORMAT}")
        if unique != name:
            notes.append(f"{source} is written to {targets[-1]}: another input already gives {name}{FOLDER_FORMAT}")
    return targets, notes


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[Path], list[str]]:
    """Options, output paths and notes; every problem with the options ends here (exit code 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    params = {name: getattr(args, name) for name in PARAMS}
    problems = validation_errors(args.modality, params)  # ranges passed argparse: only pairs remain
    try:
        if args.backend != "scenario":
            resolve_local_method(args.modality, args.local_method)
        targets, notes = output_paths(args.images, args.output, args.modality)
    except ValueError as error:
        problems.append(str(error))
    if problems:
        parser.error("; ".join(problems))
    return args, targets, notes


def detect_one(args: argparse.Namespace, source: Path, target: Path) -> list[dict[str, Any]]:
    """Read, detect, write one input; its POSE_KEYPOINT entries. Raises ValueError/OSError with a message."""
    import numpy as np
    import torch

    from .images import decode_image, encode_image
    from .run import DetectError, run_detect

    try:
        data = source.read_bytes()
    except OSError as error:
        raise DetectError(f"cannot read {source}: {error.strerror or error}") from None
    notes: list[str] = []
    frame = torch.from_numpy(decode_image(data, str(source), notes))[None]
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    # Checked once, by parse_args (argparse ranges, then the pairs): the backends take them as they are.
    params = CheckedParams(args.modality, {name: getattr(args, name) for name in (*PARAMS, *NETWORK_PARAMS)})
    if args.backend == "scenario":
        from .local.pose_keypoints import empty_frames
        from .scenario.entry import run_for_cli

        remote = {name: getattr(args, name) for name in REMOTE_OPTIONS}
        maps = run_for_cli(frame, args.modality, params, remote)
        found = empty_frames(*maps.shape[:3])  # the API returns only images
    else:
        maps, found = run_detect(frame, args.modality, params, args.local_method)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(encode_image(np.ascontiguousarray(maps[0].numpy()), target.suffix.lower()))
    print(f"{source} -> {target} ({args.modality}, {frame.shape[2]}x{frame.shape[1]})")
    return list(found)


def write_keypoints(path: Path, entries: list[dict[str, Any]]) -> bool:
    import json

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(entries))
    except OSError as error:
        print(f"error: cannot write {path}: {error.strerror or error}", file=sys.stderr)
        return False
    people = sum(len(entry.get("people", [])) for entry in entries)
    images = sum(1 for entry in entries if "error" not in entry)
    failed = len(entries) - images
    extra = f"; {plural(failed, 'failed input')}" if failed else ""
    print(f"keypoints -> {path} ({plural(people, 'person', 'people')} in {plural(images, 'image')}{extra})")
    return True


def summary(failed: list[Path], total: int) -> str:
    written = total - len(failed)
    rest = {0: "nothing was written", 1: "the other one was written"}.get(written, f"the other {written} were written")
    return f"error: {len(failed)} of {plural(total, 'input')} failed ({', '.join(map(str, failed))}); {rest}"


def main(argv: list[str] | None = None) -> int:
    """Exit code 0: every map written; 1: some inputs failed (the others were written); 2: none written."""
    args, targets, notes = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    from .local.weights import WeightsUnavailable

    failed: list[Path] = []
    entries: list[dict[str, Any]] = []  # one POSE_KEYPOINT entry per input, in input order
    stop_reason = ""
    for source, target in zip(args.images, targets, strict=True):
        if stop_reason:  # every later input would fail the same way: not tried
            failed.append(source)
            entries.append({"file": str(source), "error": f"not run: {stop_reason}"})
            continue
        try:
            entries += [{"file": str(source), **frame} for frame in detect_one(args, source, target)]
        except (ValueError, OSError) as error:  # OSError: missing weights, unreadable or unwritable files
            message = str(error) if str(source) in str(error) else f"{source}: {error}"
            print(f"error: {message}", file=sys.stderr)
            failed.append(source)
            entries.append({"file": str(source), "error": message})
            if isinstance(error, WeightsUnavailable):
                stop_reason = "the model weights are missing (see the first error)"
    keypoints_written = args.keypoints is None or write_keypoints(args.keypoints, entries)
    if failed:
        print(summary(failed, len(args.images)), file=sys.stderr)
    code = 0 if not failed else 1 if len(failed) < len(args.images) else 2
    return code if keypoints_written else max(code, 1)


if __name__ == "__main__":
    raise SystemExit(main())
