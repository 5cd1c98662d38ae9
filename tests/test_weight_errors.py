"""A weight file that is there but unusable, and a model with several files missing: one whole message.

A truncated, wrong-format or wrong-network file gives one ``WeightFileUnusable`` naming the file,
what is wrong with it and what to do (delete it and run again, or the download address); a model
with several files (DWPose: two) names every missing file in one error. Checked in process, through
the CLI (a subprocess: exit code 2, no traceback) and through a real ComfyUI prompt.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import comfy_host
import pytest
import random_weights
import torch
from PIL import Image

from scenario_detect.nodes.local import dwpose, run_local, weights
from scenario_detect.nodes.local.models import MODELS
from scenario_detect.nodes.local.weights import WeightFileUnusable, WeightsUnavailable

ANNOTATORS = ("lllyasviel", "Annotators")
MLSD_FILE = "mlsd_large_512_fp32.pth"
MLSD_URL = f"https://huggingface.co/lllyasviel/Annotators/resolve/main/{MLSD_FILE}"
HTML = b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>\n"


def _whole(message: str) -> None:
    """One message of ours: complete sentences, none of the reader's raw text or object reprs."""
    assert message.endswith("."), message
    assert "weights_only" not in message and "Traceback" not in message and " object at 0x" not in message
    assert "Delete it and run again" in message


@pytest.fixture()
def state_file(tmp_path: Path) -> Path:
    path = tmp_path / "net.pth"
    torch.save({"w": torch.randn(64, 64), "b": torch.randn(64)}, path)
    return path


# -- what is wrong, from the file's bytes ---------------------------------------------------------


def test_truncated_torch_file_is_called_incomplete(state_file: Path) -> None:
    data = state_file.read_bytes()
    state_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightFileUnusable) as caught:
        weights.load_state_dict(state_file)
    message = str(caught.value)
    assert message.startswith(f"The model file {state_file} cannot be used: it is incomplete (")
    assert "cut short" in message
    _whole(message)


def test_html_page_under_a_weights_name_is_called_a_page(tmp_path: Path) -> None:
    path = tmp_path / "net.pth"
    path.write_bytes(HTML)
    with pytest.raises(WeightFileUnusable, match="it is a text or HTML page") as caught:
        weights.load_state_dict(path)
    _whole(str(caught.value))


def test_unknown_bytes_are_not_a_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "net.pth"
    path.write_bytes(bytes(range(7, 250)) * 40)
    with pytest.raises(WeightFileUnusable, match="it is not a PyTorch or safetensors weights file") as caught:
        weights.load_state_dict(path)
    _whole(str(caught.value))


def test_truncated_safetensors_say_how_much_is_there(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(100_000)}, str(path))
    full = path.stat().st_size
    path.write_bytes(path.read_bytes()[: full // 3])
    with pytest.raises(WeightFileUnusable) as caught:
        weights.load_state_dict(path)
    assert f"it is incomplete ({full // 3 / 1e6:.1f} MB of {full / 1e6:.1f} MB;" in str(caught.value)
    _whole(str(caught.value))


def test_a_complete_file_passes_the_byte_checks(state_file: Path) -> None:
    assert weights.format_problem(state_file) is None
    assert set(weights.load_state_dict(state_file)) == {"w", "b"}


def test_a_bug_in_a_builder_is_not_blamed_on_the_file(state_file: Path) -> None:
    def broken(path: Path) -> torch.nn.Module:
        raise AttributeError("module 'controlnet_aux.x' has no attribute 'Net'")

    with pytest.raises(AttributeError):
        weights.built_from(state_file, broken)


def test_a_reader_error_on_a_good_looking_file_names_the_file(state_file: Path) -> None:
    def refuses(path: Path) -> torch.nn.Module:
        raise RuntimeError("PytorchStreamReader failed locating file constants.pkl: file not found. More text")

    with pytest.raises(WeightFileUnusable) as caught:
        weights.built_from(state_file, refuses)
    assert "it could not be read (PytorchStreamReader failed locating file constants.pkl: file not found.)" in str(
        caught.value
    )


def test_a_truncated_file_of_a_model_folder_is_named(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    (tmp_path / "config.json").write_text("{}")
    save_file({"w": torch.zeros(10_000)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "model.safetensors").write_bytes((tmp_path / "model.safetensors").read_bytes()[:5000])

    def loader(folder: Path) -> torch.nn.Module:
        raise OSError("Unable to load weights from checkpoint file")

    with pytest.raises(WeightFileUnusable) as caught:
        weights.built_from(tmp_path, loader)
    assert caught.value.path == tmp_path / "model.safetensors"
    assert "it is incomplete" in str(caught.value)


# -- through the local methods: the message names the file, its URL and folder ------------------


@pytest.fixture()
def models_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty models folder, downloads off, every other place empty."""
    with random_weights.only_these_weights(tmp_path / "models") as root:
        yield root


def _image() -> torch.Tensor:
    return torch.rand(1, 40, 56, 3, generator=torch.Generator().manual_seed(1))


def _truncated_mlsd(models: Path) -> Path:
    pytest.importorskip("controlnet_aux")
    good = (random_weights.models_root().joinpath(*ANNOTATORS, MLSD_FILE)).read_bytes()
    path = models.joinpath(*ANNOTATORS, MLSD_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(good[: len(good) // 2])
    return path


def test_truncated_file_through_a_local_method(models_dir: Path) -> None:
    path = _truncated_mlsd(models_dir)
    with pytest.raises(WeightFileUnusable) as caught:
        run_local(_image(), "mlsd", {}, method="mlsd_large")
    message = str(caught.value)
    assert message.startswith(f"The model file {path} ('{MLSD_FILE}' (M-LSD line segment detector, 6.3 MB)) ")
    assert "it is incomplete" in message and f"download it by hand from {MLSD_URL} into {path.parent}" in message
    _whole(message)
    assert not MODELS.loaded()  # nothing half-built stays cached


def test_another_networks_file_is_refused_with_the_reason(models_dir: Path) -> None:
    pytest.importorskip("controlnet_aux")
    path = models_dir.joinpath(*ANNOTATORS, MLSD_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random_weights.models_root().joinpath(*ANNOTATORS, "sk_model.pth").read_bytes())
    with pytest.raises(WeightFileUnusable, match="it holds the weights of another network") as caught:
        run_local(_image(), "mlsd", {}, method="mlsd_large")
    _whole(str(caught.value))


def test_truncated_torchscript_of_dwpose_is_named(models_dir: Path) -> None:
    folder = models_dir / "hr16"
    for spec in dwpose.WEIGHTS:
        path = models_dir.joinpath(*spec.repo.split("/"), spec.filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PK\x03\x04" + bytes(5000))  # a zip archive's first bytes, then nothing
    with pytest.raises(WeightFileUnusable) as caught:
        run_local(_image(), "pose", {}, method="dwpose")
    message = str(caught.value)
    assert dwpose.DETECTOR.filename in message and dwpose.DETECTOR.url in message and str(folder) in message
    assert "it is incomplete" in message
    _whole(message)


def test_dwpose_offline_names_both_files_at_once(models_dir: Path) -> None:
    with pytest.raises(WeightsUnavailable) as caught:
        run_local(_image(), "pose", {}, method="dwpose")
    message = str(caught.value)
    listed = [line for line in message.splitlines() if line.startswith("  - ")]
    assert [line.split(",")[0] for line in listed] == [f"  - {spec.filename}" for spec in dwpose.WEIGHTS]
    assert "2 files" in message and "offline" in message


def test_dwpose_names_the_one_file_still_missing(models_dir: Path) -> None:
    present = models_dir.joinpath(*dwpose.DETECTOR.repo.split("/"), dwpose.DETECTOR.filename)
    present.parent.mkdir(parents=True, exist_ok=True)
    present.write_bytes(b"not read: the other file is missing")
    with pytest.raises(WeightsUnavailable) as caught:
        run_local(_image(), "pose", {}, method="dwpose")
    message = str(caught.value)
    assert dwpose.ESTIMATOR.filename in message and dwpose.DETECTOR.filename not in message
    assert "needs 1 file from" in message


# -- through the CLI: exit code 2, the message, no traceback ---------------------------------------


def _cli(tmp_path: Path, models: Path, *args: str) -> subprocess.CompletedProcess:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), (120, 30, 200)).save(photo)
    env = os.environ | {
        "SCENARIO_DETECT_MODELS_DIR": str(models),
        "SCENARIO_DETECT_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "empty"),
        "AUX_ANNOTATOR_CKPTS_PATH": str(tmp_path / "empty"),
        "SCENARIO_DETECT_DEVICE": "cpu",
    }
    return subprocess.run(
        [sys.executable, "-m", "scenario_detect", str(photo), *args, "-o", str(tmp_path / "out.png")],
        capture_output=True, text=True, timeout=300, env=env,
    )


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def test_cli_truncated_file(tmp_path: Path) -> None:
    models = tmp_path / "models"
    path = _truncated_mlsd(models)
    result = _cli(tmp_path, models, "-m", "mlsd", "--local-method", "mlsd_large")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [error] = [line for line in _error_lines(result) if str(path) in line]
    assert "it is incomplete" in error and MLSD_URL in error and "Delete it and run again" in error
    assert not (tmp_path / "out.png").exists()


def test_cli_wrong_format_file(tmp_path: Path) -> None:
    pytest.importorskip("controlnet_aux")
    models = tmp_path / "models"
    path = models.joinpath(*ANNOTATORS, MLSD_FILE)
    path.parent.mkdir(parents=True)
    path.write_bytes(HTML)
    result = _cli(tmp_path, models, "-m", "mlsd", "--local-method", "mlsd_large")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert any("it is a text or HTML page" in line and str(path) in line for line in _error_lines(result))


def test_cli_dwpose_offline_names_both_files(tmp_path: Path) -> None:
    result = _cli(tmp_path, tmp_path / "models", "-m", "pose", "--local-method", "dwpose")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert all(spec.filename in result.stderr and spec.url in result.stderr for spec in dwpose.WEIGHTS)


# -- through a real ComfyUI prompt: a clean node error --------------------------------------------


@pytest.mark.comfyui
def test_comfyui_prompt_reports_the_file_and_every_missing_file(tmp_path: Path) -> None:
    from comfy_host import PromptFailed
    from test_comfyui_detect import detect_graph, make_test_image

    options, models = comfy_host.without_weights(tmp_path)
    path = _truncated_mlsd(models)
    with comfy_host.start_server(options, name="weight-errors") as server:
        name = server.upload_image(make_test_image(0), name="weight-errors.png")
        with pytest.raises(PromptFailed) as truncated:
            server.run(detect_graph(server, name, modality="mlsd", local_method="mlsd_large"), timeout=300)
        with pytest.raises(PromptFailed) as missing:
            server.run(detect_graph(server, name, modality="pose", local_method="dwpose"), timeout=300)

    error = truncated.value.error
    assert error["node_type"] == "ScenarioDetect"
    assert error["exception_type"].endswith("WeightFileUnusable")
    message = truncated.value.exception_message.rstrip("\n")  # ComfyUI ends every message with a newline
    assert message.startswith(f"The model file {path} (") and "it is incomplete" in message and MLSD_URL in message
    _whole(message)
    assert missing.value.error["exception_type"].endswith("WeightsUnavailable")
    for spec in dwpose.WEIGHTS:
        assert f"  - {spec.filename}, {spec.size}: {spec.url}" in missing.value.exception_message
