"""Shared fixtures: one real ComfyUI server per test session.

``comfy_server`` (session scope) starts ComfyUI (``$COMFYUI_DIR``, else 0.3.75 provisioned into
``~/.cache/scenario-detect/``) with this repository loaded as the custom node pack ``scenario_detect``,
on a free port, with its own temporary input/output/user/temp folders. It yields a
``comfy_host.ComfyServer``: ``upload_image``, ``queue_prompt``, ``rejected_prompt``, ``wait_for``,
``run``, ``output_images``, ``interrupt``, ``object_info``; ``input_dir``/``output_dir``; ``log_path``.
The server log ends in ``tests/artifacts/comfyui-server.log``. Tests that use the fixture are marked
``comfyui`` automatically (``-m "not comfyui"`` skips them).

Adding to the shared server (env variables, model folders, arguments): register a setup step at
import time of your test module or of a helper module it imports; every registered step runs once,
before the server starts, and all tests share that one server::

    import comfy_host

    @comfy_host.register_server_setup
    def _fake_scenario(options: comfy_host.ServerOptions, stack: contextlib.ExitStack) -> None:
        fake = stack.enter_context(FakeScenarioServer())        # closed after ComfyUI stops
        options.env.update(SCENARIO_BASE_URL=fake.url, SCENARIO_API_KEY="k", SCENARIO_API_SECRET="s")
        options.extra_paths["depth_anything"] = str(models_folder)   # an extra_model_paths.yaml entry

Keep the objects your tests need (the fake server) reachable from your module, e.g. a module global
set by the setup step. ``SCENARIO_API_KEY``, ``SCENARIO_API_SECRET`` and ``SCENARIO_BASE_URL`` are never
inherited from the shell, so a developer's real key cannot reach a test server.

``comfy_server.options`` holds what the server was started with. A test that needs a server of its
own (no weights at all, other flags) uses ``comfy_host.start_server(ServerOptions(...), name="mine")``
as a context manager (``name`` keeps its log, ``tests/artifacts/comfyui-mine.log``, apart); see
``test_model_method_without_weights_says_where_to_put_them``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import comfy_host
import pytest


@pytest.fixture(scope="session")
def comfy_server() -> Iterator[comfy_host.ComfyServer]:
    options = comfy_host.ServerOptions()
    with contextlib.ExitStack() as stack:
        for setup in comfy_host.registered_server_setups():
            setup(options, stack)
        with comfy_host.start_server(options) as server:
            yield server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "comfy_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.comfyui)
