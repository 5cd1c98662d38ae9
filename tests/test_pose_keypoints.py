"""Pose keypoints as data (ComfyUI's POSE_KEYPOINT): the entry builders and the OpenPose post-processing.

Two levels, both crafted so the right answer in input-image pixels is known:

- the whole ``pose_body`` path (resize, body network, controlnet-aux's peak finding and limb
  matching, our conversion, drawing, resize back) with a stand-in body network whose two outputs
  (part affinity fields and heatmaps) put two people at known positions;
- ``pose_frame`` on what controlnet-aux's estimators hand us (``candidate`` / ``subset`` in network
  pixels through its own ``format_body_result``; hand and face peaks normalised), exact to 1e-4.
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
    assert first["foot_keypoints_2d"] == second["foot_keypoints_2d"] == [0.0] * 18  # OpenPose has no feet
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


# --- the whole pose_body path with a stand-in body network -----------------------------------------

# Two people in input pixels on a 400 x 200 image: {keypoint index: (x, y, peak height)}.
# Person A's right elbow (3) peaks at 0.2, under keypoint_threshold 0.3.
CRAFTED_SIZE = (200, 400)
CRAFTED_A = {0: (100, 50, 0.9), 1: (100, 80, 0.85), 2: (75, 82, 0.8), 3: (65, 115, 0.2), 5: (125, 82, 0.8),
             8: (85, 140, 0.7), 11: (115, 140, 0.75)}  # fmt: skip
CRAFTED_B = {0: (300, 60, 0.95), 1: (300, 90, 0.9), 2: (280, 92, 0.85), 5: (320, 92, 0.8), 8: (290, 150, 0.7)}
# OpenPose's limbs (1-based parts) and their PAF channels (x, y), as the body network lays them out.
LIMBS = [(2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13), (13, 14),
         (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (3, 17), (6, 18)]  # fmt: skip
PAF_CHANNELS = [(12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9),
                (10, 11), (28, 29), (30, 31), (34, 35), (32, 33), (36, 37), (18, 19), (26, 27)]  # fmt: skip


class CraftedBodyNetwork(torch.nn.Module):
    """Stands in for OpenPose's body network: its two outputs (38 PAF channels, 19 heatmaps, 1/8 of
    the padded input) with a Gaussian peak per keypoint and unit vectors along each limb.

    ``people`` are in pixels of the image the network is shown (``net_height`` tall); controlnet-aux
    scales that image to 184 px high (half of its 368 box), pads it and upsamples the outputs by 8.
    """

    def __init__(self, people: list[dict[int, tuple[float, float, float]]], net_height: int):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # controlnet-aux reads the device from it
        self.people, self.scale = people, 184.0 / net_height

    def forward(self, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows, cols = data.shape[2] // 8, data.shape[3] // 8
        v, u = np.mgrid[0:rows, 0:cols].astype(np.float64)
        # Where each output cell lands in the network image: upsampled x8 (cell centre 8u + 3.5),
        # then scaled back from the 184 px image (pixel centres).
        x, y = (8 * u + 4) / self.scale - 0.5, (8 * v + 4) / self.scale - 0.5
        cell = 8 / self.scale
        heat, paf = np.zeros((19, rows, cols)), np.zeros((38, rows, cols))
        for person in self.people:
            for index, (px, py, height) in person.items():
                heat[index] += height * np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * (1.2 * cell) ** 2))
            for (a, b), (cx, cy) in zip(LIMBS, PAF_CHANNELS, strict=True):
                if a - 1 in person and b - 1 in person:
                    (ax, ay, _), (bx, by, _) = person[a - 1], person[b - 1]
                    length = np.hypot(bx - ax, by - ay)
                    dx, dy = (bx - ax) / length, (by - ay) / length
                    along = (x - ax) * dx + (y - ay) * dy
                    across = np.abs((x - ax) * dy - (y - ay) * dx)
                    band = (across <= cell) & (along >= -cell) & (along <= length + cell)
                    paf[cx][band], paf[cy][band] = dx, dy
        as_tensor = lambda a: torch.from_numpy(a[None]).float()  # noqa: E731
        return as_tensor(paf), as_tensor(heat)


def test_pose_body_keypoints_from_crafted_network_outputs(
    openpose, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ad, _ = openpose
    from scenario_detect.nodes.local.models import MODELS
    from scenario_detect.nodes.local.weights import weight_path

    height, width = CRAFTED_SIZE
    params = {"resolution": 184, "keypoint_threshold": THRESHOLD}
    net = fit_size(height, width, 184, 1)
    to_net = lambda person: {i: (x * net[1] / width, y * net[0] / height, h) for i, (x, y, h) in person.items()}  # noqa: E731
    # The file only has to exist where the loader looks: the cache then holds our stand-in under its name.
    folder = tmp_path / "lllyasviel" / "Annotators"
    folder.mkdir(parents=True)
    (folder / "body_pose_model.pth").write_bytes(b"stand-in")
    monkeypatch.setenv("SCENARIO_DETECT_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("SCENARIO_DETECT_OFFLINE", "1")
    monkeypatch.setenv("SCENARIO_DETECT_DEVICE", "cpu")
    MODELS.clear()
    try:
        crafted = CraftedBodyNetwork([to_net(CRAFTED_A), to_net(CRAFTED_B)], net[0])
        MODELS.get("openpose_body", weight_path(ad.OPENPOSE_BODY), lambda _: crafted, half_ok=False)
        maps, frames = ad.pose_body(torch.full((1, height, width, 3), 0.5), params)
    finally:
        MODELS.clear()

    assert maps.shape == (1, height, width, 3)
    [frame] = frames
    assert (frame["canvas_width"], frame["canvas_height"]) == (width, height)
    people = sorted(frame["people"], key=lambda p: p["pose_keypoints_2d"][0])  # by the nose's x
    assert len(people) == 2
    the_map = maps[0].numpy() * 255
    for found, expected in zip(people, (CRAFTED_A, CRAFTED_B), strict=True):
        body = np.array(found["pose_keypoints_2d"]).reshape(18, 3)
        for index in range(18):
            x, y, c = body[index]
            if index in expected and expected[index][2] >= THRESHOLD:
                ex, ey, eh = expected[index]
                assert abs(x - ex) <= 2.5 and abs(y - ey) <= 2.5, (index, (x, y), (ex, ey))
                assert abs(c - eh) <= 0.05, (index, c, eh)
                # The map shows that joint's dot right there, in its OpenPose colour.
                np.testing.assert_allclose(the_map[round(y), round(x)], BODY_COLOURS[index], atol=40)
            else:  # not in the picture, or under the threshold (A's right elbow): 0, 0, 0
                assert (x, y, c) == (0.0, 0.0, 0.0), index
        assert found["hand_left_keypoints_2d"] == [0.0] * 63 and found["face_keypoints_2d"] == [0.0] * 210
        assert found["foot_keypoints_2d"] == [0.0] * 18  # an OpenPose method: 6 feet points of zeros
    elbow_x, elbow_y, _ = CRAFTED_A[3]
    assert the_map[elbow_y - 2 : elbow_y + 3, elbow_x - 2 : elbow_x + 3].max() < 1  # not drawn either


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
