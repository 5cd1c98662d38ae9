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
import re
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


def rgb_u8_at(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[h, w, 3] uint8 RGB of one sanitised float frame at ``size`` (h, w), shrunk by area and rounded
    half up (as controlnet-aux prepares a network's input): what the pose networks read."""
    if frame.shape[:2] != size:
        frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray((np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


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


# EXIF orientation (tag 0x0112) -> numpy steps that undo it, as PIL's ImageOps.exif_transpose does.
_ORIENTATION_TAG = 0x0112
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],  # mirrored
    3: lambda a: a[::-1, ::-1],  # upside down
    4: lambda a: a[::-1],  # mirrored vertically
    5: lambda a: a.transpose(1, 0, 2),  # transposed
    6: lambda a: np.rot90(a, 3),  # a phone held upright: turn clockwise
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # transversed
    8: lambda a: np.rot90(a, 1),  # turn counter-clockwise
}
_MAX_16 = np.float32(65535.0)


def _rawmode(image) -> str:
    """The decoder's raw mode ("RGB;16B", "I;16N", ...): how many bits PIL is about to throw away."""
    tile = getattr(image, "tile", None) or []
    if not tile:
        return ""
    args = tile[0][3] if len(tile[0]) > 3 else tile[0].args
    return args[0] if isinstance(args, tuple) and args else args if isinstance(args, str) else ""


def _float_rgb(image, rawmode: str, data: bytes, what: str, notes: list[str]) -> np.ndarray:
    """[H, W, 3] float32 0..1 of a loaded PIL image, every bit depth scaled by its own maximum."""
    mode = image.mode
    if mode in ("RGB", "RGBA", "LA") and "16" in rawmode:
        # PIL reads 16-bit colour as 8 bits; OpenCV keeps all 16 (PNG and TIFF).
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if decoded is not None and decoded.dtype == np.uint16:
            if decoded.ndim == 2:
                decoded = decoded[:, :, None]
            if decoded.shape[2] == 2:  # gray + alpha
                decoded = decoded[:, :, :1]
            elif decoded.shape[2] >= 3:
                decoded = cv2.cvtColor(np.ascontiguousarray(decoded[:, :, :3]), cv2.COLOR_BGR2RGB)
            return np.repeat(decoded, 3, axis=2) * (1 / _MAX_16) if decoded.shape[2] == 1 \
                else decoded * (1 / _MAX_16)
        log.warning("%s: 16-bit colour that OpenCV cannot read; using 8 bits per channel", what)
    if mode.startswith("I;16") or mode == "I":
        # 16-bit gray (PIL reads 16-bit PNG/TIFF/PGM gray as I;16 or I): 65535 is white.
        values = np.asarray(image).astype(np.float32) * (1 / _MAX_16)
        np.clip(values, 0.0, 1.0, out=values)
        return np.repeat(values[:, :, None], 3, axis=2)
    if mode == "F":
        # Float images have no defined white: taken as 0..1 when they lie in it, else stretched min..max.
        values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(values.min()), float(values.max())
        if low < 0.0 or high > 1.0:
            notes.append(f"{what}: floating-point values {low:g}..{high:g} were stretched to 0..1")
            values = (values - low) / (high - low) if high > low else np.zeros_like(values)
        return np.repeat(values[:, :, None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.float32) * np.float32(1.0 / 255.0)


def decode_image(data: bytes, name: str = "", notes: list[str] | None = None) -> np.ndarray:
    """[H, W, 3] float32 0..1 RGB from encoded image bytes (PNG, JPEG, WebP, TIFF...); alpha dropped.

    As careful as ComfyUI's LoadImage: the EXIF orientation is applied (a portrait phone photo stays
    portrait); 16-bit images (gray ``I;16``/``I``, 16-bit RGB PNG/TIFF through OpenCV) keep their
    precision, scaled so 65535 is 1.0; a multi-frame file (GIF, APNG, TIFF pages) gives its first
    frame. ``name`` (a file name) starts every error message; what was assumed (the frame used, a
    stretch) is appended to ``notes`` when given, and logged.
    """
    from PIL import Image, UnidentifiedImageError

    what = name or "the image"
    said: list[str] = []
    try:
        with Image.open(io.BytesIO(data)) as image:
            rawmode = _rawmode(image)  # first: load() (which getexif() may do for a PNG) empties the tiles
            frames = int(getattr(image, "n_frames", 1) or 1)
            if frames > 1:
                said.append(f"{what} has {frames} frames; the first one is used")
                image.seek(0)
            orientation = image.getexif().get(_ORIENTATION_TAG, 1)
            image.load()
            pixels = _float_rgb(image, rawmode, data, what, said)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        subject = f"{name} is not a readable image" if name else "the data is not a readable image"
        # PIL names the buffer by its repr ("cannot identify image file <_io.BytesIO object at 0x...>").
        reason = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", str(error)) or type(error).__name__
        raise ImageInputError(f"{subject} ({len(data)} bytes): {reason}") from None
    if orientation in _ORIENT:
        pixels = _ORIENT[orientation](pixels)
    for line in said:
        log.info("%s", line)
    if notes is not None:
        notes.extend(said)
    return np.ascontiguousarray(pixels, dtype=np.float32)
