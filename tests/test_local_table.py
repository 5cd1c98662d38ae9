"""The local backend reads like its table: one function per method, sizes from one place, no import circle.

- ``nodes.local.METHODS`` has exactly the methods of the modality table, each with a function;
- the download size a method shows (``LocalMethod.download`` and its description) is the sum of its
  weight files' sizes (``WeightFile.size``);
- the modules of ``nodes/local`` import each other without a circle;
- a run validates its parameters once (``CheckedParams``);
- no function in ``nodes/`` is longer than 60 lines (the developer guide's rule).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scenario_detect.nodes import modalities as table
from scenario_detect.nodes.local import METHODS, dwpose, load_method
from scenario_detect.nodes.local import aux_detectors as ad
from scenario_detect.nodes.local import transformers_detectors as td
from scenario_detect.nodes.run import DetectError, check_params

NODES = Path(__file__).resolve().parents[1] / "nodes"
ALL_METHODS = [m for modality in table.MODALITIES.values() for m in modality.local_methods]
# Methods whose network is a whole hub folder (fetched by ``repo_folder``, not listed in their runner).
HUB_FOLDERS = {"depth_anything_v2": td.DEPTH, "depth_anything_normals": td.DEPTH, "upernet_ade20k": td.SEGMENTATION}


def _mb(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+) (KB|MB|GB)", text).groups()
    return float(number) * {"KB": 1e-3, "MB": 1.0, "GB": 1e3}[unit]


def _files(method: table.LocalMethod) -> tuple:
    if method.name in HUB_FOLDERS:
        return HUB_FOLDERS[method.name].weights
    return METHODS[method.name]().weights


def test_every_method_of_the_table_has_one_function() -> None:
    assert sorted(METHODS) == sorted(m.name for m in ALL_METHODS)
    for method in ALL_METHODS:
        assert callable(load_method(method)), method.name
    assert load_method(table.resolve_local_method("mlsd", "mlsd_large")) is ad.mlsd
    assert load_method(table.resolve_local_method("pose", "dwpose")) is dwpose.pose_dwpose


@pytest.mark.parametrize("method", ALL_METHODS, ids=[m.name for m in ALL_METHODS])
def test_download_size_is_the_sum_of_the_files(method: table.LocalMethod) -> None:
    files = _files(method)
    assert method.needs_weights == bool(files)
    if not files:
        assert method.download == "" and "weight-free" in method.description
        return
    total = sum(_mb(spec.size) for spec in files)
    assert _mb(method.download) == pytest.approx(total, rel=0.01), [(s.filename, s.size) for s in files]
    assert method.download in method.description


def test_remove_background_tooltip_names_the_segmentation_download() -> None:
    size = sum(_mb(spec.size) for spec in td.SEGMENTATION.weights)
    stated = re.search(r"\(([\d.]+ MB) download\)", table.PARAMS["remove_background"].tooltip).group(1)
    assert _mb(stated) == pytest.approx(size, rel=0.01)


def test_local_modules_import_each_other_without_a_circle() -> None:
    local = NODES / "local"
    graph: dict[str, set[str]] = {}
    for path in local.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    imported.add(node.module.split(".")[0])
                else:
                    imported.update(alias.name for alias in node.names)
        graph[path.stem] = {name for name in imported if (local / f"{name}.py").exists()}
    assert "transformers_detectors" not in graph["opencv_detectors"]

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    assert [name for name in graph if reaches(name, name, set())] == []


def test_parameters_are_checked_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checked = check_params("canny", {"low_threshold": 10, "high_threshold": 20, "unrelated": 1})
    assert isinstance(checked, table.CheckedParams) and dict(checked) == {"low_threshold": 10, "high_threshold": 20}
    assert check_params("canny", checked) is checked  # not validated again
    with pytest.raises(DetectError, match="greater than"):  # checked for another modality: checked again
        check_params("grayscale", table.CheckedParams("canny", {"min_threshold": 9, "max_threshold": 3}))

    calls: list[str] = []
    original = table.Param.check
    monkeypatch.setattr(table.Param, "check", lambda self, value: calls.append(self.name) or original(self, value))
    photo = tmp_path / "in.png"
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(photo)
    from scenario_detect.nodes import cli

    assert cli.main([str(photo), "-m", "canny", "-o", str(tmp_path / "out.png")]) == 0
    assert sorted(calls) == sorted(table.PARAMS)  # each parameter once, for the whole CLI run


def test_no_function_in_nodes_is_over_60_lines() -> None:
    long = []
    for path in sorted(NODES.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(NODES)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []
