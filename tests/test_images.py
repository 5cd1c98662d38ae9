"""IMAGE conversions: shapes, dtypes, bad values, PNG round trips."""

import numpy as np
import pytest
import torch

from scenario_detect.nodes import images as ops


def test_shapes_are_normalised_without_copying():
    image = torch.rand(2, 5, 7, 3)
    assert ops.to_batch(image).data_ptr() == image.data_ptr()
    assert ops.to_batch(torch.rand(5, 7)).shape == (1, 5, 7, 1)
    assert ops.to_batch(torch.rand(5, 7, 3)).shape == (1, 5, 7, 3)
    assert ops.to_batch(torch.rand(5, 7, 4)).shape == (1, 5, 7, 4)
    assert ops.to_batch(torch.rand(2, 5, 7, 3, dtype=torch.float16)).dtype == torch.float32
    as_int = ops.to_batch(torch.full((1, 2, 2, 3), 255, dtype=torch.uint8))
    assert torch.all(as_int == 1.0)


@pytest.mark.parametrize(
    ("tensor", "fragment"),
    [
        (torch.rand(0, 8, 8, 3), "empty"),
        (torch.rand(1, 3, 8, 8), "channels-first"),
        (torch.rand(1, 8, 8, 2), "1, 3 or 4 channels"),
        (torch.rand(1, 1, 8, 8, 3), "expected an IMAGE of shape"),
        (torch.rand(1, 0, 8, 3), "no pixels"),
        (torch.empty(1, ops.MAX_SIDE + 1, 1, 3), "larger than"),
        ("not a tensor", "expected an IMAGE tensor"),
    ],
)
def test_bad_inputs_are_refused_clearly(tensor, fragment):
    with pytest.raises(ops.ImageInputError, match=fragment):
        ops.to_batch(tensor)


def test_gray_matches_opencv_luma_of_uint8_images():
    import cv2

    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    frame = u8.astype(np.float32) / 255
    expected = cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY)
    assert np.abs(ops.gray_u8(frame).astype(int) - expected).max() <= 1


def test_bad_pixel_values_become_black_or_clamped():
    frame = np.array([[[np.nan, np.nan, np.nan], [-1, -1, -1], [2, 2, 2], [0.5, 0.5, 0.5]]], np.float32)
    assert ops.gray_u8(frame).tolist() == [[0, 0, 255, 128]]
    assert ops.gray_float(frame).tolist() == [[0.0, 0.0, 1.0, 0.5]]
    rgb = ops.rgb_u8(frame)
    assert rgb[0, :, 0].tolist() == [0, 0, 255, 128]
    clean = ops.sanitized(torch.from_numpy(frame)[None])
    assert torch.isfinite(clean).all() and clean.min() >= 0 and clean.max() <= 1


def test_alpha_is_ignored_and_single_channel_is_gray():
    rgb = np.random.default_rng(2).random((9, 11, 3), dtype=np.float32)
    rgba = np.concatenate([rgb, np.zeros((9, 11, 1), np.float32)], axis=2)
    assert np.array_equal(ops.gray_u8(rgba), ops.gray_u8(rgb))
    gray = rgb[:, :, :1].copy()
    assert np.array_equal(ops.gray_u8(gray), np.rint(gray[:, :, 0] * 255).astype(np.uint8))
    assert ops.rgb_float(gray).shape == (9, 11, 3)


def test_maps_are_scaled_and_expanded_to_rgb():
    maps = [np.array([[0, 255]], np.uint8), np.array([[[255, 0, 51], [0, 0, 0]]], np.uint8)]
    frames = torch.stack([torch.full((1, 2, 3), float(i)) for i in range(2)])
    out = ops.map_frames(frames, lambda f: maps[int(f[0, 0, 0])])
    assert out.dtype == torch.float32 and out.shape == (2, 1, 2, 3)
    assert out[0, 0, 1].tolist() == [1.0, 1.0, 1.0]
    assert out[1, 0, 0].tolist() == pytest.approx([1.0, 0.0, 0.2])


def test_map_frames_keeps_order_with_threads():
    batch = torch.stack([torch.full((4, 6, 3), i / 10) for i in range(7)])
    seen = []
    out = ops.map_frames(batch, lambda f: np.full(f.shape[:2], int(f[0, 0, 0] * 100), np.uint8), seen.append)
    assert [round(float(out[i, 0, 0, 0]) * 255) for i in range(7)] == [i * 10 for i in range(7)]
    assert sorted(seen) == list(range(1, 8))


def test_png_round_trip_and_data_url():
    frame = np.random.default_rng(3).integers(0, 256, (5, 4, 3)).astype(np.float32) / 255
    decoded = ops.decode_image(ops.encode_png(frame))
    assert decoded.shape == (5, 4, 3)
    assert np.abs(decoded - frame).max() < 1 / 255 + 1e-6
    assert ops.data_url(b"\x89PNG", "image/png") == "data:image/png;base64,iVBORw=="


def test_decode_refuses_non_images():
    with pytest.raises(ops.ImageInputError, match="not a readable image"):
        ops.decode_image(b"<html>nope</html>")


def test_resize_to_exact_size():
    frame = np.random.default_rng(4).random((10, 20, 3), dtype=np.float32)
    assert ops.resize_to(frame, 10, 20) is frame
    small = ops.resize_to(frame, 5, 7)
    assert small.shape == (5, 7, 3) and small.min() >= 0 and small.max() <= 1
    assert ops.resize_to(frame, 31, 17).shape == (31, 17, 3)
    assert ops.resize_to(frame[:, :, :1], 4, 4).shape == (4, 4, 1)
