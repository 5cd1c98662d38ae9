"""Weight-free detectors, asserted on pixels."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from scenario_detect.nodes.images import gray_u8
from scenario_detect.nodes.local import run_local
from scenario_detect.nodes.local.opencv_detectors import canny_input_u8, grayscale_levels
from scenario_detect.nodes.run import DetectError, run_detect

WEIGHT_FREE = ["canny", "grayscale", "mlsd", "scribble", "sketch"]


def scene(height: int = 96, width: int = 128) -> torch.Tensor:
    """Dark rectangle and a thin bright line on a light gradient: clear edges and segments."""
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[:] = np.linspace(150, 210, width, dtype=np.uint8)[None, :, None]
    cv2.rectangle(canvas, (width // 5, height // 5), (width // 2, height * 3 // 4), (20, 30, 40), -1)
    cv2.line(canvas, (width * 3 // 5, height // 6), (width * 9 // 10, height * 5 // 6), (10, 10, 10), 2)
    return torch.from_numpy(canvas.astype(np.float32) / 255)[None]


def photos() -> list[np.ndarray]:
    """Non-square photo-like uint8 RGB images: scikit-image's sample photos (a controlnet-aux
    dependency), a portrait crop, and the README's example input."""
    from skimage import data

    example = cv2.cvtColor(cv2.imread(str(EXAMPLE_INPUT)), cv2.COLOR_BGR2RGB)
    return [data.coffee(), data.chelsea(), data.rocket(), data.astronaut()[:, 96:400], example]


EXAMPLE_INPUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "example_input.png"


def as_image(rgb_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb_u8.astype(np.float32) / 255)[None]


def map_u8(maps: torch.Tensor, index: int = 0) -> np.ndarray:
    return (maps[index, :, :, 0].numpy() * 255).round().astype(np.uint8)


@pytest.mark.parametrize(("low", "high"), [(100, 200), (40, 120), (0, 255)])
def test_canny_is_cv2_canny_on_the_rgb_image_pixel_for_pixel(low, high):
    # What ControlNet's canny annotator computes (lllyasviel's, controlnet-aux's CannyDetector).
    for photo in photos():
        assert photo.shape[0] != photo.shape[1]
        out = run_local(as_image(photo), "canny", {"low_threshold": low, "high_threshold": high}).maps
        assert out.shape[1:3] == photo.shape[:2]
        assert np.array_equal(map_u8(out), cv2.Canny(photo, low, high)), photo.shape
        assert torch.equal(out[0, :, :, 0], out[0, :, :, 2])


def test_canny_on_rgb_keeps_an_outline_the_luma_loses():
    # The README's example case: a green disc on a mauve background of about the same luma.
    canvas = np.zeros((120, 160, 3), np.uint8)
    canvas[:] = (170, 120, 160)  # mauve, luma ~139
    cv2.circle(canvas, (80, 60), 35, (100, 160, 90), -1)  # green, luma ~134
    rgb = run_local(as_image(canvas), "canny", {}).maps
    luma = run_local(as_image(canvas), "canny", {}, "opencv_canny_luma").maps
    ring = map_u8(rgb)[20:100, 40:120]
    assert (ring > 0).sum() > 150  # the whole outline (2 pi 35 ~ 220 px)
    assert int(map_u8(luma).max()) == 0


def test_canny_luma_method_is_cv2_canny_of_the_luma():
    images = torch.cat([scene(), torch.rand(1, 96, 128, 3, generator=torch.Generator().manual_seed(0))])
    out = run_local(images, "canny", {"low_threshold": 40, "high_threshold": 120}, "opencv_canny_luma").maps
    for index in range(2):
        expected = cv2.Canny(gray_u8(images[index].numpy()), 40, 120)
        assert np.array_equal(map_u8(out, index), expected)
        assert torch.equal(out[index, :, :, 0], out[index, :, :, 2])


def test_canny_input_clamps_nan_and_out_of_range_without_writing_the_input():
    frame = np.array([[[np.nan, -2.0, 0.5], [1.0, 3.0, 0.2]]], np.float32)
    before = frame.copy()
    assert canny_input_u8(frame).tolist() == [[[0, 0, 128], [255, 255, 51]]]
    assert np.array_equal(frame, before, equal_nan=True)
    assert canny_input_u8(np.concatenate([frame, np.ones_like(frame[..., :1])], axis=2)).shape == (1, 2, 3)


def test_canny_thresholds_change_the_result():
    photo = as_image(photos()[0])
    for method in ("opencv_canny", "opencv_canny_luma"):
        many = run_local(photo, "canny", {"low_threshold": 10, "high_threshold": 30}, method).maps.mean()
        few = run_local(photo, "canny", {"low_threshold": 200, "high_threshold": 255}, method).maps.mean()
        assert many > 2 * few


def test_grayscale_levels_maths():
    gray = np.array([[0.0, 0.25, 0.5, 0.75, 1.0]], np.float32)
    assert grayscale_levels(gray, 1.0, 0, 255).tolist() == [[0, 64, 128, 191, 255]]
    # contrast x2 around mid-gray: 0.25 -> 0, 0.75 -> 1
    assert grayscale_levels(gray, 2.0, 0, 255).tolist() == [[0, 0, 128, 255, 255]]
    assert grayscale_levels(gray, 0.0, 0, 255).tolist() == [[128] * 5]
    # window 64..191 stretched to 0..255
    assert grayscale_levels(gray, 1.0, 64, 191).tolist() == [[0, 0, 128, 255, 255]]
    # min == max: a hard threshold
    assert grayscale_levels(gray, 1.0, 127, 127).tolist() == [[0, 0, 255, 255, 255]]


def test_grayscale_through_the_runner_is_gray_and_sized():
    out = run_local(scene(), "grayscale", {"factor": 1.0, "min_threshold": 0, "max_threshold": 255}).maps
    assert out.shape == (1, 96, 128, 3)
    assert torch.equal(out[..., 0], out[..., 1])
    expected = gray_u8(scene()[0].numpy())
    assert np.abs((out[0, :, :, 0].numpy() * 255).round() - expected).max() <= 1


@pytest.mark.parametrize("modality", ["mlsd", "scribble", "sketch"])
def test_line_detectors_draw_white_strokes_on_black(modality):
    out = run_local(scene(), modality, {}).maps
    assert out.shape == (1, 96, 128, 3)
    channel = out[0, :, :, 0]
    white = float((channel > 0.5).float().mean())
    assert 0.005 < white < 0.4, white  # some strokes, mostly black
    assert float(channel[2:8, 2:8].max()) < 0.5  # flat background stays black
    # strokes lie on the rectangle's or the line's outline
    rect_edge = channel[19:73, 24:26].max()
    line_area = channel[16:80, 76:118].max()
    assert rect_edge > 0.5 or line_area > 0.5


def test_mlsd_keeps_long_straight_segments_only():
    canvas = np.full((128, 128, 3), 255, np.uint8)
    cv2.line(canvas, (10, 64), (118, 64), (0, 0, 0), 3)
    out = run_local(torch.from_numpy(canvas.astype(np.float32) / 255)[None], "mlsd", {}).maps
    rows = np.where(out[0, :, :, 0].numpy().max(axis=1) > 0.5)[0]
    assert rows.size and rows.min() >= 58 and rows.max() <= 70


@pytest.mark.parametrize("modality", WEIGHT_FREE)
@pytest.mark.parametrize("shape", [(1, 1, 1, 3), (1, 2, 3, 3), (3, 17, 5, 4), (2, 40, 30, 1), (31, 23, 3)])
def test_any_shape_gives_same_size_three_channel_maps(modality, shape):
    images = torch.rand(*shape, generator=torch.Generator().manual_seed(2))
    out = run_local(images, modality, {}).maps
    batch = 1 if len(shape) == 3 else shape[0]
    assert out.shape == (batch, shape[-3], shape[-2], 3)
    assert out.dtype == torch.float32 and float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize("modality", WEIGHT_FREE)
def test_nan_and_out_of_range_pixels_are_handled(modality):
    images = scene().clone()
    images[0, :10, :10] = float("nan")
    images[0, 10:20, :10] = 3.0
    images[0, 20:30, :10] = -2.0
    out = run_local(images, modality, {}).maps
    assert torch.isfinite(out).all() and float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize("modality", WEIGHT_FREE)
def test_alpha_channel_does_not_change_the_map_and_runs_are_deterministic(modality):
    rgb = scene()
    rgba = torch.cat([rgb, torch.zeros_like(rgb[..., :1])], dim=-1)
    assert torch.equal(run_local(rgb, modality, {}).maps, run_local(rgba, modality, {}).maps)
    assert torch.equal(run_local(rgb, modality, {}).maps, run_local(rgb, modality, {}).maps)


def test_batch_order_is_kept():
    images = torch.cat([scene(), torch.zeros(1, 96, 128, 3), scene()])
    out = run_local(images, "canny", {}).maps
    assert torch.equal(out[0], out[2]) and float(out[1].max()) == 0


def test_run_detect_errors_are_actionable():
    with pytest.raises(DetectError, match="low_threshold .* greater than high_threshold"):
        run_detect(scene(), "canny", {"low_threshold": 250, "high_threshold": 10})
    with pytest.raises(DetectError, match="empty"):
        run_detect(torch.rand(0, 8, 8, 3), "canny", {})
    with pytest.raises(DetectError, match="does not apply to modality"):
        run_detect(scene(), "canny", {}, local_method="xdog")


def test_large_image_runs_at_full_size():
    images = torch.rand(1, 2048, 3072, 3, generator=torch.Generator().manual_seed(3))
    out = run_local(images, "canny", {}).maps
    assert out.shape == (1, 2048, 3072, 3)
