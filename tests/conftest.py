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

No test can reach the real Scenario API (``_isolated_from_real_api``, automatic for the session):
every variable the pack reads a key, a credentials file or the API address from is removed
(``comfy_host.SCRUBBED_ENV``), HOME and XDG_CONFIG_HOME point at empty temporary folders (so no
``~/.config/scenario-detect/credentials.json`` is found; XDG_CACHE_HOME keeps the real caches), and
``SCENARIO_DETECT_TEST_GUARD`` names a record file: with it set, the pack's HTTP client refuses any
non-loopback host before connecting, in this process and in every ComfyUI server or CLI started
from it, and records the attempt; the test during which a line appears fails. A test that provokes
the guard on purpose takes the ``real_api_guard`` fixture and calls ``real_api_guard.take()``.

``comfy_server.options`` holds what the server was started with. A test that needs a server of its
own (no weights at all, other flags) uses ``comfy_host.start_server(ServerOptions(...), name="mine")``
as a context manager (``name`` keeps its log, ``tests/artifacts/comfyui-mine.log``, apart); see
``test_model_method_without_weights_says_where_to_put_them``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import comfy_host
import pytest

pytest_plugins = ["pytester"]  # tests/test_no_real_api.py runs a session of its own to test the guard

GUARD_ENV = "SCENARIO_DETECT_TEST_GUARD"  # read by nodes/scenario/guard.py


class RealApiGuard:
    """The record file of refused non-loopback requests, and how far this test has read it."""

    def __init__(self, record: Path):
        self.record = record
        self.mark = 0

    def _size(self) -> int:
        return self.record.stat().st_size if self.record.exists() else 0

    def new_lines(self) -> list[str]:
        with open(self.record, "rb") as f:
            f.seek(self.mark)
            return f.read().decode(errors="replace").splitlines()

    def take(self) -> list[str]:
        """Lines recorded since the test started (or the last take); they no longer fail the test."""
        lines = self.new_lines()
        self.mark = self._size()
        return lines


@pytest.fixture(scope="session", autouse=True)
def _isolated_from_real_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealApiGuard]:
    root = tmp_path_factory.mktemp("no-real-api")
    for folder in ("home", "config"):
        (root / folder).mkdir()
    record = root / "refused-requests.log"
    record.touch()
    # Where caches really are, computed before HOME moves (ComfyUI tree, weights, test weights).
    cache_base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    test_weights = os.environ.get("SCENARIO_DETECT_TEST_WEIGHTS") or str(Path.home() / ".cache" / "scenario-detect")
    with pytest.MonkeyPatch.context() as mp:
        for name in comfy_host.SCRUBBED_ENV:
            mp.delenv(name, raising=False)
        mp.setenv("HOME", str(root / "home"))
        mp.setenv("XDG_CONFIG_HOME", str(root / "config"))
        mp.setenv("XDG_CACHE_HOME", cache_base)
        mp.setenv("SCENARIO_DETECT_TEST_WEIGHTS", test_weights)
        mp.setenv("SCENARIO_DETECT_CACHE_DIR", str(root / "results-cache"))
        mp.setenv(GUARD_ENV, str(record))
        yield RealApiGuard(record)


@pytest.fixture()
def real_api_guard(_isolated_from_real_api: RealApiGuard) -> RealApiGuard:
    return _isolated_from_real_api


@pytest.fixture(autouse=True)
def _no_real_api_contact(_isolated_from_real_api: RealApiGuard) -> Iterator[None]:
    guard = _isolated_from_real_api
    guard.mark = guard._size()
    yield
    refused = guard.new_lines()
    if refused:
        guard.mark = guard._size()
        pytest.fail(
            "this test made the Scenario client contact a host that is not this machine (refused by the test "
            "guard; tests must never reach the real API):\n" + "\n".join(refused),
            pytrace=False,
        )


@pytest.fixture(scope="session")
def comfy_server(_isolated_from_real_api: RealApiGuard) -> Iterator[comfy_host.ComfyServer]:
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
