"""The node's schema on ComfyUI's real ``io.Schema``: search aliases and essentials category only where
the host's Schema declares them (later than 0.3.75), so older hosts keep loading the pack.

Runs in a subprocess with the provisioned ComfyUI tree on ``sys.path`` (as ComfyUI itself imports us).
A newer host is stood in for by a dataclass subclass of the real Schema with the two fields as later
ComfyUI releases declare them (``search_aliases: list[str]``, ``essentials_category: str | None``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import comfy_host

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import dataclasses, importlib.util, json, sys
comfy_dir, pack_dir = sys.argv[1], sys.argv[2]
sys.path.insert(0, comfy_dir)
import comfy.options; comfy.options.enable_args_parsing(False)
from comfy_api.latest import io
spec = importlib.util.spec_from_file_location("pack", pack_dir + "/__init__.py", submodule_search_locations=[pack_dir])
pack = importlib.util.module_from_spec(spec); sys.modules["pack"] = pack; spec.loader.exec_module(pack)
from pack.nodes import detect

report = {"this_host": detect.schema_extras(io.Schema)}
plain = detect.Detect.define_schema()
report["plain_type"] = type(plain).__name__

@dataclasses.dataclass
class NewerSchema(io.Schema):
    search_aliases: list[str] = dataclasses.field(default_factory=list)
    essentials_category: str | None = None

io.Schema = NewerSchema  # a host whose Schema has both fields
newer = detect.Detect.define_schema()
report["newer"] = {"type": type(newer).__name__, "search_aliases": newer.search_aliases,
                   "essentials_category": newer.essentials_category, "category": newer.category,
                   "outputs": [o.display_name for o in newer.outputs]}
print(json.dumps(report))
"""


def test_search_aliases_and_essentials_category_only_where_the_schema_has_them() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(comfy_host.comfyui_dir()), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["this_host"] == {}  # 0.3.75: neither field, nothing passed, the schema builds
    assert report["plain_type"] == "Schema"
    newer = report["newer"]
    assert newer["type"] == "NewerSchema" and newer["category"] == "image/preprocessors"
    assert newer["essentials_category"] == "Image Tools"  # where core files its Canny node
    aliases = newer["search_aliases"]
    assert {"canny", "edges", "depth map", "openpose", "normal map", "line art", "scribble", "segmentation",
            "controlnet preprocessor"} <= set(aliases)
    assert len(set(aliases)) == len(aliases) and all(a == a.lower() for a in aliases)
    assert newer["outputs"] == ["control_map", "asset_ids", "pose_keypoint"]
