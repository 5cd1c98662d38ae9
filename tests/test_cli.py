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


def test_portrait_phone_photo_gives_a_portrait_map(tmp_path):
    # The sensor's landscape pixels with EXIF orientation 6, as phones save portrait photos.
    sensor = np.zeros((60, 100, 3), np.uint8)
    sensor[:, :50] = 255  # left half white: after turning clockwise, the top half
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = tmp_path / "phone.jpg"
    Image.fromarray(sensor).save(photo, "JPEG", exif=exif, quality=95)
    out = tmp_path / "gray.png"
    result = cli(str(photo), "-m", "grayscale", "-o", str(out))
    assert result.returncode == 0, result.stderr
    written = np.asarray(Image.open(out).convert("L"))
    assert written.shape == (100, 60)  # portrait, as LoadImage shows it
    assert written[:45].mean() > 240 and written[55:].mean() < 15


def test_16_bit_gradient_survives_the_cli(tmp_path):
    levels = np.tile(np.round(np.linspace(0, 65535, 256)).astype(np.uint16), (8, 1))
    path = tmp_path / "ramp16.png"
    cv2.imwrite(str(path), levels)
    out = tmp_path / "ramp.png"
    result = cli(str(path), "-m", "grayscale", "-o", str(out))
    assert result.returncode == 0, result.stderr
    row = np.asarray(Image.open(out).convert("L"))[0].astype(int)
    # A ramp from black to white, not white from its second column on.
    assert np.abs(row - np.round(levels[0] / 65535 * 255)).max() <= 1
    assert row[0] == 0 and row[-1] == 255 and row[1] < 5


def test_several_inputs_keep_the_good_ones_and_name_the_bad(photo, tmp_path):
    bogus = tmp_path / "bogus.png"
    bogus.write_bytes(b"\x89PNG not really")
    missing = tmp_path / "missing.png"
    out = tmp_path / "maps"
    result = cli(str(bogus), str(photo), str(missing), "-m", "canny", "-o", str(out))
    assert result.returncode == 1  # some failed, the others were written
    assert sorted(p.name for p in out.iterdir()) == ["in_canny.png"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert any(str(bogus) in line and "not a readable image" in line for line in errors)
    assert any(str(missing) in line and "cannot read" in line for line in errors)
    assert "2 of 3 inputs failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_multi_frame_input_says_which_frame_is_used(tmp_path):
    frames = [Image.new("RGB", (40, 30), (255, 255, 255)), Image.new("RGB", (40, 30), (0, 0, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    out = tmp_path / "g.png"
    result = cli(str(path), "-m", "grayscale", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"{path} has 2 frames; the first one is used" in result.stderr
    assert np.asarray(Image.open(out).convert("L")).min() == 255  # the white first frame


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
