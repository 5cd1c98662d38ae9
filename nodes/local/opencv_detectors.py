"""Weight-free detectors built on OpenCV: canny, grayscale levels, pencil sketch, XDoG scribble,
line segments. Each takes the raw IMAGE batch and returns white-on-black maps of the same size.

Blur radii and stroke widths scale with the image's short side (reference 512 px), so a 2048 px
image gives the same look as a 512 px one instead of hair-thin lines.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from .. import host
from ..images import gray_float, gray_u8, map_frames

REFERENCE_SIDE = 512.0


def _scale(frame: np.ndarray) -> float:
    return min(frame.shape[0], frame.shape[1]) / REFERENCE_SIDE


def _progress(images: torch.Tensor):
    return host.progress_bar(int(images.shape[0]))


# Rows converted at a time by canny_input_u8: the float scratch strip (~400 KB at 1024 px wide) stays in
# cache and is reused, instead of a full-size float temporary (12 MB of fresh pages per 1024 px image).
_STRIP_ROWS = 32


def canny_input_u8(frame: np.ndarray) -> np.ndarray:
    """The uint8 image the canny annotator reads: RGB (alpha dropped) or the single gray channel.

    The float frame is a view of the caller's IMAGE and is not written. Per strip of rows: negatives
    and NaN -> 0, then x255 rounded and saturated (values above 1 -> 255).
    """
    if frame.shape[2] == 4:
        frame = frame[:, :, :3]
    height, width, channels = frame.shape
    out = np.empty((height, width, channels), np.uint8)
    scratch = np.empty((min(height, _STRIP_ROWS), width, channels), np.float32)
    for top in range(0, height, _STRIP_ROWS):
        rows = frame[top : top + _STRIP_ROWS]
        positive = scratch[: rows.shape[0]]
        cv2.threshold(rows, 0, 0, cv2.THRESH_TOZERO, dst=positive)  # NaN > 0 is false: NaN -> 0 too
        cv2.convertScaleAbs(positive, dst=out[top : top + _STRIP_ROWS], alpha=255.0)
    return out if channels > 1 else out[:, :, 0]


def canny(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """cv2.Canny on the RGB image, as ControlNet's canny annotator (lllyasviel's and controlnet-aux's
    CannyDetector) computes the maps canny ControlNets were trained on: per pixel, the gradient of the
    strongest channel, so edges between colours of similar luma are kept. Same size, no resize."""
    low, high = int(params["low_threshold"]), int(params["high_threshold"])
    return map_frames(images, lambda frame: cv2.Canny(canny_input_u8(frame), low, high), _progress(images))


def canny_luma(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """cv2.Canny on the luma (BT.601), as ComfyUI core's Canny node sees the image: about 4x cheaper,
    but an outline between colours of similar luma (a green disc on mauve) is lost."""
    low, high = int(params["low_threshold"]), int(params["high_threshold"])
    return map_frames(images, lambda frame: cv2.Canny(gray_u8(frame), low, high), _progress(images))


def grayscale_levels(gray: np.ndarray, factor: float, min_threshold: int, max_threshold: int) -> np.ndarray:
    """Contrast around mid-gray, then the min..max window stretched to 0..255 (uint8).

    v = (gray - 0.5) * factor + 0.5 on a 0..1 scale; then levels at or below min_threshold are
    black, at or above max_threshold white, linear in between. With min == max it is a hard
    threshold at that level.
    """
    value = (gray - np.float32(0.5)) * np.float32(factor) + np.float32(0.5)
    value *= np.float32(255.0)
    if max_threshold > min_threshold:
        value -= np.float32(min_threshold)
        value *= np.float32(255.0 / (max_threshold - min_threshold))
    else:
        value = np.where(value >= min_threshold, np.float32(255.0), np.float32(0.0))
    np.clip(value, 0.0, 255.0, out=value)
    return np.rint(value).astype(np.uint8)


def grayscale(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """Grayscale levels of the whole image (``remove_background`` is handled by ``local.grayscale``)."""
    factor = float(params["factor"])
    low, high = int(params["min_threshold"]), int(params["max_threshold"])
    return map_frames(
        images, lambda frame: grayscale_levels(gray_float(frame), factor, low, high), _progress(images)
    )


def _pencil(frame: np.ndarray) -> np.ndarray:
    # Dodge blend: a pixel darker than its blurred neighbourhood is a pencil stroke.
    # A light pre-blur and a small dead zone keep sensor noise from turning into grain.
    scale = _scale(frame)
    gray = cv2.GaussianBlur(gray_float(frame), (0, 0), max(0.6, 0.8 * scale))
    blurred = cv2.GaussianBlur(gray, (0, 0), max(1.5, 3.0 * scale))
    ratio = gray / np.maximum(blurred, np.float32(1e-3))
    lines = (np.float32(0.97) - ratio) * np.float32(8.0 * 255.0)
    np.clip(lines, 0.0, 255.0, out=lines)
    return lines.astype(np.uint8)


def sketch_pencil(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    return map_frames(images, _pencil, _progress(images))


def _xdog(frame: np.ndarray) -> np.ndarray:
    # Difference of Gaussians on the luma: dark detail against a lighter surround becomes a stroke,
    # then strokes are thickened a little, as hand-drawn scribbles are.
    gray = gray_float(frame) * np.float32(255.0)
    scale = _scale(frame)
    fine = cv2.GaussianBlur(gray, (0, 0), max(0.5, 0.5 * scale))
    coarse = cv2.GaussianBlur(gray, (0, 0), max(2.0, 5.0 * scale))
    strokes = ((coarse - fine) > np.float32(16.0)).astype(np.uint8) * np.uint8(255)
    radius = max(1, round(1.5 * scale))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(strokes, kernel)


def scribble_xdog(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    return map_frames(images, _xdog, _progress(images))


def _line_segments(frame: np.ndarray) -> np.ndarray:
    # Straight segments only (what M-LSD models condition on), short ones dropped as texture.
    gray = gray_u8(frame)
    height, width = gray.shape
    canvas = np.zeros((height, width), np.uint8)
    if min(height, width) < 8:
        return canvas
    segments = cv2.createLineSegmentDetector(cv2.LSD_REFINE_STD).detect(gray)[0]
    if segments is None:
        return canvas
    segments = segments.reshape(-1, 4)
    lengths = np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])
    keep = segments[lengths >= 0.03 * float(np.hypot(height, width))]
    thickness = max(1, round(_scale(frame)))
    for x0, y0, x1, y1 in np.rint(keep).astype(np.int32):
        cv2.line(canvas, (int(x0), int(y0)), (int(x1), int(y1)), 255, thickness, cv2.LINE_8)
    return canvas


def mlsd_lines(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    return map_frames(images, _line_segments, _progress(images))
