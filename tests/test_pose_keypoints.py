"""Pose keypoints as data (ComfyUI's POSE_KEYPOINT): the entry builders and the OpenPose post-processing.

The OpenPose cases start from what controlnet-aux's estimators hand us (the body's ``candidate`` /
``subset`` arrays in network pixels, through its own ``format_body_result``; hand and face peaks
normalised), crafted so the right answer in input-image pixels is known.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scenario_detect.nodes.local import pose_keypoints as pk
from scenario_detect.nodes.local.models import fit_size, from_model
from scenario_detect.nodes.local.pose_drawing import BODY_COLOURS, draw_people

# A non-square input (wider than tall) and the size the network sees it at.
HEIGHT, WIDTH = 200, 300
NET = fit_size(HEIGHT, WIDTH, 128, 1)  # (128, 192)
THRESHOLD = 0.3

# Person A, in input pixels: (keypoint index, x, y, score). Keypoint 6 (left elbow) is under the threshold.
PERSON_A = [(0, 150.0, 40.0, 0.9), (1, 150.0, 70.0, 0.8), (2, 120.0, 72.0, 0.7), (5, 180.0, 72.0, 0.75),
            (6, 195.0, 110.0, 0.2), (8, 130.0, 130.0, 0.6), (11, 170.0, 130.0, 0.65)]  # fmt: skip
# Person B, further right.
PERSON_B = [(0, 255.0, 60.0, 0.95), (1, 255.0, 85.0, 0.9), (2, 240.0, 86.0, 0.85), (5, 270.0, 86.0, 0.8)]


def _crafted_estimator_output() -> tuple[np.ndarray, np.ndarray]:
    """``candidate`` (x, y, score, id) in network pixels and ``subset`` (18 indices, score, parts)."""
    sx, sy = NET[1] / WIDTH, NET[0] / HEIGHT
    candidate, subset = [], []
    for person in (PERSON_A, PERSON_B):
        row = np.full(20, -1.0)
        for index, x, y, score in person:
            row[index] = len(candidate)
            candidate.append((x * sx, y * sy, score, len(candidate)))
        row[18], row[19] = sum(p[3] for p in person), len(person)
        subset.append(row)
    return np.array(candidate), np.array(subset)


def _expected_body(person: list[tuple[int, float, float, float]]) -> np.ndarray:
    expected = np.zeros((18, 3))
    for index, x, y, score in person:
        if score >= THRESHOLD:
            expected[index] = (x, y, score)
    return expected


@pytest.fixture(scope="module")
def openpose():
    pytest.importorskip("controlnet_aux")
    from scenario_detect.nodes.local import aux_detectors as ad

    return ad, ad.aux("open_pose")


def test_openpose_keypoints_are_input_pixels_with_threshold_and_two_people(openpose) -> None:
    ad, op = openpose
    candidate, subset = _crafted_estimator_output()
    bodies = op.Body.format_body_result(candidate, subset)
    # Person A's left hand as controlnet-aux gives it (normalised to the network image; -1/W = not found).
    hand = [op.Keypoint(0.6 + 0.01 * i, 0.5) for i in range(20)] + [op.Keypoint(-1.0 / NET[1], -1.0 / NET[0])]
    frame = ad.pose_frame([(bodies[0], hand, None, None), (bodies[1], None, None, None)], THRESHOLD, NET,
                          (HEIGHT, WIDTH))

    assert (frame["canvas_width"], frame["canvas_height"]) == (WIDTH, HEIGHT)
    assert len(frame["people"]) == 2
    first, second = frame["people"]
    body_a = np.array(first["pose_keypoints_2d"]).reshape(18, 3)
    np.testing.assert_allclose(body_a, _expected_body(PERSON_A), atol=1e-4)
    assert tuple(body_a[6]) == (0.0, 0.0, 0.0)  # score 0.2 < keypoint_threshold 0.3
    assert tuple(body_a[3]) == (0.0, 0.0, 0.0)  # not detected at all
    np.testing.assert_allclose(np.array(second["pose_keypoints_2d"]).reshape(18, 3), _expected_body(PERSON_B),
                               atol=1e-4)
    left = np.array(first["hand_left_keypoints_2d"]).reshape(21, 3)
    np.testing.assert_allclose(left[:20], [((0.6 + 0.01 * i) * WIDTH, 0.5 * HEIGHT, 1.0) for i in range(20)])
    assert tuple(left[20]) == (0.0, 0.0, 0.0)
    # Parts not found are full-length zeros, which ComfyUI core's SDPose nodes can reshape to (n, 3).
    assert first["hand_right_keypoints_2d"] == [0.0] * 63 and second["face_keypoints_2d"] == [0.0] * 210
    json.dumps(frame)  # plain floats: the value can be saved as JSON

    # The same positions in the map we draw: each kept joint's dot is at its keypoint once resized back.
    drawn = [(ad.confident_keypoints(b, THRESHOLD, NET[0], NET[1]), None, None, None) for b in bodies]
    canvas = torch.from_numpy(draw_people(drawn, NET[0], NET[1])).permute(2, 0, 1)[None].float()
    the_map = from_model(canvas, HEIGHT, WIDTH)[0].numpy()
    for person in (body_a, np.array(second["pose_keypoints_2d"]).reshape(18, 3)):
        for index, (x, y, c) in enumerate(person):
            if c > 0:
                np.testing.assert_allclose(the_map[int(y), int(x)], BODY_COLOURS[index], atol=40)
    x, y = PERSON_A[4][1:3]  # the elbow under the threshold is not drawn either
    assert the_map[int(y), int(x)].max() < 1


def test_flat_points_and_empty_frames() -> None:
    points = np.array([[10.0, 20.0, 0.9], [np.nan, 1.0, 0.9], [5.0, 6.0, 0.1]])
    flat = pk.flat_points(points, 4, 0.3)
    assert flat == [10.0, 20.0, 0.9] + [0.0] * 9  # NaN row, low row and the missing 4th row are zeros
    assert pk.flat_points(None, 2, 0.3) == [0.0] * 6
    assert pk.empty_frames(2, 48, 64) == [{"canvas_width": 64, "canvas_height": 48, "people": []}] * 2


def test_non_pose_methods_give_one_empty_entry_per_image() -> None:
    from scenario_detect.nodes.run import run_detect

    images = torch.rand(3, 24, 40, 3)
    maps, keypoints = run_detect(images, "canny", {})
    assert maps.shape == (3, 24, 40, 3)
    assert keypoints == [{"canvas_width": 40, "canvas_height": 24, "people": []}] * 3
