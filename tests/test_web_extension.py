"""The web extension (web/detect_widgets.js) in ComfyUI's real frontend, in headless Chromium.

The shared ComfyUI server (0.3.75 with its frontend package, or ``$COMFYUI_DIR``) serves the pack;
the page adds a Detect node, switches modality (and backend, when the node has one) and the test
reads which widgets the frontend considers visible. The expected set comes from the same table
(``widget_visibility.widget_rules``), so this checks the JS against the Python, not a third copy.
Screenshots land in ``tests/artifacts/``.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

import comfy_host
import pytest

# Its server setup starts the fake Scenario server for the shared ComfyUI (registering it again,
# when pytest collects that module too, is a no-op); the status test below runs against it.
import test_scenario_comfyui as scenario_tests
import web_ui
from comfy_host import ARTIFACTS_DIR, REPO_ROOT, ComfyServer

from scenario_detect.nodes import modalities as table
from scenario_detect.nodes.widget_visibility import local_method_choices, network_method_rules, widget_rules

pytestmark = [pytest.mark.browser, pytest.mark.comfyui]

# Opt-in: run the browser tests against another frontend build (e.g. the newest
# comfyui-frontend-package's static/ folder) instead of the one the ComfyUI checkout ships.
FRONTEND_ROOT = os.environ.get("COMFYUI_FRONTEND_ROOT")


@comfy_host.register_server_setup
def _frontend_root(options: comfy_host.ServerOptions, stack: contextlib.ExitStack) -> None:
    if FRONTEND_ROOT:
        options.args += ["--front-end-root", FRONTEND_ROOT]


def _shots_folder() -> str:
    """tests/artifacts/web (the frontend ComfyUI pins), web-frontend-<version> for a frontend from
    comfy_host.newest_frontend_root(), web-custom-frontend for any other --front-end-root."""
    if not FRONTEND_ROOT:
        return "web"
    parent = os.path.basename(os.path.dirname(os.path.abspath(FRONTEND_ROOT)))
    return f"web-{parent}" if parent.startswith("frontend-") else "web-custom-frontend"


SHOTS = ARTIFACTS_DIR / _shots_folder()


_UNAVAILABLE = web_ui.browser_unavailable()
if _UNAVAILABLE:
    pytestmark.append(pytest.mark.skip(reason=f"browser test skipped: {_UNAVAILABLE}"))


def expected_visible(
    all_widgets: list[str], modality: str, backend: str | None, method: str | None = "auto"
) -> list[str]:
    rules = widget_rules()
    for_methods = network_method_rules()
    shown = []
    for name in all_widgets:
        rule = rules.get(name)
        if rule is None:
            shown.append(name)
        elif modality in rule["modalities"] and (backend is None or backend in rule["backends"]):
            # The network options (resolution) also follow the method: only a network's.
            if name not in table.NETWORK_PARAMS or method is None or method in for_methods.get(modality, []):
                shown.append(name)
    return shown


def expected_for(state: dict[str, Any], modality: str, backend: str | None) -> list[str]:
    """The widgets a node in ``state`` should show, its method read from the node."""
    return expected_visible(state["all"], modality, backend, state["values"].get("local_method"))


@pytest.fixture(scope="module")
def browser() -> Any:
    with web_ui.launch_browser() as browser:
        yield browser


@pytest.fixture
def ui(browser: Any, comfy_server: ComfyServer) -> Any:
    with web_ui.comfy_page(browser, comfy_server.url) as page:
        page.clear_graph()
        yield page
        assert page.extension_errors() == [], "\n".join(page.extension_errors())


def test_extension_reads_rules_from_node_definition(ui: web_ui.ComfyPage) -> None:
    rules = ui.evaluate(
        "(cls) => Object.fromEntries(LiteGraph.registered_node_types[cls].detectWidgetRules ?? [])",
        web_ui.NODE_CLASS,
    )
    node_inputs = set(
        ui.evaluate(
            "(cls) => { const n = LiteGraph.createNode(cls); return n.widgets.map((w) => w.name); }",
            web_ui.NODE_CLASS,
        )
    )
    expected = {name: rule for name, rule in widget_rules().items() if name in node_inputs}
    for name in table.NETWORK_PARAMS:  # they also carry, per modality, the methods they apply to
        expected[name] = {**expected[name], "methods": network_method_rules()}
    assert rules == expected


def test_each_modality_shows_only_its_widgets(ui: web_ui.ComfyPage) -> None:
    node = ui.add_detect_node()
    state = ui.node_state(node)
    backend = state["values"].get("backend")
    for modality in table.MODALITY_NAMES:
        ui.set_widget(node, "modality", modality)
        state = ui.node_state(node)
        assert state["visible"] == expected_for(state, modality, backend), modality
        # Resized to fit: the height is the frontend's own minimum for the visible widgets.
        assert state["size"][1] == pytest.approx(state["min_size"][1], abs=1), modality

    # The examples, spelled out.
    ui.set_widget(node, "modality", "canny")
    visible = set(ui.node_state(node)["visible"])
    assert {"low_threshold", "high_threshold"} <= visible
    assert not visible & {"factor", "min_threshold", "max_threshold", "remove_background", "keypoint_threshold"}
    ui.set_widget(node, "modality", "grayscale")
    visible = set(ui.node_state(node)["visible"])
    assert {"factor", "min_threshold", "max_threshold", "remove_background"} <= visible
    assert not visible & {"low_threshold", "high_threshold", "keypoint_threshold"}
    ui.set_widget(node, "modality", "pose")
    assert "keypoint_threshold" in ui.node_state(node)["visible"]

    canny_height = _height_for(ui, node, "canny")
    grayscale_height = _height_for(ui, node, "grayscale")
    depth_height = _height_for(ui, node, "depth")
    assert depth_height < canny_height < grayscale_height  # 0, 2 and 4 tuning widgets


def _height_for(ui: web_ui.ComfyPage, node: int, modality: str) -> float:
    ui.set_widget(node, "modality", modality)
    return ui.node_state(node)["size"][1]


def test_backend_switch_hides_local_and_remote_only_widgets(ui: web_ui.ComfyPage) -> None:
    node = ui.add_detect_node()
    state = ui.node_state(node)
    if "backend" not in state["all"]:
        pytest.skip("this Detect node has no backend widget yet")
    for backend in ("local", "scenario"):
        ui.set_widget(node, "backend", backend)
        for modality in ("canny", "depth"):
            ui.set_widget(node, "modality", modality)
            state = ui.node_state(node)
            assert state["visible"] == expected_for(state, modality, backend), (backend, modality)
    ui.set_widget(node, "backend", "scenario")
    assert "local_method" not in ui.node_state(node)["visible"]


def test_resolution_shows_for_local_network_methods_only(ui: web_ui.ComfyPage) -> None:
    node = ui.add_detect_node()
    assert ui.node_state(node)["all"][-1] == "resolution"  # the last widget: saved values keep their places
    # (modality, method, backend, shown)
    cases = [
        ("canny", "auto", "local", False),  # weight-free only
        ("depth", "auto", "local", True),  # auto is a network
        ("depth", "auto", "scenario", False),  # the API has no such field
        ("mlsd", "auto", "local", False),  # auto is the weight-free opencv_lsd
        ("mlsd", "mlsd_large", "local", True),
        ("scribble", "xdog", "local", False),
        ("pose", "auto", "local", True),
        ("pose", "openpose_body", "local", True),
    ]
    for modality, method, backend, shown in cases:
        ui.set_widget(node, "backend", backend)
        ui.set_widget(node, "modality", modality)
        if backend == "local":
            ui.set_widget(node, "local_method", method)  # the method combo's callback re-applies the rules
        state = ui.node_state(node)
        assert ("resolution" in state["visible"]) is shown, (modality, method, backend)
        assert state["visible"] == expected_for(state, modality, backend), (modality, method, backend)


def test_workflow_saved_before_resolution_loads_with_its_values_and_the_default(ui: web_ui.ComfyPage) -> None:
    node = ui.add_detect_node()
    ui.set_widget(node, "modality", "depth")
    ui.set_widget(node, "timeout_s", 120)
    workflow = ui.evaluate("() => app.graph.serialize()")
    saved = next(n for n in workflow["nodes"] if str(n["id"]) == str(node))
    names = ui.node_state(node)["all"]
    assert names[-1] == "resolution"
    saved["widgets_values"] = saved["widgets_values"][: names.index("resolution")]  # as saved before it existed
    ui.evaluate("async (wf) => { await app.loadGraphData(wf); }", workflow)
    [loaded] = ui.evaluate("(cls) => app.graph.findNodesByType(cls).map((n) => n.id)", web_ui.NODE_CLASS)
    values = ui.node_state(loaded)["values"]
    assert (values["modality"], values["timeout_s"], values["resolution"]) == ("depth", 120, 512)
    prompt = ui.evaluate("async () => (await app.graphToPrompt()).output")
    assert prompt[str(loaded)]["inputs"]["resolution"] == 512


def test_vue_nodes_mode_shows_only_the_widgets_that_apply(ui: web_ui.ComfyPage) -> None:
    """Frontends >= 1.2x can draw nodes as Vue components ("Nodes 2.0"): same rules there."""
    has_vue_nodes = ui.evaluate("() => 'vueNodesMode' in LiteGraph")
    if not has_vue_nodes:
        pytest.skip("this frontend has no Vue nodes mode")
    ui.set_setting("Comfy.VueNodes.Enabled", True)
    try:
        ui.page.wait_for_function("() => LiteGraph.vueNodesMode === true", timeout=10_000)
        node = ui.add_detect_node()
        ui.page.wait_for_selector(f'[data-node-id="{node}"]', timeout=10_000)
        # Frontend 1.32's (beta) Vue nodes keep a snapshot of the widgets after the first edit of a
        # node and re-read them on no later event an extension can raise: only the first change
        # shows there (docs/web.md). Newer frontends follow every change.
        version = ui.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ ?? ''")
        sequence = ["grayscale"] if version.startswith("1.32.") else ["grayscale", "pose", "canny", "depth"]
        state = ui.node_state(node)
        assert ui.vue_node_text(node), "the node is not drawn as a Vue component"
        for modality in sequence:
            ui.set_widget(node, "modality", modality)
            state = ui.node_state(node)
            expected = expected_for(state, modality, state["values"].get("backend"))
            shown: list[str] = []
            for _ in range(20):  # Vue renders asynchronously
                ui.page.wait_for_timeout(100)
                lines = ui.vue_node_text(node) or []
                shown = [name for name in state["all"] if name in lines]
                if shown == expected:
                    break
            assert shown == expected, modality
        ui.screenshot_node(node, SHOTS / "detect_vue_nodes.png")
    finally:
        ui.set_setting("Comfy.VueNodes.Enabled", False)


def test_hidden_widgets_keep_values_and_are_sent(ui: web_ui.ComfyPage) -> None:
    node = ui.add_detect_node()
    ui.set_widget(node, "modality", "canny")
    ui.set_widget(node, "low_threshold", 42)
    ui.set_widget(node, "modality", "grayscale")
    state = ui.node_state(node)
    assert "low_threshold" not in state["visible"]
    assert state["values"]["low_threshold"] == 42

    prompt = ui.evaluate("async () => (await app.graphToPrompt()).output")
    inputs = prompt[str(node)]["inputs"]
    assert inputs["modality"] == "grayscale"
    assert inputs["low_threshold"] == 42  # hidden, still in the prompt
    for name in state["all"]:
        assert name in inputs, f"widget {name} missing from the prompt"

    workflow = ui.evaluate("() => app.graph.serialize()")
    saved = next(n for n in workflow["nodes"] if str(n["id"]) == str(node))
    assert 42 in saved["widgets_values"] and "grayscale" in saved["widgets_values"]


def test_prompt_from_the_ui_runs_with_hidden_values_of_another_modality(
    ui: web_ui.ComfyPage, comfy_server: ComfyServer
) -> None:
    """What the UI sends (hidden widgets included) is accepted and runs: hidden canny thresholds
    that would be invalid for canny (low > high) do not block a grayscale run."""
    from PIL import Image

    name = comfy_server.upload_image(Image.new("RGB", (64, 48), (200, 60, 30)))
    node = ui.add_detect_node()
    ui.wire_load_and_preview(node, name)
    ui.set_widget(node, "modality", "canny")
    ui.set_widget(node, "low_threshold", 250)
    ui.set_widget(node, "high_threshold", 10)
    ui.set_widget(node, "modality", "grayscale")
    assert "low_threshold" not in ui.node_state(node)["visible"]
    prompt = ui.evaluate("async () => (await app.graphToPrompt()).output")
    assert prompt[str(node)]["inputs"]["low_threshold"] == 250
    history = comfy_server.run(prompt)
    images = comfy_server.output_images(history)
    assert len(images) == 1
    assert Image.open(images[0]).size == (64, 48)


def test_remote_status_and_cost_shown_after_a_real_run(ui: web_ui.ComfyPage, comfy_server: ComfyServer) -> None:
    """Queued from the UI, run by the scenario backend against the fake Scenario server: the
    node's ui text arrives over the websocket and shows on the node."""
    from PIL import Image

    if scenario_tests.FAKE is None:
        pytest.skip("the fake Scenario server did not start")
    scenario_tests.FAKE.reset()
    name = comfy_server.upload_image(Image.new("RGB", (64, 48), (30, 160, 90)))
    node = ui.add_detect_node()
    ui.wire_load_and_preview(node, name)
    ui.set_widget(node, "backend", "scenario")
    ui.set_widget(node, "modality", "canny")
    ui.evaluate("async () => { await app.queuePrompt(0, 1); }")
    ui.page.wait_for_function(
        "(id) => app.graph.getNodeById(id).widgets.some((w) => w.name === 'detect_status' && w.value)",
        arg=node,
        timeout=120_000,
    )
    status = ui.node_state(node)["values"]["detect_status"]
    assert status and "cost" in status.lower(), status
    assert scenario_tests.FAKE.key not in status and scenario_tests.FAKE.secret not in status
    ui.screenshot_node(node, SHOTS / "detect_scenario_status.png")


def test_reapplied_when_a_saved_workflow_is_loaded_or_pasted(ui: web_ui.ComfyPage) -> None:
    node = ui.add_detect_node()
    ui.set_widget(node, "modality", "pose")
    workflow = ui.evaluate("() => app.graph.serialize()")

    ui.evaluate("async (wf) => { await app.loadGraphData(wf); }", workflow)
    loaded = ui.evaluate("(cls) => app.graph.findNodesByType(cls).map((n) => n.id)", web_ui.NODE_CLASS)
    assert len(loaded) == 1
    state = ui.node_state(loaded[0])
    assert state["values"]["modality"] == "pose"
    assert state["visible"] == expected_for(state, "pose", state["values"].get("backend"))

    # Paste goes through a fresh node's configure(): same path as the clipboard, without the clipboard.
    pasted = ui.evaluate(
        """([cls, id]) => {
            const data = app.graph.getNodeById(id).serialize();
            const node = LiteGraph.createNode(cls);
            app.graph.add(node);
            node.configure({...data, id: node.id, pos: [data.pos[0] + 400, data.pos[1]]});
            return node.id;
        }""",
        [web_ui.NODE_CLASS, loaded[0]],
    )
    state = ui.node_state(pasted)
    assert state["visible"] == expected_for(state, "pose", state["values"].get("backend"))


def test_example_workflows_load_with_the_right_widgets(ui: web_ui.ComfyPage) -> None:
    files = sorted((REPO_ROOT / "example_workflows").glob("*.json"))
    if not files:
        pytest.skip("no example_workflows/*.json yet")
    checked = 0
    for path in files:
        workflow = json.loads(path.read_text())
        ui.evaluate("async (wf) => { await app.loadGraphData(wf); }", workflow)
        ids = ui.evaluate("(cls) => app.graph.findNodesByType(cls).map((n) => n.id)", web_ui.NODE_CLASS)
        for node in ids:
            state = ui.node_state(node)
            modality = state["values"]["modality"]
            assert state["visible"] == expected_for(state, modality, state["values"].get("backend")), (
                path.name,
                node,
            )
            checked += 1
    if checked == 0:
        pytest.skip("no Detect node in example_workflows/*.json")


def test_status_text_shown_after_execution_and_not_saved(ui: web_ui.ComfyPage) -> None:
    node = ui.add_detect_node()
    before = ui.evaluate("(id) => app.graph.getNodeById(id).serialize().widgets_values", node)
    # What the app calls when the server sends `executed` with the node's ui={"text": [...]}.
    ui.evaluate(
        "(id) => app.graph.getNodeById(id).onExecuted({text: ['Scenario job abc: success', 'cost: 3 CU']})",
        node,
    )
    state = ui.node_state(node)
    assert "detect_status" in state["visible"]
    assert state["values"]["detect_status"] == "Scenario job abc: success · cost: 3 CU"
    after = ui.evaluate("(id) => app.graph.getNodeById(id).serialize().widgets_values", node)
    assert after == before  # display only: not saved in the workflow
    prompt = ui.evaluate("async () => (await app.graphToPrompt()).output")
    assert "detect_status" not in prompt[str(node)]["inputs"]
    ui.screenshot_node(node, SHOTS / "detect_status.png")


@pytest.mark.parametrize("modality", ["canny", "grayscale"])
def test_screenshot(ui: web_ui.ComfyPage, modality: str) -> None:
    node = ui.add_detect_node()
    ui.set_widget(node, "modality", modality)
    path = ui.screenshot_node(node, SHOTS / f"detect_{modality}.png")
    assert path.stat().st_size > 1000


def _method_combo(ui: web_ui.ComfyPage, node: int) -> dict[str, Any]:
    """The method combo as the user sees it: value, offered values, their labels, the drawn text."""
    return ui.evaluate(
        """(id) => {
            const node = app.graph.getNodeById(id);
            const widget = node.widgets.find((w) => w.name === "local_method");
            const values = widget.options.values;
            const label = widget.options.getOptionLabel ?? ((v) => v);
            return {
                value: widget.value,
                values,
                labels: values.map((v) => label(v)),
                shown: String(widget._displayValue ?? label(widget.value)),
            };
        }""",
        node,
    )


def test_method_combo_offers_the_modality_methods_with_labels(ui: web_ui.ComfyPage) -> None:
    choices = local_method_choices()
    node = ui.add_detect_node()
    for modality in table.MODALITY_NAMES:
        ui.set_widget(node, "modality", modality)
        combo = _method_combo(ui, node)
        if modality not in choices:
            continue
        assert combo["values"] == list(choices[modality]), modality
        assert combo["labels"] == list(choices[modality].values()), modality
    # What the labels say comes from the table: weight-free, or the download size.
    ui.set_widget(node, "modality", "mlsd")
    labels = _method_combo(ui, node)["labels"]
    assert labels == ["auto → opencv_lsd · weight-free", "opencv_lsd · weight-free", "mlsd_large · 6.3 MB download"]

    # A method of the old modality does not survive a modality change: back to auto.
    ui.set_widget(node, "local_method", "mlsd_large")
    assert _method_combo(ui, node)["shown"] == "mlsd_large · 6.3 MB download"
    ui.screenshot_node(node, SHOTS / "detect_method_labels.png")
    ui.set_widget(node, "modality", "canny")
    combo = _method_combo(ui, node)
    assert combo["value"] == "auto" and combo["values"] == ["auto", "opencv_canny", "opencv_canny_luma"]
    prompt = ui.evaluate("async () => (await app.graphToPrompt()).output")
    assert prompt[str(node)]["inputs"]["local_method"] == "auto"


def test_saved_workflow_with_a_method_not_offered_loads_and_says_what_to_pick(
    ui: web_ui.ComfyPage, comfy_server: ComfyServer
) -> None:
    from PIL import Image

    node = ui.add_detect_node()
    ui.wire_load_and_preview(node, comfy_server.upload_image(Image.new("RGB", (64, 48), (90, 90, 90))))
    ui.set_widget(node, "modality", "pose")
    workflow = ui.evaluate("() => app.graph.serialize()")
    names = ui.evaluate("(id) => app.graph.getNodeById(id).widgets.map((w) => w.name)", node)
    saved = next(n for n in workflow["nodes"] if str(n["id"]) == str(node))
    saved["widgets_values"][names.index("local_method")] = "opencv_canny"  # a canny method, saved on pose

    ui.evaluate("async (wf) => { await app.loadGraphData(wf); }", workflow)
    [loaded] = ui.evaluate("(cls) => app.graph.findNodesByType(cls).map((n) => n.id)", web_ui.NODE_CLASS)
    combo = _method_combo(ui, loaded)
    assert combo["value"] == "opencv_canny"  # loaded as saved, not silently changed
    assert combo["values"] == list(local_method_choices()["pose"])
    offered = ", ".join(local_method_choices()["pose"])  # auto, then the pose methods of the table
    assert combo["shown"] == f"⚠ pick {offered} (opencv_canny is not a pose method)"
    ui.screenshot_node(loaded, SHOTS / "detect_method_not_offered.png")

    # Queued as is, the server says the same (the node definition still accepts every method name).
    prompt = ui.evaluate("async () => (await app.graphToPrompt()).output")
    assert prompt[str(loaded)]["inputs"]["local_method"] == "opencv_canny"
    rejected = comfy_server.rejected_prompt(prompt)
    assert f"choose one of: {offered}" in json.dumps(rejected)


def _boxes_overlap(a: list[float], b: list[float]) -> bool:
    """Two [left, top, right, bottom] boxes share more than a pixel of area."""
    return min(a[2], b[2]) - max(a[0], b[0]) > 1 and min(a[3], b[3]) - max(a[1], b[1]) > 1


def _check_canvas_layout(ui: web_ui.ComfyPage, node: int, where: str) -> None:
    layout = ui.canvas_widget_boxes(node)
    bands = sorted(layout["widgets"], key=lambda w: w["y"])
    for upper, lower in zip(bands, bands[1:], strict=False):
        assert upper["y"] + upper["h"] <= lower["y"] + 0.5, f"{where}: {upper['name']} overlaps {lower['name']}"
    if bands:
        last = bands[-1]
        assert last["y"] + last["h"] <= layout["height"] + 1, f"{where}: {last['name']} drawn below the node"


def _check_vue_layout(ui: web_ui.ComfyPage, node: int, where: str, label: str) -> None:
    found: dict[str, Any] | None = None
    for _ in range(20):  # Vue renders asynchronously
        ui.page.wait_for_timeout(100)
        found = ui.vue_text_boxes(node)
        if found and any(label in t["text"] for t in found["texts"]):
            break
    assert found, f"{where}: the node is not drawn as a Vue component"
    texts = found["texts"]
    assert any(label in t["text"] for t in texts), f"{where}: {label!r} not shown; texts: {[t['text'] for t in texts]}"
    for text in texts:
        assert not (label in text["text"] and text["overflows"]), f"{where}: {label!r} is cut off"
        inside = text["box"][0] >= found["box"][0] - 1 and text["box"][2] <= found["box"][2] + 1
        assert inside, f"{where}: {text['text']!r} sticks out of the node"
    for i, a in enumerate(texts):
        for b in texts[i + 1 :]:
            if a["box"] == b["box"]:
                continue  # nested elements around the same text
            assert not _boxes_overlap(a["box"], b["box"]), f"{where}: {a['text']!r} overlaps {b['text']!r}"


@pytest.mark.parametrize("mode", ["classic", "vue"])
def test_layout_has_no_overlap_and_method_labels_read_in_full(ui: web_ui.ComfyPage, mode: str) -> None:
    """Each modality's method labels (the longest is "mlsd_large · 6.3 MB download") are drawn whole and
    no visible widget overlaps another, in the classic canvas and in Vue nodes ("Nodes 2.0")."""
    if mode == "vue" and not ui.evaluate("() => 'vueNodesMode' in LiteGraph"):
        pytest.skip("this frontend has no Vue nodes mode")
    version = ui.frontend_version()
    ui.set_vue_nodes(mode == "vue")
    try:
        node = ui.add_detect_node()
        if "backend" in ui.node_state(node)["all"]:
            ui.set_widget(node, "backend", "local")
        choices = local_method_choices()
        # Frontend 1.32's Vue nodes show only the first edit (docs/web.md): one change there.
        first_only = mode == "vue" and version.startswith("1.32.")
        cases = [(m, method) for m in table.MODALITY_NAMES if m in choices for method in choices[m]]
        for modality, method in cases[:1] if first_only else cases:
            where = f"{mode}, frontend {version}, {modality}/{method}"
            ui.set_widget(node, "modality", modality)
            ui.set_widget(node, "local_method", method)
            label = choices[modality][method]
            if mode == "classic":
                _check_canvas_layout(ui, node, where)
                drawn = ui.canvas_texts()
                assert label in drawn, f"{where}: {label!r} not drawn whole; drawn: {[t for t in drawn if '·' in t]}"
            else:
                # 1.32's (beta) Vue combo shows the raw value: it never calls options.getOptionLabel.
                _check_vue_layout(ui, node, where, method if first_only else label)
        if not first_only:
            ui.set_widget(node, "modality", "mlsd")
            ui.set_widget(node, "local_method", "mlsd_large")
        if mode == "vue":
            ui.page.wait_for_timeout(300)
            SHOTS.mkdir(parents=True, exist_ok=True)
            ui.page.locator(f'[data-node-id="{node}"]').screenshot(path=str(SHOTS / "detect_vue_mlsd_labels.png"))
        else:
            ui.screenshot_node(node, SHOTS / "detect_classic_mlsd_labels.png")
    finally:
        ui.set_vue_nodes(False)
