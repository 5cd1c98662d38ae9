"""IMAGE tensors <-> arrays, PNG and data URLs: the hot path around every detector.

ComfyUI's IMAGE is a float32 torch tensor [B, H, W, C] in 0..1 with C = 3 by convention. Existing
packs convert each image to uint8 RGB with several numpy passes, then back; most of their time goes
there, not into the detector. Here every conversion is one OpenCV pass over a zero-copy numpy view,
and results are written straight into a preallocated output tensor.

Bad values are converted, not propagated: NaN becomes 0 and values outside 0..1 are clamped.
"""

from __future__ import annotations

import base64
import io
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed

import cv2
import numpy as np
import torch

log = logging.getLogger("scenario_detect")

# Images larger than this many pixels per side are refused: they are almost always a wiring
# mistake, and an edge map of one would need tens of GB.
MAX_SIDE = 16384


class ImageInputError(ValueError):
    """The IMAGE input cannot be used; the message says why and what to do."""


def to_batch(images: torch.Tensor) -> torch.Tensor:
    """Normalise any IMAGE-like tensor to float32 [B, H, W, C] on the CPU, C in {1, 3, 4}.

    Copies only when it must (another dtype or device, non-contiguous memory). Accepts [H, W],
    [H, W, C] and [B, H, W, C]; a channels-first tensor or an empty batch is refused with a
    message that says what was received.
    """
    if not isinstance(images, torch.Tensor):
        raise ImageInputError(f"expected an IMAGE tensor, got {type(images).__name__}")
    if images.ndim == 2:
        images = images[None, :, :, None]
    elif images.ndim == 3:
        images = images[None] if images.shape[-1] in (1, 3, 4) else images[..., None]
    if images.ndim != 4:
        raise ImageInputError(
            f"expected an IMAGE of shape [batch, height, width, channels], got {list(images.shape)}"
        )
    batch, height, width, channels = images.shape
    if batch == 0:
        raise ImageInputError("the IMAGE batch is empty (0 images): connect a node that outputs images")
    if channels not in (1, 3, 4):
        hint = " (it looks channels-first; ComfyUI images are channels-last)" if height in (1, 3, 4) else ""
        raise ImageInputError(
            f"expected 1, 3 or 4 channels in the last dimension, got shape {list(images.shape)}{hint}"
        )
    if height == 0 or width == 0:
        raise ImageInputError(f"the image has no pixels: shape {list(images.shape)}")
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ImageInputError(
            f"image of {width}x{height} is larger than {MAX_SIDE} px on a side; scale it down first"
        )
    if images.dtype != torch.float32 and not images.is_floating_point():
        # Integer tensors are taken as 0..255 images.
        images = images.to(torch.float32) / 255.0
    return images.detach().to("cpu", torch.float32).contiguous()


def _gray_float(frame: np.ndarray) -> np.ndarray:
    """Luma (BT.601, as cv2 and PIL compute it) of one [H, W, C] float frame, NaN -> 0."""
    channels = frame.shape[2]
    if channels == 1:
        gray = frame[:, :, 0].copy()
    else:
        code = cv2.COLOR_RGB2GRAY if channels == 3 else cv2.COLOR_RGBA2GRAY
        gray = cv2.cvtColor(frame, code)
    cv2.patchNaNs(gray, 0)
    return gray


def gray_u8(frame: np.ndarray) -> np.ndarray:
    """[H, W] uint8 luma of one [H, W, C] float 0..1 frame; NaN -> 0, clamped, rounded."""
    gray = _gray_float(frame)
    cv2.threshold(gray, 0, 0, cv2.THRESH_TOZERO, dst=gray)  # negatives -> 0 (abs comes next)
    return cv2.convertScaleAbs(gray, alpha=255.0)


def gray_float(frame: np.ndarray) -> np.ndarray:
    """[H, W] float32 luma in 0..1 of one frame; NaN -> 0, clamped."""
    gray = _gray_float(frame)
    np.clip(gray, 0.0, 1.0, out=gray)
    return gray


def rgb_float(frame: np.ndarray) -> np.ndarray:
    """[H, W, 3] float32 RGB in 0..1 (alpha dropped, gray repeated); NaN -> 0, clamped. A copy."""
    channels = frame.shape[2]
    if channels == 1:
        rgb = np.repeat(frame, 3, axis=2)
    else:
        rgb = np.array(frame[:, :, :3], dtype=np.float32, copy=True)
    np.nan_to_num(rgb, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    np.clip(rgb, 0.0, 1.0, out=rgb)
    return rgb


def rgb_u8(frame: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 RGB of one frame; NaN -> 0, clamped, rounded."""
    rgb = rgb_float(frame)
    return cv2.convertScaleAbs(rgb, alpha=255.0)


def sanitized(images: torch.Tensor) -> torch.Tensor:
    """[B, H, W, 3] float32 0..1 without NaN: what model-backed detectors receive."""
    batch = to_batch(images)
    if batch.shape[-1] == 3 and bool(torch.isfinite(batch).all()) and float(batch.min()) >= 0.0 \
            and float(batch.max()) <= 1.0:
        return batch
    frames = batch.numpy()
    return torch.from_numpy(np.stack([rgb_float(f) for f in frames]))


def _new_image(batch: int, height: int, width: int) -> np.ndarray:
    # numpy, not torch.empty: numpy asks Linux for huge pages on large buffers, which cuts the
    # page-fault cost of a fresh 12 MB output from ~5 ms to ~1 ms per 1024 px image.
    return np.empty((batch, height, width, 3), dtype=np.float32)


def _write_map(single: np.ndarray, out: np.ndarray) -> None:
    """Write one uint8 map ([H, W] or [H, W, 3]) into a float32 [H, W, 3] slot, scaled to 0..1."""
    rgb = cv2.cvtColor(single, cv2.COLOR_GRAY2RGB) if single.ndim == 2 else single
    np.multiply(rgb, np.float32(1.0 / 255.0), out=out, casting="unsafe")


def map_frames(
    images: torch.Tensor,
    detector: Callable[[np.ndarray], np.ndarray],
    on_image_done: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Run a per-frame uint8 detector over a batch into a new IMAGE of the same size.

    Frames are zero-copy views of the input. OpenCV releases the GIL, so frames run on a small
    thread pool (one thread per core): detection of one frame overlaps the memory-bound
    conversions of another. The detector must return a map of the frame's height and width.
    """
    frames = to_batch(images).numpy()
    count, height, width = frames.shape[:3]
    out = _new_image(count, height, width)

    def one(index: int) -> None:
        _write_map(detector(frames[index]), out[index])

    workers = min(count, os.cpu_count() or 1, 8)
    if workers <= 1:
        for index in range(count):
            one(index)
            if on_image_done is not None:
                on_image_done(index + 1)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="detect") as pool:
            futures = [pool.submit(one, index) for index in range(count)]
            for done, future in enumerate(as_completed(futures), start=1):
                future.result()
                if on_image_done is not None:
                    on_image_done(done)
    return torch.from_numpy(out)


def resize_to(frame: np.ndarray, height: int, width: int, nearest: bool = False) -> np.ndarray:
    """Resize a frame to exactly height x width (area when shrinking, cubic when growing).

    ``nearest`` keeps exact colours (palette maps such as segmentation: no blended colours that
    belong to no class).
    """
    if frame.shape[0] == height and frame.shape[1] == width:
        return frame
    shrinking = frame.shape[0] * frame.shape[1] > height * width
    if nearest:
        interpolation = cv2.INTER_NEAREST
    else:
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    resized = cv2.resize(frame, (width, height), interpolation=interpolation)
    if frame.dtype != np.uint8:
        np.clip(resized, 0.0, 1.0, out=resized)
    if frame.ndim == 3 and resized.ndim == 2:
        resized = resized[:, :, None]
    return resized


def encode_image(frame: np.ndarray, extension: str = ".png", jpeg_quality: int | None = None) -> bytes:
    """PNG (or JPEG with ``extension=".jpg"``) bytes of one [H, W, C] float 0..1 or uint8 RGB frame."""
    u8 = frame if frame.dtype == np.uint8 else rgb_u8(frame)
    if u8.ndim == 3 and u8.shape[2] == 3:
        u8 = cv2.cvtColor(u8, cv2.COLOR_RGB2BGR)
    options = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if jpeg_quality is not None else []
    ok, buffer = cv2.imencode(extension, u8, options)
    if not ok:
        raise ImageInputError(f"could not encode the image as {extension.lstrip('.').upper()}")
    return buffer.tobytes()


def encode_png(frame: np.ndarray) -> bytes:
    return encode_image(frame, ".png")


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def decode_image(data: bytes) -> np.ndarray:
    """[H, W, 3] float32 0..1 RGB from encoded image bytes (PNG, JPEG, WebP...); alpha dropped."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ImageInputError(f"the data is not a readable image ({len(data)} bytes): {error}") from None
    return np.asarray(rgb, dtype=np.float32) / np.float32(255.0)
