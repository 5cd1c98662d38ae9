"""OpenPose-style drawing (the format ControlNet's pose models were trained on), with OpenCV only.

Coordinates are normalised to 0..1; ``None`` (or a non-positive coordinate) means "not detected".
Body: the 18-keypoint COCO layout, 17 limbs as ellipses in 60 % of their colour and joints as dots;
hands: 21 keypoints, 20 bones coloured around the hue circle, blue joints; face: white dots.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import cv2
import numpy as np

# Limbs as pairs of 1-based keypoint numbers (neck = 2, nose = 1), in OpenPose's drawing order.
BODY_LIMBS = (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11),
    (2, 12), (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18),
)  # fmt: skip
# One RGB colour per limb and per keypoint: the hue turns from red through green to magenta.
BODY_COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
HAND_BONES = tuple((0 if i % 4 == 0 else i, i + 1) for i in range(20))  # wrist -> 4 joints per finger


class Point(NamedTuple):
    """A keypoint as the drawing takes it: coordinates normalised to 0..1."""

    x: float
    y: float


def _xy(point: Any, width: int, height: int) -> tuple[int, int] | None:
    if point is None or point.x <= 0.0 or point.y <= 0.0:
        return None
    return int(point.x * width), int(point.y * height)


def draw_body(canvas: np.ndarray, keypoints: Sequence[Any], stick: int = 4) -> None:
    height, width = canvas.shape[:2]
    for (a, b), colour in zip(BODY_LIMBS, BODY_COLOURS, strict=False):
        p, q = keypoints[a - 1], keypoints[b - 1]
        if _xy(p, width, height) is None or _xy(q, width, height) is None:
            continue
        # Float geometry truncated at the end, as OpenPose's drawing does (its maps are the format).
        x0, y0, x1, y1 = p.x * width, p.y * height, q.x * width, q.y * height
        centre = (int((x0 + x1) / 2), int((y0 + y1) / 2))
        half_length = int(math.hypot(x0 - x1, y0 - y1) / 2)
        angle = int(math.degrees(math.atan2(y0 - y1, x0 - x1)))
        polygon = cv2.ellipse2Poly(centre, (half_length, stick), angle, 0, 360, 1)
        cv2.fillConvexPoly(canvas, polygon, [int(c * 0.6) for c in colour])
    for point, colour in zip(keypoints, BODY_COLOURS, strict=False):
        xy = _xy(point, width, height)
        if xy is not None:
            cv2.circle(canvas, xy, stick, colour, thickness=-1)


def draw_hand(canvas: np.ndarray, keypoints: Sequence[Any] | None) -> None:
    if not keypoints:
        return
    height, width = canvas.shape[:2]
    for index, (a, b) in enumerate(HAND_BONES):
        p, q = _xy(keypoints[a], width, height), _xy(keypoints[b], width, height)
        if p is not None and q is not None:
            rgb = colorsys.hsv_to_rgb(index / len(HAND_BONES), 1.0, 1.0)
            cv2.line(canvas, p, q, [int(c * 255) for c in rgb], thickness=2)
    for point in keypoints:
        xy = _xy(point, width, height)
        if xy is not None:
            cv2.circle(canvas, xy, 4, (0, 0, 255), thickness=-1)


def draw_face(canvas: np.ndarray, keypoints: Sequence[Any] | None) -> None:
    height, width = canvas.shape[:2]
    for point in keypoints or ():
        xy = _xy(point, width, height)
        if xy is not None:
            cv2.circle(canvas, xy, 3, (255, 255, 255), thickness=-1)


def draw_people(people: Sequence[tuple[Sequence[Any], Any, Any, Any]], height: int, width: int) -> np.ndarray:
    """An RGB uint8 canvas with every (body, left hand, right hand, face) drawn on black."""
    canvas = np.zeros((height, width, 3), np.uint8)
    for body, left, right, face in people:
        draw_body(canvas, body)
        draw_hand(canvas, left)
        draw_hand(canvas, right)
        draw_face(canvas, face)
    return canvas
