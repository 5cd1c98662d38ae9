"""The example workflow stays in step with the node's schema and runs as an API prompt."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example_workflows" / "detect_canny.json"


def load_generator():
    script = ROOT / "scripts" / "make_example_workflow.py"
    spec = importlib.util.spec_from_file_location("make_example_workflow", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_workflow_matches_the_live_schema(comfy_server):
    committed = json.loads(EXAMPLE.read_text())
    expected = load_generator().build(comfy_server.object_info())
    assert committed == expected, "run: python scripts/make_example_workflow.py"
    detect = next(node for node in committed["nodes"] if node["type"] == "ScenarioDetect")
    assert detect["widgets_values"][0] == "canny"
