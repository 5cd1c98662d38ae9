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
        {"file": str(photo), "canvas_width": 80, "canvas_height": 60, "people": []},
        {"file": str(second), "canvas_width": 60, "canvas_height": 80, "people": []},
    ]
    assert f"keypoints -> {target} (0 people in 2 images)" in result.stdout


# -- rough edges of a real run (issue 15.6) --


def _bogus(path):
    path.write_text("not an image")
    return path


def test_an_unreadable_image_is_named_without_object_reprs(tmp_path):
    bogus = _bogus(tmp_path / "bogus.png")
    result = cli(str(bogus), "-o", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert f"error: {bogus} is not a readable image" in result.stderr
    assert " at 0x" not in result.stderr and "<_io" not in result.stderr


def test_keypoints_keep_a_failed_input_in_its_place(photo, tmp_path):
    import json

    bogus, second = _bogus(tmp_path / "bogus.png"), tmp_path / "second.png"
    Image.open(photo).rotate(90, expand=True).save(second)
    target = tmp_path / "k.json"
    result = cli(str(photo), str(bogus), str(second), "-o", str(tmp_path / "maps"), "--keypoints", str(target))
    assert result.returncode == 1
    entries = json.loads(target.read_text())
    assert [entry["file"] for entry in entries] == [str(photo), str(bogus), str(second)]
    assert entries[0]["canvas_width"] == 80 and entries[2]["canvas_width"] == 60
    assert "people" not in entries[1] and "not a readable image" in entries[1]["error"]
    assert f"keypoints -> {target} (0 people in 2 images; 1 failed input)" in result.stdout


def test_inputs_with_the_same_name_get_unique_outputs_and_a_note(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"
    Image.new("RGB", (40, 30), (255, 255, 255)).save(first)
    Image.new("RGB", (40, 30), (0, 0, 0)).save(second)
    out = tmp_path / "maps"
    result = cli(str(first), str(second), "-m", "grayscale", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["x_grayscale.png", "x_grayscale_2.png"]
    assert np.asarray(Image.open(out / "x_grayscale.png").convert("L")).min() == 255
    assert np.asarray(Image.open(out / "x_grayscale_2.png").convert("L")).max() == 0
    assert f"note: {second} is written to {out / 'x_grayscale_2.png'}" in result.stderr


@pytest.mark.parametrize(("extension", "format_name"),
                         [(".png", "PNG"), (".jpg", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP"), (".tif", "TIFF")])
def test_the_output_extension_decides_the_format(photo, tmp_path, extension, format_name):
    out = tmp_path / f"map{extension}"
    result = cli(str(photo), "-o", str(out))
    assert result.returncode == 0, result.stderr
    with Image.open(out) as written:
        assert written.format == format_name and written.size == (80, 60)
        if format_name != "JPEG":  # lossless formats: the very map
            reference = cli(str(photo), "-o", str(tmp_path / "ref.png"))
            assert reference.returncode == 0
            assert np.array_equal(np.asarray(written.convert("RGB")),
                                  np.asarray(Image.open(tmp_path / "ref.png").convert("RGB")))


@pytest.mark.parametrize(
    ("outputs", "fragment"),
    [("maps.gif", "cannot write .gif files; use one of .png, .jpg"), ("maps.png", "names one file but 2 inputs")],
)
def test_an_output_that_cannot_work_is_refused_before_anything_runs(photo, tmp_path, outputs, fragment):
    inputs = [str(photo)] if outputs.endswith(".gif") else [str(photo), str(photo)]
    result = cli(*inputs, "-o", str(tmp_path / outputs))
    assert result.returncode == 2
    assert fragment in result.stderr
    assert list(tmp_path.iterdir()) == [photo]


def test_a_range_error_is_one_message_at_argument_time(photo, tmp_path):
    script = (
        "import sys\nfrom scenario_detect.nodes import cli\n"
        "try:\n    cli.main(sys.argv[1:])\nexcept SystemExit as done:\n"
        "    print('exit', done.code, 'torch' in sys.modules, 'cv2' in sys.modules)\n"
    )
    args = [str(photo), "--low-threshold", "300", "--high-threshold", "200", "-o", str(tmp_path / "x.png")]
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert "exit 2 False False" in result.stdout  # refused before torch or OpenCV were imported
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == ["python -m scenario_detect: error: argument --low-threshold: "
                      "low_threshold=300 is above its maximum 255"]
    assert not (tmp_path / "x.png").exists()


def test_plurals_and_a_summary_line_on_every_failure(photo, tmp_path):
    bogus, other = _bogus(tmp_path / "bogus.png"), _bogus(tmp_path / "other.png")
    some = cli(str(photo), str(bogus), "-o", str(tmp_path / "some"), "--keypoints", str(tmp_path / "k.json"))
    assert some.returncode == 1
    assert f"error: 1 of 2 inputs failed ({bogus}); the other one was written" in some.stderr
    assert "(0 people in 1 image; 1 failed input)" in some.stdout
    every = cli(str(bogus), str(other), "-o", str(tmp_path / "none"))
    assert every.returncode == 2
    assert every.stderr.splitlines()[-1] == f"error: 2 of 2 inputs failed ({bogus}, {other}); nothing was written"
    single = cli(str(bogus), "-o", str(tmp_path / "one.png"))
    assert single.stderr.splitlines()[-1] == f"error: 1 of 1 input failed ({bogus}); nothing was written"


def test_help_shows_defaults_and_each_modalitys_methods():
    from scenario_detect.nodes.modalities import MODALITIES

    result = cli("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps lines
    assert "(default: canny)" in text and "(default: auto)" in text and "(default: 100)" in text
    lines = result.stdout.splitlines()
    for modality in MODALITIES.values():
        [line] = [line for line in lines if line.startswith(f"  {modality.name}: ")]
        assert all(method.name in line for method in modality.local_methods), line
    assert "pidinet_scribble" not in next(line for line in lines if line.startswith("  canny: "))


def test_the_readme_example_writes_where_git_ignores():
    import re
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    [output] = re.findall(r"python -m scenario_detect docs/images/example_input.png .*?-o (\S+)", readme)[:1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", output], cwd=root, timeout=30)
    assert ignored.returncode == 0, f"{output} (README's first command) is not ignored by git"
