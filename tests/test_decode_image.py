"""images.decode_image: what the CLI reads from files and the scenario backend from result PNGs."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from scenario_detect.nodes.images import ImageInputError, decode_image


def _png(image: Image.Image, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **save)
    return buffer.getvalue()


def _gradient16(width: int = 1000, height: int = 4) -> np.ndarray:
    """0..65535 across the row: 1000 levels, most of them between two 8-bit levels."""
    row = np.round(np.linspace(0, 65535, width)).astype(np.uint16)
    return np.tile(row, (height, 1))


def test_16_bit_gray_png_keeps_its_precision() -> None:
    levels = _gradient16()
    ok, data = cv2.imencode(".png", levels)
    assert ok and Image.open(io.BytesIO(data.tobytes())).mode == "I;16"  # the mode that used to clip
    decoded = decode_image(data.tobytes())
    assert decoded.shape == (4, 1000, 3) and decoded.dtype == np.float32
    expected = levels.astype(np.float64) / 65535
    assert np.abs(decoded[..., 0] - expected).max() < 1e-6  # 16-bit precise, not 8-bit
    assert np.array_equal(decoded[..., 0], decoded[..., 2])
    assert len(np.unique(decoded[0, :, 0])) == 1000  # no clipping at 255/65535, no 8-bit steps


@pytest.mark.parametrize("extension", [".png", ".tiff"])
def test_16_bit_rgb_keeps_its_precision_and_channel_order(extension: str) -> None:
    levels = _gradient16()
    rgb = np.stack([levels, 65535 - levels, levels // 3], -1).astype(np.uint16)
    ok, data = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    decoded = decode_image(data.tobytes())
    assert np.abs(decoded - rgb.astype(np.float64) / 65535).max() < 1e-6


def test_16_bit_rgba_drops_alpha_and_keeps_precision() -> None:
    levels = _gradient16()
    rgba = np.stack([levels, levels // 2, levels // 5, np.full_like(levels, 1000)], -1)
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    assert ok
    decoded = decode_image(data.tobytes())
    assert np.abs(decoded - rgba[..., :3].astype(np.float64) / 65535).max() < 1e-6


def test_32_bit_int_and_float_modes() -> None:
    ints = Image.fromarray(_gradient16().astype(np.int32), "I")
    tiff = io.BytesIO()
    ints.save(tiff, "TIFF")
    decoded = decode_image(tiff.getvalue())
    assert np.abs(decoded[..., 1] - _gradient16() / 65535).max() < 1e-6

    floats = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(4, 16)  # already 0..1: kept as is
    buffer = io.BytesIO()
    Image.fromarray(floats, "F").save(buffer, "TIFF")
    assert np.abs(decode_image(buffer.getvalue())[..., 0] - floats).max() < 1e-7

    depth = floats * 40 + 10  # metres, say: no white point, stretched and said so
    buffer = io.BytesIO()
    Image.fromarray(depth, "F").save(buffer, "TIFF")
    notes: list[str] = []
    decoded = decode_image(buffer.getvalue(), "depth.tiff", notes)
    assert decoded.min() == 0.0 and decoded.max() == 1.0
    assert notes and "depth.tiff" in notes[0] and "stretched" in notes[0]


def _oriented_jpeg(orientation: int) -> tuple[bytes, Image.Image]:
    rng = np.random.default_rng(orientation)
    base = Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))  # landscape, as the sensor saw it
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    base.save(buffer, "PNG", exif=exif)
    data = buffer.getvalue()
    return data, ImageOps.exif_transpose(Image.open(io.BytesIO(data)))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_loadimage(orientation: int) -> None:
    data, expected = _oriented_jpeg(orientation)
    decoded = decode_image(data)
    assert decoded.shape[:2] == (expected.height, expected.width)
    assert np.array_equal(np.rint(decoded * 255).astype(np.uint8), np.asarray(expected.convert("RGB")))


def test_portrait_phone_photo_stays_portrait() -> None:
    data, _ = _oriented_jpeg(6)
    assert decode_image(data).shape[:2] == (50, 30)


def test_multi_frame_file_says_which_frame_is_used() -> None:
    frames = [Image.new("RGB", (8, 6), color) for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    notes: list[str] = []
    decoded = decode_image(buffer.getvalue(), "anim.gif", notes)
    assert notes == ["anim.gif has 3 frames; the first one is used"]
    assert decoded[0, 0, 0] > 0.9 and decoded[0, 0, 1] < 0.1  # red: the first frame


def test_errors_name_the_file() -> None:
    with pytest.raises(ImageInputError, match=r"^holiday\.png is not a readable image \(5 bytes\)"):
        decode_image(b"nope!", "holiday.png")
