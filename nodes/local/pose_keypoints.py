"""Pose keypoints as data: ComfyUI's ``POSE_KEYPOINT`` values (the OpenPose JSON shape).

One entry per image::

    {"canvas_width": W, "canvas_height": H,
     "people": [{"pose_keypoints_2d": [x, y, c] * 18, "foot_keypoints_2d": [x, y, c] * 6,
                 "face_keypoints_2d": [x, y, c] * 70,
                 "hand_left_keypoints_2d": [x, y, c] * 21, "hand_right_keypoints_2d": [x, y, c] * 21}]}

Coordinates are pixels of the *input* image (W x H), whatever size the network ran at, as ComfyUI
core's SDPose nodes write them. A point that is missing or under ``keypoint_threshold`` is
``0, 0, 0``, so every consumer that skips ``c == 0`` agrees with our drawing.

The 6 foot points are COCO-WholeBody's (left big toe, left small toe, left heel, then the right foot's), the
order of core's SDPose output, which inserts them right after the 18 body points.

A part the method did not look for or did not find (hands, feet and face of a body-only method) is a full
list of zeros, not ``None`` or ``[]``: core's ``SDPoseDrawKeypoints`` reshapes the face and both hands
(and the feet, when the key is there) to ``(n, 3)`` unconditionally (``None``/``[]`` would crash it),
its face-box node skips an all-zero face, and comfyui_controlnet_aux's decoder reads zero confidence as
"not detected".

Every pose method builds its entries here, so the shape has one definition.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BODY_POINTS = 18  # OpenPose COCO-18 order: nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, ...
FACE_POINTS = 70
HAND_POINTS = 21
FOOT_POINTS = 6

PoseKeypointFrame = dict[str, Any]


def flat_points(points: np.ndarray | None, count: int, threshold: float) -> list[float]:
    """``[count, 3]`` (x, y, confidence) in input pixels -> the flat list of ``3 * count`` floats.

    Rows under ``threshold``, non-finite rows, rows missing from a short array and every row of
    ``None`` (the part was not looked for or not found) become 0, 0, 0.
    """
    out = np.zeros((count, 3), dtype=np.float64)
    if points is not None:
        rows = np.asarray(points, dtype=np.float64).reshape(-1, 3)[:count]
        keep = np.isfinite(rows).all(axis=1) & (rows[:, 2] >= threshold) & (rows[:, 2] > 0)
        out[: len(rows)][keep] = rows[keep]
    return [float(v) for v in out.reshape(-1)]


def person_entry(
    body: np.ndarray | None,
    threshold: float,
    face: np.ndarray | None = None,
    left_hand: np.ndarray | None = None,
    right_hand: np.ndarray | None = None,
    feet: np.ndarray | None = None,
) -> dict[str, list[float]]:
    """One person; each part is ``[n, 3]`` (x, y, confidence) in input-image pixels, or None."""
    return {
        "pose_keypoints_2d": flat_points(body, BODY_POINTS, threshold),
        "foot_keypoints_2d": flat_points(feet, FOOT_POINTS, threshold),
        "face_keypoints_2d": flat_points(face, FACE_POINTS, threshold),
        "hand_left_keypoints_2d": flat_points(left_hand, HAND_POINTS, threshold),
        "hand_right_keypoints_2d": flat_points(right_hand, HAND_POINTS, threshold),
    }


def frame_entry(width: int, height: int, people: list[dict[str, Any]] | None = None) -> PoseKeypointFrame:
    return {"canvas_width": int(width), "canvas_height": int(height), "people": list(people or [])}


def empty_frames(batch: int, height: int, width: int) -> list[PoseKeypointFrame]:
    """What non-pose modalities and the cloud backend give: one empty entry per image."""
    return [frame_entry(width, height) for _ in range(batch)]
