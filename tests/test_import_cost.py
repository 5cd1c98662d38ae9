"""Loading the pack must stay light: no heavy optional library is imported at start-up."""

import json
import subprocess
import sys
from pathlib import Path

import comfy_host

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["controlnet_aux", "transformers", "httpx", "timm", "scenario_sdk", "huggingface_hub", "onnxruntime",
         "mediapipe", "skimage", "matplotlib"]

# Loads the pack as ComfyUI does (a package from the folder path, then comfy_entrypoint, the node
# list and the schema), and reports which heavy modules the pack added on top of ComfyUI's own.
PROBE = r"""
import asyncio, importlib.util, json, sys
comfy_dir, pack_dir, heavy = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path.insert(0, comfy_dir)
import comfy.options; comfy.options.enable_args_parsing(False)
from comfy_api.latest import io  # noqa: F401  (what ComfyUI has loaded before any pack)
before = {name for name in heavy if name in sys.modules}
spec = importlib.util.spec_from_file_location("scenario_detect_pack", pack_dir + "/__init__.py",
                                              submodule_search_locations=[pack_dir])
pack = importlib.util.module_from_spec(spec)
sys.modules["scenario_detect_pack"] = pack
spec.loader.exec_module(pack)
extension = asyncio.run(pack.comfy_entrypoint())
nodes = asyncio.run(extension.get_node_list())
node_ids = [node.GET_SCHEMA().node_id for node in nodes]
after = {name for name in heavy if name in sys.modules}
print(json.dumps({"added": sorted(after - before), "nodes": node_ids,
                  "web": pack.WEB_DIRECTORY}))
"""


def test_plain_import_and_cli_parser_stay_light():
    code = (
        "import sys, json; import scenario_detect; from scenario_detect.nodes import cli, modalities;"
        "cli.build_parser(); heavy = json.loads(sys.argv[1]);"
        "print(json.dumps(sorted(h for h in heavy + ['torch', 'cv2'] if h in sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code, json.dumps(HEAVY)], capture_output=True, text=True,
                            check=True)
    assert json.loads(result.stdout) == []


def test_loading_the_pack_in_comfyui_imports_no_heavy_library():
    comfy_dir = comfy_host.comfyui_dir()
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(comfy_dir), str(ROOT), json.dumps(HEAVY)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["nodes"] == ["ScenarioDetect"]
    assert report["web"] == "./web"
    assert report["added"] == []
