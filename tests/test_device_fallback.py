"""Device fallback: a network method that fails on the device reruns once on the CPU, and stays there.

The failing device is torch's ``meta`` device, chosen with ``SCENARIO_DETECT_DEVICE`` (the same
switch the CLI and benchmarks use): networks load there and forwards start, but ops with
data-dependent output (M-LSD's ``nonzero``) are not implemented and TorchScript archives (DWPose)
cannot be moved there, the kinds of failure MPS, DirectML and XPU users meet. Nothing of ours is
replaced: the real method runs, fails, and the real fallback reruns it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import random_weights
import torch
from PIL import Image

from scenario_detect.nodes import device_fallback, host
from scenario_detect.nodes.run import run_detect

pytest.importorskip("controlnet_aux")


@pytest.fixture()
def weights(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with random_weights.only_these_weights(random_weights.models_root()) as root:
        monkeypatch.setattr(device_fallback, "_CPU_ONLY", set())  # a fresh "process" for each test
        yield root


def _picture(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((1, 96, 128, 3), generator=generator)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    return [message for message in messages if "failed on the" in message]


def test_a_method_failing_on_the_device_reruns_on_the_cpu_once_and_remembers(
    weights: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    expected = [run_detect(_picture(seed), "mlsd", {}, "mlsd_large").maps for seed in (1, 2)]  # on the CPU
    monkeypatch.setenv("SCENARIO_DETECT_DEVICE", "meta")
    caplog.set_level(logging.INFO, logger="scenario_detect")
    first = run_detect(_picture(1), "mlsd", {}, "mlsd_large").maps
    [warning] = _warnings(caplog)
    assert "'mlsd_large'" in warning and "meta device" in warning and "NotImplementedError" in warning
    assert "on the CPU instead" in warning
    assert device_fallback.cpu_only("mlsd_large", "meta")
    second = run_detect(_picture(2), "mlsd", {}, "mlsd_large").maps
    assert len(_warnings(caplog)) == 1  # remembered: the second run went straight to the CPU
    assert torch.equal(first, expected[0]) and torch.equal(second, expected[1])
    assert str(host.torch_device()) == "meta"  # the override ended with the run


def test_the_memory_is_per_method(weights: Path, monkeypatch: pytest.MonkeyPatch,
                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SCENARIO_DETECT_DEVICE", "meta")
    caplog.set_level(logging.INFO, logger="scenario_detect")
    run_detect(_picture(1), "mlsd", {}, "mlsd_large")
    detection = run_detect(_picture(1), "pose", {}, "dwpose")  # TorchScript: cannot even move to meta
    assert detection.maps.shape == (1, 96, 128, 3) and len(detection.keypoints) == 1
    warnings = _warnings(caplog)
    assert len(warnings) == 2 and "'dwpose'" in warnings[1] and "meta device" in warnings[1]
    assert not device_fallback.cpu_only("mlsd_large", "cuda:0")


def test_an_error_on_the_cpu_still_surfaces(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(device_fallback, "_CPU_ONLY", set())
    monkeypatch.setenv("SCENARIO_DETECT_DEVICE", "meta")
    caplog.set_level(logging.INFO, logger="scenario_detect")
    devices: list[str] = []

    def broken_everywhere() -> None:
        devices.append(str(host.torch_device()))
        raise RuntimeError(f"kernel missing on {devices[-1]}")

    with pytest.raises(RuntimeError, match="kernel missing on cpu"):
        device_fallback.run_with_cpu_fallback("some_method", broken_everywhere)
    assert devices == ["meta", "cpu"]  # tried once on each, no loop
    assert len(_warnings(caplog)) == 1


@pytest.mark.parametrize("error", [ValueError("bad input"), FileNotFoundError("weights missing"),
                                   host.Interrupted("cancelled")])
def test_our_own_errors_are_not_a_device_failure(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    monkeypatch.setattr(device_fallback, "_CPU_ONLY", set())
    monkeypatch.setenv("SCENARIO_DETECT_DEVICE", "meta")
    calls: list[str] = []

    def fail() -> None:
        calls.append(str(host.torch_device()))
        raise error

    with pytest.raises(type(error)):
        device_fallback.run_with_cpu_fallback("some_method", fail)
    assert calls == ["meta"]
    assert not device_fallback.cpu_only("some_method", "meta")


def test_the_cli_warns_once_and_writes_the_cpu_maps(tmp_path: Path) -> None:
    root = random_weights.models_root()
    inputs = []
    for seed in (1, 2):
        path = tmp_path / f"in{seed}.png"
        Image.fromarray((_picture(seed)[0].numpy() * 255).astype(np.uint8)).save(path)
        inputs.append(str(path))
    env = os.environ | {
        "SCENARIO_DETECT_MODELS_DIR": str(root), "SCENARIO_DETECT_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hf"), "AUX_ANNOTATOR_CKPTS_PATH": str(tmp_path / "ckpts"),
    }
    outputs = {}
    for device in ("cpu", "meta"):
        command = [sys.executable, "-m", "scenario_detect", *inputs, "-m", "mlsd", "--local-method", "mlsd_large",
                   "-o", str(tmp_path / device)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                env=env | {"SCENARIO_DETECT_DEVICE": device})
        assert result.returncode == 0, result.stderr
        outputs[device] = result
    assert outputs["cpu"].stderr.count("failed on the") == 0
    assert outputs["meta"].stderr.count("failed on the meta device") == 1
    for name in ("in1_mlsd.png", "in2_mlsd.png"):
        cpu, meta = (np.asarray(Image.open(tmp_path / device / name)) for device in ("cpu", "meta"))
        assert np.array_equal(cpu, meta)
