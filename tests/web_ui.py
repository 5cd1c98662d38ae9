"""Drive ComfyUI's real frontend in headless Chromium (Python ``playwright``), for the web tests
and ``scripts/screenshot_node.py``.

Playwright's own browser download cannot work offline, so this uses the system Chromium (Debian's
``chromium`` package: ``/usr/bin/chromium``, or ``$CHROMIUM_PATH``). ``browser_unavailable()`` says
why a browser test cannot run, for a clear skip reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
NODE_CLASS = "ScenarioDetect"
UI_TIMEOUT_MS = 90_000


def chromium_path() -> str | None:
    """The Chromium executable to drive, or None when none is installed."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if os.path.isfile(configured) else None
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.path.isfile(candidate):
            return candidate
    return shutil.which("chromium")


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package 'playwright' is not installed (pip install playwright)"
    if chromium_path() is None:
        return (
            "no Chromium found at /usr/bin/chromium (install Debian's: apt-get install -y chromium, "
            "or set CHROMIUM_PATH)"
        )
    return None


@contextlib.contextmanager
def launch_browser() -> Iterator[Any]:
    """A headless Chromium (playwright ``Browser``), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def skip_first_run_dialogs(server_url: str) -> None:
    """Mark the tutorial as done so the frontend opens a graph, not the template browser."""
    request = urllib.request.Request(
        f"{server_url}/settings/Comfy.TutorialCompleted",
        data=json.dumps(True).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with contextlib.suppress(OSError):  # an old server without the settings route: nothing to skip
        urllib.request.urlopen(request, timeout=10).close()


class ComfyPage:
    """One browser tab on ComfyUI's UI, with helpers that run JS in the page."""

    def __init__(self, page: Any, server_url: str):
        self.page = page
        self.server_url = server_url
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"{error}\n{getattr(error, 'stack', '')}"))
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))

    def open(self) -> None:
        skip_first_run_dialogs(self.server_url)
        self.page.goto(self.server_url + "/", wait_until="domcontentloaded", timeout=UI_TIMEOUT_MS)
        self.page.wait_for_function(
            "(cls) => window.app?.graph && window.app?.canvas && window.LiteGraph?.registered_node_types?.[cls]",
            arg=NODE_CLASS,
            timeout=UI_TIMEOUT_MS,
        )
        # Close any dialog a first start still opens; Escape is harmless when there is none.
        self.page.keyboard.press("Escape")

    def extension_errors(self) -> list[str]:
        """Page errors that come from our extension (the frontend's own noise is not ours)."""
        return [e for e in self.errors if "detect_widgets" in e]

    def evaluate(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)

    def clear_graph(self) -> None:
        self.evaluate("() => { app.graph.clear(); app.canvas.ds.scale = 1; app.canvas.ds.offset = [0, 0]; }")

    def add_detect_node(self, pos: tuple[int, int] = (480, 260)) -> int:
        """Add a Detect node the way the UI does; returns its id. The default spot is clear of the
        menus and panels drawn over the canvas, for screenshots."""
        return self.evaluate(
            """([cls, pos]) => {
                const node = LiteGraph.createNode(cls);
                node.pos = pos;
                app.graph.add(node);
                return node.id;
            }""",
            [NODE_CLASS, list(pos)],
        )

    def wire_load_and_preview(self, node_id: int, image_name: str) -> None:
        """LoadImage(image_name) -> the Detect node -> PreviewImage, built in the UI's graph."""
        self.evaluate(
            """([id, image]) => {
                const detect = app.graph.getNodeById(id);
                const load = LiteGraph.createNode("LoadImage");
                load.pos = [100, 260];
                app.graph.add(load);
                load.widgets.find((w) => w.name === "image").value = image;
                const preview = LiteGraph.createNode("PreviewImage");
                preview.pos = [820, 260];
                app.graph.add(preview);
                load.connect(0, detect, 0);
                detect.connect(0, preview, 0);
            }""",
            [node_id, image_name],
        )

    def set_widget(self, node_id: int, name: str, value: Any) -> None:
        """Set a widget as a user does: new value, then the widget's callback."""
        self.evaluate(
            """([id, name, value]) => {
                const node = app.graph.getNodeById(id);
                const widget = node.widgets.find((w) => w.name === name);
                if (!widget) throw new Error(`no widget ${name}`);
                widget.value = value;
                widget.callback?.(value, app.canvas, node, app.canvas.graph_mouse, {});
                app.graph.setDirtyCanvas(true, true);
            }""",
            [node_id, name, value],
        )

    def node_state(self, node_id: int) -> dict[str, Any]:
        """Widget names (all / visible), values, node size and its minimum size."""
        return self.evaluate(
            """(id) => {
                const node = app.graph.getNodeById(id);
                app.canvas.draw(true, true);  // layout runs while drawing; it may resize the node
                const shown = (w) => !w.hidden && w.type !== "hidden"
                    && (typeof node.isWidgetVisible !== "function" || node.isWidgetVisible(w));
                return {
                    all: node.widgets.map((w) => w.name),
                    visible: node.widgets.filter(shown).map((w) => w.name),
                    values: Object.fromEntries(node.widgets.map((w) => [w.name, w.value])),
                    size: [node.size[0], node.size[1]],
                    min_size: node.computeSize(),
                };
            }""",
            node_id,
        )

    def set_setting(self, name: str, value: Any) -> None:
        """Change a frontend setting (stored on the server: put it back when done)."""
        self.evaluate(
            "async ([name, value]) => { await app.extensionManager.setting.set(name, value); }", [name, value]
        )

    def vue_node_text(self, node_id: int) -> list[str] | None:
        """The text lines of a node drawn as Vue components ("Nodes 2.0"), or None when not."""
        return self.evaluate(
            """(id) => {
                const element = document.querySelector(`[data-node-id="${id}"]`);
                return element ? element.innerText.split("\\n").map((l) => l.trim()).filter(Boolean) : null;
            }""",
            node_id,
        )

    def frontend_version(self) -> str:
        return self.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ ?? ''")

    def set_vue_nodes(self, enabled: bool) -> None:
        """Classic canvas (False) or Vue "Nodes 2.0" (True) node display; the setting id is the one
        comfyui-frontend-package's settings list declares (``Comfy.VueNodes.Enabled``)."""
        self.set_setting("Comfy.VueNodes.Enabled", enabled)
        self.page.wait_for_function("(on) => LiteGraph.vueNodesMode === on", arg=enabled, timeout=10_000)

    def canvas_widget_boxes(self, node_id: int) -> dict[str, Any]:
        """Classic canvas: the node's height and each visible widget's vertical band (y, height), as laid
        out by the last draw."""
        return self.evaluate(
            """(id) => {
                const node = app.graph.getNodeById(id);
                app.canvas.draw(true, true);
                const shown = (w) => !w.hidden && w.type !== "hidden"
                    && (typeof node.isWidgetVisible !== "function" || node.isWidgetVisible(w));
                const height = (w) => w.computedHeight
                    ?? (w.computeSize ? w.computeSize(node.size[0])[1] : LiteGraph.NODE_WIDGET_HEIGHT);
                return {
                    height: node.size[1],
                    widgets: node.widgets.filter(shown).map((w) => ({name: w.name, y: w.y ?? w.last_y, h: height(w)})),
                };
            }""",
            node_id,
        )

    def canvas_texts(self) -> list[str]:
        """Every string the canvas draws in one full redraw: a label cut to fit (ending in an
        ellipsis) is not the full label."""
        return self.evaluate(
            """() => {
                const drawn = [];
                const proto = CanvasRenderingContext2D.prototype;
                const original = proto.fillText;
                proto.fillText = function (text, ...rest) {
                    drawn.push(String(text));
                    return original.call(this, text, ...rest);
                };
                try { app.canvas.draw(true, true); } finally { proto.fillText = original; }
                return drawn;
            }"""
        )

    def vue_text_boxes(self, node_id: int) -> dict[str, Any]:
        """Vue nodes: the node element's box and, for each element that holds text of its own, its box,
        its text and whether that text overflows its box (cut off or ellipsised)."""
        return self.evaluate(
            """(id) => {
                const root = document.querySelector(`[data-node-id="${id}"]`);
                if (!root) return null;
                const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
                const texts = [];
                for (const element of root.querySelectorAll("*")) {
                    const own = [...element.childNodes].filter((n) => n.nodeType === 3)
                        .map((n) => n.textContent.trim()).join(" ").trim();
                    if (!own || element.getClientRects().length === 0) continue;
                    const style = getComputedStyle(element);
                    if (style.visibility === "hidden" || style.display === "none") continue;
                    const cut = element.scrollWidth > element.clientWidth + 1 && style.overflow !== "visible";
                    texts.push({text: own, box: box(element), overflows: cut});
                }
                return {box: box(root), texts};
            }""",
            node_id,
        )

    def screenshot_node(self, node_id: int, path: Path, margin: int = 16) -> Path:
        """Save a PNG of one node, cropped from the canvas."""
        box = self.evaluate(
            """(id) => {
                const node = app.graph.getNodeById(id);
                app.canvas.deselectAll?.();
                app.canvas.draw(true, true);
                const rect = app.canvas.canvas.getBoundingClientRect();
                const scale = app.canvas.ds.scale;
                const [x, y] = app.canvas.ds.convertOffsetToCanvas([node.pos[0], node.pos[1]]);
                const title = LiteGraph.NODE_TITLE_HEIGHT * scale;
                return {x: rect.left + x, y: rect.top + y - title,
                        width: node.size[0] * scale, height: node.size[1] * scale + title};
            }""",
            node_id,
        )
        self.page.wait_for_timeout(300)  # let the canvas repaint
        clip = {
            "x": max(box["x"] - margin, 0),
            "y": max(box["y"] - margin, 0),
            "width": box["width"] + 2 * margin,
            "height": box["height"] + 2 * margin,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), clip=clip)
        return path


@contextlib.contextmanager
def comfy_page(
    browser: Any, server_url: str, viewport: tuple[int, int] = (1280, 900), scale: float = 1
) -> Iterator[ComfyPage]:
    """A fresh browser context (no stored workflow) on the UI; ``scale`` sharpens screenshots."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, device_scale_factor=scale)
    try:
        page = ComfyPage(context.new_page(), server_url)
        page.open()
        yield page
    finally:
        context.close()
