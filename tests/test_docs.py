"""The README stays true: generated tables in step with the modality table, commands present."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tables_match_the_modality_table():
    readme = (ROOT / "README.md").read_text()
    assert load_script().replaced(readme) == readme, "run: python scripts/readme_tables.py --write"


def test_readme_holds_the_two_newcomer_commands():
    readme = (ROOT / "README.md").read_text()
    assert "python -m scenario_detect" in readme
    assert "bash .ci/run" in readme


def test_requirements_match_pyproject_dependencies():
    tomllib = pytest.importorskip("tomllib")  # 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = sorted(project["dependencies"])
    listed = sorted(
        line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert listed == declared
    for unpinned in ("torch", "numpy", "Pillow"):
        assert unpinned in listed, f"{unpinned} must be listed without a version pin"
