"""The command line: same table, same parameters, same code path as the node."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from scenario_detect.nodes.images import decode_image
from scenario_detect.nodes.run import run_detect


@pytest.fixture()
def photo(tmp_path):
    canvas = np.full((60, 80, 3), 200, np.uint8)
    cv2.rectangle(canvas, (10, 10), (50, 40), (20, 60, 200), -1)
    path = tmp_path / "in.png"
    Image.fromarray(canvas).save(path)
    return path


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scenario_detect", *args], capture_output=True, text=True,
                          timeout=120)


def test_canny_from_the_command_line_matches_the_node_path(photo, tmp_path):
    out = tmp_path / "edges.png"
    result = cli(str(photo), "--modality", "canny", "--low-threshold", "30", "--high-threshold", "90", "-o", str(out))
    assert result.returncode == 0, result.stderr
    written = np.asarray(Image.open(out).convert("RGB"))
    assert written.shape == (60, 80, 3)
    frame = torch.from_numpy(decode_image(photo.read_bytes()))[None]
    expected = run_detect(frame, "canny", {"low_threshold": 30, "high_threshold": 90}).maps
    assert np.array_equal(written, (expected[0].numpy() * 255).round().astype(np.uint8))
    assert written.max() == 255


def test_several_images_go_to_a_folder(photo, tmp_path):
    second = tmp_path / "second.png"
    Image.open(photo).rotate(90, expand=True).save(second)
    result = cli(str(photo), str(second), "-m", "sketch", "-o", str(tmp_path / "maps"))
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "maps" / "in_sketch.png").size == (80, 60)
    assert Image.open(tmp_path / "maps" / "second_sketch.png").size == (60, 80)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--low-threshold", "250", "--high-threshold", "20"], "low_threshold (250) is greater than high_threshold"),
        (["--modality", "grayscale", "--min-threshold", "99", "--max-threshold", "9"], "min_threshold (99)"),
    ],
)
def test_bad_parameters_fail_with_a_clear_message(photo, tmp_path, args, fragment):
    result = cli(str(photo), *args, "-o", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert fragment in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_unreadable_input_is_reported(tmp_path):
    bogus = tmp_path / "bogus.png"
    bogus.write_text("not an image")
    result = cli(str(bogus), str(tmp_path / "missing.png"), "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "not a readable image" in result.stderr


def test_missing_weights_offline_is_a_message_not_a_traceback(photo, tmp_path):
    import os

    env = os.environ | {
        "SCENARIO_DETECT_OFFLINE": "1", "SCENARIO_DETECT_MODELS_DIR": str(tmp_path / "models"),
        "HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HOME": str(tmp_path / "hf_home"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "scenario_detect", str(photo), "-m", "depth", "-o", str(tmp_path / "d.png")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr and str(tmp_path / "models") in result.stderr


def test_keypoints_file_has_one_entry_per_input(photo, tmp_path):
    import json

    second = tmp_path / "second.png"
    Image.open(photo).rotate(90, expand=True).save(second)
    target = tmp_path / "out" / "keypoints.json"
    result = cli(str(photo), str(second), "-m", "canny", "-o", str(tmp_path / "maps"), "--keypoints", str(target))
    assert result.returncode == 0, result.stderr
    # Non-pose modality: no people, canvas = each input's own size (the second is rotated: 60 x 80).
    assert json.loads(target.read_text()) == [
        {"canvas_width": 80, "canvas_height": 60, "people": []},
        {"canvas_width": 60, "canvas_height": 80, "people": []},
    ]
    assert f"keypoints -> {target} (0 people in 2 images)" in result.stdout
