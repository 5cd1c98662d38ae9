"""docs/fidelity.md stays current: one row per local method of the table, and the weight-free rows the
script measures (fast) say what the doc says."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from scenario_detect.nodes import modalities as table

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "fidelity.md"


def load_script():
    spec = importlib.util.spec_from_file_location("fidelity", ROOT / "scripts" / "fidelity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fidelity"] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def doc_rows() -> dict[str, str]:
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"\| `([a-z0-9_]+)` \|", line)
        if match:
            rows[match.group(1)] = line
    return rows


def test_the_doc_has_one_row_per_local_method() -> None:
    methods = [m.name for modality in table.MODALITIES.values() for m in modality.local_methods]
    assert sorted(doc_rows()) == sorted(methods), "run: python scripts/fidelity.py --write"


def test_the_script_measures_every_method() -> None:
    script = load_script()
    covered = set(script.MEASURES) | {"opencv_canny_luma", "opencv_lsd", "openpose_full", "depth_anything_normals"}
    methods = {m.name for modality in table.MODALITIES.values() for m in modality.local_methods}
    assert methods <= covered


def test_weight_free_rows_measured_now_match_the_doc() -> None:
    pytest.importorskip("controlnet_aux")
    pytest.importorskip("skimage")
    script = load_script()
    rows = {row.method: row for row in script.measure(list(script.FAST))}
    canny = rows["opencv_canny"].agreement
    assert canny.startswith("pixel-identical to CannyDetector") and "pixel-identical to `cv2.Canny" in canny
    differ = re.match(r"(\d+) of (\d+) pixels differ from `cv2.Canny\(cvtColor", rows["opencv_canny_luma"].agreement)
    assert differ and int(differ.group(1)) < 0.001 * int(differ.group(2))
    rendered = script.render(list(rows.values())).splitlines()
    documented = doc_rows()
    for line in rendered:
        match = re.match(r"\| `([a-z0-9_]+)` \|", line)
        if match:
            assert documented[match.group(1)] == line, "run: python scripts/fidelity.py --write"
