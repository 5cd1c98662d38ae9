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


def test_example_workflow_loads_in_the_frontend_and_runs(comfy_server):
    """The committed file through the real frontend: loadGraphData, then the prompt the UI would queue,
    run by the server (LoadImage's "example.png" is the README's example input, uploaded under that name)."""
    import pytest

    web_ui = pytest.importorskip("web_ui")
    problem = web_ui.browser_unavailable()
    if problem:
        pytest.skip(f"browser test skipped: {problem}")
    from PIL import Image

    source = ROOT / "docs" / "images" / "example_input.png"
    comfy_server.upload_image(source, name="example.png")
    workflow = json.loads(EXAMPLE.read_text())
    with web_ui.launch_browser() as browser, web_ui.comfy_page(browser, comfy_server.url) as ui:
        ui.evaluate("async (wf) => { await app.loadGraphData(wf); }", workflow)
        loaded = ui.evaluate(
            "(cls) => app.graph.findNodesByType(cls).map((n) => [n.outputs.map((o) => o.type), n.widgets[0].value])",
            web_ui.NODE_CLASS,
        )
        assert loaded == [[["IMAGE", "STRING", "POSE_KEYPOINT"], "canny"]]
        prompt = ui.evaluate("async () => (await app.graphToPrompt()).output")
    assert {node["class_type"] for node in prompt.values()} == {"LoadImage", "ScenarioDetect", "SaveImage"}
    [path] = comfy_server.output_images(comfy_server.run(prompt))
    import numpy as np

    with Image.open(source) as original, Image.open(path) as edges:
        assert edges.size == original.size
        assert (np.asarray(edges.convert("L")) == 255).any()  # edges found
