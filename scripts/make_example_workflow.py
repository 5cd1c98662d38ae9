"""Write example_workflows/detect_canny.json (Load Image -> Detect -> Save Image) from /object_info.

    python scripts/make_example_workflow.py            # starts ComfyUI via tests/comfy_host.py
    python scripts/make_example_workflow.py --object-info info.json

Widget values are the node's defaults in the order ComfyUI declares its inputs, so the graph
matches the schema built from the modality table; tests/test_example_workflow.py checks that the
committed file is still in step with a live server's /object_info.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "example_workflows" / "detect_canny.json"
SOCKET_TYPES = {"IMAGE", "MASK", "LATENT", "MODEL", "CONDITIONING"}


def widget_defaults(node_info: dict[str, Any]) -> list[Any]:
    """Default widget values of a node in the order the frontend lays its widgets out."""
    values = []
    spec = node_info["input"]
    for section in ("required", "optional"):
        for name in node_info.get("input_order", {}).get(section, list(spec.get(section, {}))):
            kind, *rest = spec[section][name]
            options = rest[0] if rest else {}
            if isinstance(kind, str) and (kind in SOCKET_TYPES or options.get("forceInput")):
                continue
            if isinstance(kind, list) or kind == "COMBO":
                choices = kind if isinstance(kind, list) else options.get("options", [])
                values.append(options.get("default", choices[0] if choices else ""))
            else:
                values.append(options.get("default", False if kind == "BOOLEAN" else 0 if kind in ("INT", "FLOAT")
                                          else ""))
            if options.get("control_after_generate"):
                values.append("fixed")
    return values


def build(object_info: dict[str, Any], modality: str = "canny") -> dict[str, Any]:
    detect = widget_defaults(object_info["ScenarioDetect"])
    detect[0] = modality
    outputs = object_info["ScenarioDetect"]["output"]
    return {
        "last_node_id": 3,
        "last_link_id": 2,
        "nodes": [
            {
                "id": 1, "type": "LoadImage", "pos": [40, 120], "size": [320, 360], "flags": {}, "order": 0,
                "mode": 0, "inputs": [],
                "outputs": [
                    {"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0},
                    {"name": "MASK", "type": "MASK", "links": None, "slot_index": 1},
                ],
                "properties": {"Node name for S&R": "LoadImage"},
                "widgets_values": ["example.png", "image"],
            },
            {
                "id": 2, "type": "ScenarioDetect", "pos": [400, 120], "size": [340, 360], "flags": {}, "order": 1,
                "mode": 0, "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
                "outputs": [
                    {"name": name, "type": kind, "links": [2] if index == 0 else None, "slot_index": index}
                    for index, (name, kind) in enumerate(zip(object_info["ScenarioDetect"]["output_name"], outputs,
                                                             strict=True))
                ],
                "properties": {"Node name for S&R": "ScenarioDetect"},
                "widgets_values": detect,
            },
            {
                "id": 3, "type": "SaveImage", "pos": [780, 120], "size": [360, 380], "flags": {}, "order": 2,
                "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": 2}], "outputs": [],
                "properties": {"Node name for S&R": "SaveImage"},
                "widgets_values": ["detect/canny"],
            },
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}},
        "version": 0.4,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--object-info", type=Path)
    args = parser.parse_args()
    if args.object_info:
        info = json.loads(args.object_info.read_text())
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        import comfy_host

        with comfy_host.start_server(comfy_host.ServerOptions()) as server:
            info = server.object_info()
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps(build(info), indent=2) + "\n")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
