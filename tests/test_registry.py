"""pyproject.toml against the Comfy Registry's rules, read both by hand and by ComfyUI's own parser.

The rules (docs.comfy.org, "pyproject.toml specifications"): ``[project] name`` is the registry's
node id (under 100 characters; letters, digits, ``-``, ``_``, ``.``; no two special characters in a
row; starts with a letter; best practice: no "ComfyUI" in it), ``version`` is X.Y.Z, a repository URL,
``[tool.comfy]`` with ``PublisherId`` (required), ``DisplayName`` and ``Icon`` (an SVG, PNG, JPG or
GIF URL), and ``requires-comfyui`` for the ComfyUI versions the pack runs on. ``comfy node validate``
also runs ruff's S102/S307 (exec/eval) over the code; our ruff selection includes them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import comfy_host
import pytest

tomllib = pytest.importorskip("tomllib")  # 3.11+: the smoke runs on 3.10 do not run this module

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_project_name_follows_the_registry_rules() -> None:
    name = PYPROJECT["project"]["name"]
    assert len(name) < 100
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]*", name), name
    assert not re.search(r"[._-]{2}", name), "no consecutive special characters"
    assert name[-1] not in "._-"
    assert "comfyui" not in name.lower(), "registry guidance: leave 'ComfyUI' out of the node id"
    assert re.fullmatch(r"\d+\.\d+\.\d+", PYPROJECT["project"]["version"])
    assert PYPROJECT["project"]["urls"]["Repository"].startswith("https://")


def test_tool_comfy_section() -> None:
    comfy = PYPROJECT["tool"]["comfy"]
    assert re.fullmatch(r"[a-z][a-z0-9-]*", comfy["PublisherId"])
    assert comfy["DisplayName"].strip()
    assert re.fullmatch(r"https://\S+\.(svg|png|jpe?g|gif)", comfy["Icon"], re.IGNORECASE), comfy["Icon"]
    # requires-comfyui is the tested floor (tests/test_comfyui_oldest.py), and the README says the same.
    assert comfy["requires-comfyui"] == f">={comfy_host.OLDEST_COMFYUI_VERSION}"
    readme = (ROOT / "README.md").read_text()
    assert f"Requirements: ComfyUI {comfy_host.OLDEST_COMFYUI_VERSION} or newer" in readme
    import scenario_detect

    assert scenario_detect.MIN_COMFYUI == comfy_host.OLDEST_COMFYUI_VERSION  # the too-old host's message


def test_ruff_checks_exec_and_eval() -> None:
    selected = PYPROJECT["tool"]["ruff"]["lint"]["select"]
    assert "S102" in selected and "S307" in selected


PARSE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from comfy_config import config_parser
config = config_parser.extract_node_configuration(sys.argv[2])
print(json.dumps({"name": config.project.name, "version": config.project.version,
                  "repository": config.project.urls.repository, "publisher": config.tool_comfy.publisher_id,
                  "display_name": config.tool_comfy.display_name, "icon": config.tool_comfy.icon,
                  "requires_comfyui": config.project.supported_comfyui_version,
                  "os": config.project.supported_os}))
"""


def test_comfyuis_own_parser_reads_our_pyproject() -> None:
    # ComfyUI's comfy_config is what the registry tooling's types are kept in step with.
    result = subprocess.run([sys.executable, "-c", PARSE, str(comfy_host.comfyui_dir()), str(ROOT)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    comfy = PYPROJECT["tool"]["comfy"]
    assert parsed == {
        "name": PYPROJECT["project"]["name"], "version": PYPROJECT["project"]["version"],
        "repository": PYPROJECT["project"]["urls"]["Repository"], "publisher": comfy["PublisherId"],
        "display_name": comfy["DisplayName"], "icon": comfy["Icon"], "requires_comfyui": comfy["requires-comfyui"],
        "os": ["OS Independent"],
    }
