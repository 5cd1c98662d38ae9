"""DWPose (nodes/local/dwpose.py): loaders on the released container, parity with the reference pipeline.

The weights cannot be downloaded here, so ``dwpose_standins`` writes TorchScript archives with the released
files' interface (inputs, output tuple, shapes, the estimator's fixed batch of 5) and the real loading code runs on
them. The pre- and post-processing is compared with the reference implementation of comfyui_controlnet_aux's
TorchScript DWPose (the ``dwpose`` package on PyPI, its ``dw_torchscript`` modules, numpy), run on the same
inputs and, for the detector, on the same stand-in network; the COCO whole-body -> OpenPose conversion with
controlnet_aux 0.0.10's ``Wholebody`` (its mmpose calls fed our keypoints).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import dwpose_standins
import numpy as np
import pytest
import random_weights
import torch

from scenario_detect.nodes.local import dwpose, dwpose_nets, load_method, run_local
from scenario_detect.nodes.local.models import MODELS, Loaded
from scenario_detect.nodes.local.weights import WeightsUnavailable
from scenario_detect.nodes.modalities import resolve_local_method


def _reference(relative: str) -> ModuleType:
    """A module file of the ``dwpose`` package, loaded alone: its package ``__init__`` needs matplotlib and
    more, the ``dw_torchscript`` modules only numpy, OpenCV and torch."""
    spec = importlib.util.find_spec("dwpose")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the reference package `dwpose` (test extra) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    name = "_dwpose_reference_" + path.stem
    if name not in sys.modules:
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


@pytest.fixture(scope="module")
def ref_det() -> ModuleType:
    return _reference("dw_torchscript/jit_det.py")


@pytest.fixture(scope="module")
def ref_pose() -> ModuleType:
    return _reference("dw_torchscript/jit_pose.py")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with random_weights.only_these_weights(dwpose_standins.write_all(tmp_path_factory.mktemp("dwpose-models"))) as root:
        yield root


def _figure(height: int = 240, width: int = 480, seed: int = 0) -> np.ndarray:
    """uint8 RGB: dim noise with a bright soft blob at the left (the bright stand-in detector's "person")."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    blob = 235.0 * np.exp(-(((x - width * 0.18) / (width * 0.08)) ** 2 + ((y - height * 0.5) / (height * 0.25)) ** 2))
    image = rng.uniform(0, 40, (height, width, 3)) + blob[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def _loaded() -> tuple:
    return dwpose._load(dwpose.DETECTOR, "dwpose_detector"), dwpose._load(dwpose.ESTIMATOR, "dwpose_estimator")


# --- method table -----------------------------------------------------------------------------------------------


def test_dwpose_is_the_pose_auto_method_and_openpose_stays_by_name() -> None:
    assert resolve_local_method("pose").name == "dwpose"
    assert load_method(resolve_local_method("pose", "openpose_body")).__name__ == "pose_body"
    assert load_method(resolve_local_method("pose", "openpose_full")).__name__ == "pose_full"


# --- loading the released container -------------------------------------------------------------------------------


def test_standins_have_the_released_interface(models_dir: Path) -> None:
    detector, estimator = _loaded()
    # The archives load into the eager modules (weights read, not run) ...
    assert isinstance(detector.module, dwpose_nets.Yolox) and isinstance(estimator.module, dwpose_nets.RTMPose)
    # ... and are TorchScript with the released interface, the estimator's batch baked in.
    det_archive, pose_archive = (_archive(spec) for spec in dwpose.WEIGHTS)
    with torch.inference_mode():
        assert list(det_archive(torch.zeros(1, 3, 640, 640)).shape) == [1, 8400, 85]
        simcc_x, simcc_y = pose_archive(torch.zeros(5, 3, 384, 288))
        assert list(simcc_x.shape) == [5, 133, 576] and list(simcc_y.shape) == [5, 133, 768]
        with pytest.raises(RuntimeError):
            pose_archive(torch.zeros(2, 3, 384, 288))


def _archive(spec: dwpose.WeightFile) -> torch.jit.ScriptModule:
    from scenario_detect.nodes.local.weights import weight_path

    return torch.jit.load(str(weight_path(spec)), map_location="cpu")


def _torchscript(spec: dwpose.WeightFile, fixed_batch: int) -> Loaded:
    """Today's path before the eager networks: the archive run as TorchScript, crops padded to its batch."""
    net = dwpose.TorchScriptNet(_archive(spec), fixed_batch).eval()
    return Loaded(("torchscript", spec.filename, "cpu", "torch.float32"), net, torch.device("cpu"), torch.float32)


def test_estimator_runs_the_crops_it_is_given_in_chunks(models_dir: Path) -> None:
    _, estimator = _loaded()
    rng = np.random.default_rng(1)
    crops = [rng.normal(size=(3, 384, 288)).astype(np.float32) for _ in range(dwpose.POSE_CHUNK + 3)]
    with torch.inference_mode():
        simcc_x, simcc_y = dwpose.estimate(estimator, crops)
        alone_x, alone_y = dwpose.estimate(estimator, crops[-1:])
        padded_x, padded_y = dwpose.estimate(_torchscript(dwpose.ESTIMATOR, 5), crops)
    assert simcc_x.shape == (len(crops), 133, 576) and simcc_y.shape == (len(crops), 133, 768)
    np.testing.assert_allclose(simcc_x[-1:], alone_x, atol=1e-5)  # other crops of the pass do not leak in
    np.testing.assert_allclose(simcc_y[-1:], alone_y, atol=1e-5)
    np.testing.assert_allclose(simcc_x, padded_x, atol=1e-4)  # batch n == the archive's padded batches of 5
    np.testing.assert_allclose(simcc_y, padded_y, atol=1e-4)


@pytest.mark.parametrize("bright", [True, False])
def test_eager_detector_matches_the_archive_run_as_torchscript(tmp_path: Path, bright: bool) -> None:
    path = dwpose_standins.write_detector(tmp_path / "det.pt", bright=bright, seed=3)
    eager = dwpose.load_detector(path)
    assert isinstance(eager, dwpose_nets.Yolox)
    assert {m.eps for m in eager.modules() if isinstance(m, torch.nn.BatchNorm2d)} <= {1e-3}  # read, then folded
    image = torch.from_numpy(dwpose.letterbox(_figure(300, 500))[0])[None]
    with torch.inference_mode():
        ours, ref = eager(image), torch.jit.load(str(path))(image)
    assert ours.shape == ref.shape == (1, 8400, 85)
    scale = float(ref[..., :4].abs().max())  # the box offsets' range (scores are 0..1)
    np.testing.assert_allclose(ours[..., :4].numpy(), ref[..., :4].numpy(), rtol=0, atol=1e-5 * max(scale, 1.0))
    np.testing.assert_allclose(ours[..., 4:].numpy(), ref[..., 4:].numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("eps", [1e-5, 1e-2])
def test_eager_estimator_matches_the_archive_and_reads_its_batchnorm_epsilon(tmp_path: Path, eps: float) -> None:
    example = torch.zeros(5, 3, 384, 288)
    path = dwpose_standins._save(dwpose_standins.released_estimator(seed=4, eps=eps), example, tmp_path / "p.pt")
    eager = dwpose.load_estimator(path)
    assert isinstance(eager, dwpose_nets.RTMPose)
    crops = torch.randn(5, 3, 384, 288, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        ours, ref = eager(crops), torch.jit.load(str(path))(crops)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_dwpose_maps_and_keypoints_match_the_torchscript_path(models_dir: Path) -> None:
    frames = [_figure(240, 480, seed=5), _figure(360, 300, seed=6)[:, ::-1].copy()]
    with torch.inference_mode():
        eager = dwpose.estimate_people(*_loaded(), frames)
        scripted = dwpose.estimate_people(_torchscript(dwpose.DETECTOR, 1), _torchscript(dwpose.ESTIMATOR, 5), frames)
    assert [len(p) for p in eager] == [len(p) for p in scripted] and sum(len(p) for p in eager) >= 2
    for frame, ours, ref in zip(frames, eager, scripted, strict=True):
        for a, b in zip(ours, ref, strict=True):
            for part_a, part_b in zip(a, b, strict=True):
                np.testing.assert_allclose(part_a, part_b, rtol=0, atol=1e-3)  # pixels; scores within 1e-3
        height, width = frame.shape[:2]
        np.testing.assert_array_equal(dwpose.draw(ours, 0.0, height, width), dwpose.draw(ref, 0.0, height, width))
        entries = zip(dwpose.keypoint_entry(ours, 0.0, 2, 2), dwpose.keypoint_entry(ref, 0.0, 2, 2), strict=True)
        for a, b in entries:
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_allclose(a[key], b[key], rtol=0, atol=2e-3)


def test_an_archive_of_another_layout_runs_as_torchscript_at_its_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = dwpose_standins.write_estimator(tmp_path / "other.pt", layout="other")
    with caplog.at_level("WARNING", logger="scenario_detect.dwpose"):
        net = dwpose.load_estimator(path)
    assert isinstance(net, dwpose.TorchScriptNet) and net.fixed_batch == 5
    assert "does not have the released layout" in caplog.text and "other.pt" in caplog.text
    loaded = Loaded(("x", str(path), "cpu", "torch.float32"), net, torch.device("cpu"), torch.float32)
    crops = [np.random.default_rng(i).normal(size=(3, 384, 288)).astype(np.float32) for i in range(7)]
    with torch.inference_mode():
        simcc_x, _ = dwpose.estimate(loaded, crops)
    assert simcc_x.shape == (7, 133, 576)


def test_a_file_that_is_not_torchscript_is_refused_clearly(models_dir: Path, tmp_path: Path) -> None:
    wrong = tmp_path / dwpose.DETECTOR.filename
    torch.save({"conv.weight": torch.zeros(1)}, wrong)  # a state dict, as a .pth would be
    with pytest.raises(RuntimeError, match="is not a TorchScript archive") as caught:
        dwpose.load_detector(wrong)
    assert dwpose.ESTIMATOR.filename in str(caught.value)


def test_missing_weights_offline_name_the_file_url_and_folder(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCENARIO_DETECT_MODELS_DIR", str(tmp_path / "empty"))
    MODELS.clear()
    with pytest.raises(WeightsUnavailable) as caught:
        run_local(torch.rand(1, 32, 48, 3), "pose", {})
    message = str(caught.value)
    assert "yolox_l.torchscript.pt" in message
    assert "https://huggingface.co/hr16/yolox-onnx/resolve/main/yolox_l.torchscript.pt" in message
    assert str(tmp_path / "empty" / "hr16" / "yolox-onnx") in message


# --- parity with the reference pre- and post-processing -------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(300, 500), (700, 200), (640, 640)])
def test_letterbox_matches_reference(ref_det: ModuleType, height: int, width: int) -> None:
    image = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ours, ratio = dwpose.letterbox(image)
    ref, ref_ratio = ref_det.preprocess(image, (640, 640))
    assert ratio == ref_ratio
    np.testing.assert_array_equal(ours, ref)


def test_person_boxes_match_reference_detector(models_dir: Path, ref_det: ModuleType) -> None:
    detector, _ = _loaded()
    rgb = _figure(300, 500)
    with torch.inference_mode():
        ours = dwpose.detect_people(detector, rgb)
        # The reference hands its input to the network as it is; we give YOLOX the BGR order it was trained
        # on, so the reference gets the BGR image to see the same pixels.
        ref = ref_det.inference_detector(detector.module, np.ascontiguousarray(rgb[:, :, ::-1]), detect_classes=[0])
    assert ref is not None and len(ref) >= 1
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-3)


def test_nms_matches_reference_on_overlapping_boxes(ref_det: ModuleType) -> None:
    rng = np.random.default_rng(7)
    corners = rng.uniform(0, 300, (200, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(20, 120, (200, 2))], 1)
    scores = rng.uniform(0, 1, 200)
    for iou in (0.3, 0.45, 0.7):
        assert dwpose.nms(boxes, scores, iou).tolist() == list(ref_det.nms(boxes, scores, iou))


@pytest.mark.parametrize("box", [(40.0, 30.0, 150.0, 260.0), (10.5, 80.0, 400.0, 140.0), (-20.0, -10.0, 60.0, 90.0)])
def test_crop_matches_reference(ref_pose: ModuleType, box: tuple[float, ...]) -> None:
    rgb = _figure(300, 500, seed=2)
    center, scale = dwpose.box_to_center_scale(np.array(box))
    ref_imgs, ref_centers, ref_scales = ref_pose.preprocess(rgb, [list(box)], (288, 384))
    np.testing.assert_allclose(center, ref_centers[0], atol=1e-9)
    np.testing.assert_allclose(scale, np.asarray(ref_scales[0]).reshape(-1), atol=1e-9)
    matrix = ref_pose.get_warp_matrix(ref_centers[0], np.asarray(ref_scales[0]).reshape(-1), 0, (288, 384))
    np.testing.assert_allclose(dwpose.crop_matrix(center, scale), matrix, atol=1e-3)
    ours = dwpose.crop_person(rgb, center, scale)
    ref = ref_imgs[0].transpose(2, 0, 1)
    assert ours.shape == ref.shape == (3, 384, 288)
    # The reference builds its matrix in float32 (cv2.getAffineTransform), ours in float64; OpenCV's fixed-point
    # bilinear sampling of uint8 images absorbs the difference (measured: under 1e-5 levels).
    diff = np.abs(ours - ref) * dwpose.STD[:, None, None]  # back to 0..255 levels
    assert float(diff.max()) < 0.01


def test_simcc_decode_and_mapping_match_reference(ref_pose: ModuleType) -> None:
    rng = np.random.default_rng(3)
    simcc_x = rng.normal(size=(3, 133, 576)).astype(np.float32)
    simcc_y = rng.normal(size=(3, 133, 768)).astype(np.float32)
    simcc_x[1, :40] -= 10.0  # some points with no positive response: missing
    locs, scores = dwpose.simcc_decode(simcc_x, simcc_y)
    ref_locs, ref_scores = ref_pose.decode(simcc_x.copy(), simcc_y.copy(), 2.0)
    np.testing.assert_array_equal(locs, ref_locs)
    np.testing.assert_array_equal(scores, ref_scores)
    centers = [np.array([120.0, 80.5]), np.array([300.0, 200.0]), np.array([50.0, 260.0])]
    scales = [np.array([150.0, 200.0]), np.array([90.0, 120.0]), np.array([240.0, 320.0])]
    outputs = [(simcc_x[i : i + 1], simcc_y[i : i + 1]) for i in range(3)]
    ref_points, ref_point_scores = ref_pose.postprocess(outputs, (288, 384), centers, scales)
    ours = np.stack([dwpose.crop_to_image(locs[i], centers[i], scales[i]) for i in range(3)])
    np.testing.assert_allclose(ours, ref_points, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(scores, ref_point_scores)


def test_simcc_decode_known_answer() -> None:
    simcc_x = np.full((1, 133, 576), 0.01, np.float32)
    simcc_y = np.full((1, 133, 768), 0.01, np.float32)
    simcc_x[0, 0, 101], simcc_y[0, 0, 300] = 0.9, 0.7  # point 0 at bin (101, 300): crop pixel (50.5, 150)
    simcc_x[0, 1, 10], simcc_y[0, 1, 20] = 0.4, 0.8
    simcc_x[0, 2], simcc_y[0, 2, 5] = -1.0, 0.5  # no positive x response: missing
    locs, scores = dwpose.simcc_decode(simcc_x, simcc_y)
    np.testing.assert_allclose(locs[0, 0], [50.5, 150.0])
    np.testing.assert_allclose(locs[0, 1], [5.0, 10.0])
    np.testing.assert_allclose(scores[0, :3], [0.7, 0.4, -1.0])  # the smaller axis maximum
    np.testing.assert_allclose(locs[0, 2], [-0.5, -0.5])


def test_crop_and_mapping_round_trip_a_point_on_a_non_square_image() -> None:
    """A dot in a 300x500 image: find it in the crop, encode it as SimCC, decode and map back to the dot."""
    for px, py in [(137, 211), (402, 35), (250, 150)]:
        image = np.zeros((300, 500, 3), np.uint8)
        image[py, px] = 255
        box = np.array([px - 70.0, py - 40.0, px + 30.0, py + 90.0])  # off-centre, wider than the crop's aspect
        center, scale = dwpose.box_to_center_scale(box)
        crop = dwpose.crop_person(image, center, scale)[0] * dwpose.STD[0] + dwpose.MEAN[0]
        cy, cx = np.unravel_index(np.argmax(crop), crop.shape)
        simcc_x = np.zeros((1, 1, 576), np.float32)
        simcc_y = np.zeros((1, 1, 768), np.float32)
        simcc_x[0, 0, int(2 * cx)] = simcc_y[0, 0, int(2 * cy)] = 1.0
        locs, _ = dwpose.simcc_decode(simcc_x, simcc_y)
        x, y = dwpose.crop_to_image(locs[0, 0], center, scale)
        pixel = scale[0] / 288  # one crop pixel in image pixels
        assert abs(x - px) <= pixel and abs(y - py) <= pixel, (px, py, x, y)


class _Preds(SimpleNamespace):
    """What mmpose's ``merge_data_samples(...).pred_instances`` offers the reference ``Wholebody``."""

    def __contains__(self, key: str) -> bool:
        return hasattr(self, key)

    def get(self, key: str, default: object = None) -> object:
        return getattr(self, key, default)


def test_openpose_conversion_matches_controlnet_aux_wholebody(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("controlnet_aux")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its "mmcv/mmpose not installed" notices
        from controlnet_aux.dwpose import wholebody
    rng = np.random.default_rng(11)
    points = rng.uniform(0, 400, (3, 133, 2))
    scores = rng.uniform(0, 1, (3, 133))
    scores[0, 5], scores[0, 6] = 0.9, 0.2  # one shoulder doubtful: no neck at 0.3
    scores[1, 5], scores[1, 6] = 0.5, 0.31
    # The reference's mmdet/mmpose calls, answered with our keypoints (the conversion after them is its own).
    fake = SimpleNamespace(detector=None, pose_estimator=None)
    instances = SimpleNamespace(bboxes=np.zeros((1, 4)), scores=np.ones(1), labels=np.zeros(1, int))
    instances.cpu = lambda: SimpleNamespace(numpy=lambda: instances)
    detected = SimpleNamespace(pred_instances=instances)
    monkeypatch.setattr(wholebody, "inference_detector", lambda *a: detected, raising=False)
    monkeypatch.setattr(wholebody, "nms", lambda boxes, thr: [0], raising=False)
    monkeypatch.setattr(wholebody, "inference_topdown", lambda *a: [None], raising=False)
    preds = _Preds(keypoints=points.copy(), keypoint_scores=scores.copy())
    monkeypatch.setattr(
        wholebody, "merge_data_samples", lambda results: SimpleNamespace(pred_instances=preds), raising=False
    )
    ref_points, ref_scores = wholebody.Wholebody.__call__(fake, np.zeros((8, 8, 3), np.uint8))
    people = dwpose.to_openpose(points, scores)
    for person, ref_xy, ref_s in zip(people, ref_points, ref_scores, strict=True):
        np.testing.assert_allclose(person.body[:, :2], ref_xy[:18])
        np.testing.assert_allclose(person.body[[0, *range(2, 18)], 2], ref_s[[0, *range(2, 18)]])
        assert (person.body[1, 2] > 0.3) == (ref_s[1] > 0)  # the neck: both shoulders over 0.3
        np.testing.assert_allclose(person.face[:, :2], ref_xy[24:92])
        np.testing.assert_allclose(person.left_hand[:, :2], ref_xy[92:113])
        np.testing.assert_allclose(person.right_hand[:, :2], ref_xy[113:134])
        np.testing.assert_allclose(person.face[:, 2], ref_s[24:92])


# --- the whole method ----------------------------------------------------------------------------------------------


def test_run_local_draws_people_where_they_are_on_a_non_square_image(models_dir: Path) -> None:
    rgb = _figure(240, 480)
    images = torch.from_numpy(rgb).float()[None] / 255.0
    maps, from_run_local = run_local(images, "pose", {"keypoint_threshold": 0.0, "resolution": 120})
    assert maps.shape == (1, 240, 480, 3) and maps.dtype == torch.float32
    assert float(maps.max()) > 0.5  # something is drawn ...
    assert float(maps[0, :, 300:].max()) == 0.0  # ... around the figure (left), nothing at the far right
    again, keypoints = dwpose.pose_dwpose(images, {"keypoint_threshold": 0.0, "resolution": 120})
    assert torch.equal(again, maps)
    assert from_run_local == keypoints  # the node's pose_keypoint output carries DWPose's keypoints
    frame = keypoints[0]
    assert (frame["canvas_width"], frame["canvas_height"]) == (480, 240)
    assert frame["people"]
    # Keypoints are in input pixels although the network saw a 120x240 image: each body point sits on a
    # drawn joint of the (upscaled) map.
    for person in frame["people"]:
        body = np.array(person["pose_keypoints_2d"]).reshape(18, 3)
        assert len(person["face_keypoints_2d"]) == 70 * 3 and len(person["hand_left_keypoints_2d"]) == 21 * 3
        assert len(person["foot_keypoints_2d"]) == 6 * 3 and any(person["foot_keypoints_2d"])
        for x, y, c in body:
            if c > 0 and 2 <= x < 478 and 2 <= y < 238:
                assert float(maps[0, int(y), int(x)].max()) > 0.0, (x, y)


def test_keypoint_threshold_drops_points_and_their_limbs(models_dir: Path) -> None:
    images = torch.from_numpy(_figure(240, 480)).float()[None] / 255.0
    params = {"resolution": 240}
    all_maps, all_points = dwpose.pose_dwpose(images, {**params, "keypoint_threshold": 0.0})
    confidences = [c for p in all_points[0]["people"] for c in p["pose_keypoints_2d"][2::3]]
    middle = float(np.median(confidences))  # the stand-in's scores are not spread like a real model's
    half_maps, half_points = dwpose.pose_dwpose(images, {**params, "keypoint_threshold": middle})
    parts = ("pose_keypoints_2d", "foot_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d")
    parts += ("hand_right_keypoints_2d",)
    above = max(c for p in all_points[0]["people"] for part in parts for c in p[part][2::3]) + 0.01
    none_maps, none_points = dwpose.pose_dwpose(images, {**params, "keypoint_threshold": above})
    assert float(all_maps.max()) > 0.0
    assert float(none_maps.max()) == 0.0  # every score of the stand-in is under ``above``
    assert 0 < int((half_maps > 0).sum()) < int((all_maps > 0).sum())
    kept = dropped = 0
    for every, some, none in zip(
        all_points[0]["people"], half_points[0]["people"], none_points[0]["people"], strict=True
    ):
        for part in parts:
            full = np.array(every[part]).reshape(-1, 3)
            half = np.array(some[part]).reshape(-1, 3)
            assert not np.any(none[part])
            keep = full[:, 2] >= middle
            np.testing.assert_array_equal(half[keep], full[keep])
            assert not np.any(half[~keep])
            kept, dropped = kept + int(keep.sum()), dropped + int((~keep & (full[:, 2] > 0)).sum())
        body = np.array(some["pose_keypoints_2d"]).reshape(18, 3)
        assert (body[1, 2] > 0) == (body[2, 2] > 0 and body[5, 2] > 0)  # neck kept iff both shoulders are
    assert kept and dropped


def test_no_person_gives_a_black_map_and_no_people(models_dir: Path) -> None:
    images = torch.full((2, 64, 96, 3), 0.1)
    maps, keypoints = dwpose.pose_dwpose(images, {})
    assert maps.shape == (2, 64, 96, 3) and float(maps.max()) == 0.0
    assert [k["people"] for k in keypoints] == [[], []]


def test_feet_are_the_wholebody_toes_and_heels_in_input_pixels() -> None:
    """COCO-WholeBody 17..22 (left big toe, small toe, heel, then the right foot) -> foot_keypoints_2d."""
    rng = np.random.default_rng(5)
    points = rng.uniform(0, 100, (1, 133, 2))
    scores = rng.uniform(0.5, 1.0, (1, 133))
    scores[0, 19] = 0.1  # the left heel under the threshold: zeros
    (person,) = dwpose.to_openpose(points, scores)
    np.testing.assert_array_equal(person.feet[:, :2], points[0, 17:23])
    (entry,) = dwpose.keypoint_entry([person], 0.3, 2.0, 3.0)
    feet = np.array(entry["foot_keypoints_2d"]).reshape(6, 3)
    expected = np.concatenate([points[0, 17:23] * [2.0, 3.0], scores[0, 17:23, None]], 1)
    expected[2] = 0.0
    np.testing.assert_allclose(feet, expected)


# --- feet through the CLI and a real ComfyUI prompt --------------------------------------------------------------

PART_LENGTHS = {
    "pose_keypoints_2d": 54,
    "foot_keypoints_2d": 18,
    "face_keypoints_2d": 210,
    "hand_left_keypoints_2d": 63,
    "hand_right_keypoints_2d": 63,
}


def _assert_feet(frames: list[dict], width: int, height: int) -> None:
    """Every part of every person at its exact length (core's reader reshapes without checks), real feet."""
    people = [person for frame in frames for person in frame["people"]]
    assert people
    for person in people:
        assert {key: len(values) for key, values in person.items()} == PART_LENGTHS
        feet = np.array(person["foot_keypoints_2d"]).reshape(6, 3)
        assert np.any(feet[:, 2] > 0)
        seen = feet[feet[:, 2] > 0]  # input pixels (the crop may reach past the image, not far)
        assert np.all(seen[:, 0] > -width) and np.all(seen[:, 0] < 2 * width) and np.all(seen[:, 1] < 2 * height)


def test_cli_keypoints_carry_the_feet(models_dir: Path, tmp_path: Path) -> None:
    import json
    import os
    import subprocess

    from PIL import Image

    rgb = _figure(240, 480)
    Image.fromarray(rgb).save(tmp_path / "figure.png")
    env = dict(os.environ)  # models_dir's: the stand-ins' folder, offline, on the CPU
    target = tmp_path / "k.json"
    args = [str(tmp_path / "figure.png"), "-m", "pose", "-o", str(tmp_path / "map.png"), "--keypoints", str(target)]
    result = subprocess.run(
        [sys.executable, "-m", "scenario_detect", *args], capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stderr
    written = json.loads(target.read_text())
    _assert_feet(written, 480, 240)
    # The same values as the in-process method (the CLI runs the node's code path).
    images = torch.from_numpy(rgb).float()[None] / 255.0
    _, expected = dwpose.pose_dwpose(images, {"keypoint_threshold": 0.3})
    assert [entry.pop("file") for entry in written] == [str(tmp_path / "figure.png")]  # the CLI names the input
    assert json.loads(json.dumps(expected)) == written


@pytest.mark.comfyui
def test_feet_in_a_real_comfyui_prompt(comfy_server) -> None:  # noqa: ANN001 (the session server fixture)
    import random_weights
    from PIL import Image
    from test_comfyui_detect import keypoints_graph, pose_keypoint_value

    rgb = _figure(240, 480)
    name = comfy_server.upload_image(Image.fromarray(rgb), name="dwpose-feet.png")
    graph = keypoints_graph(comfy_server, name, batch=2, modality="pose", local_method="dwpose")
    value = pose_keypoint_value(comfy_server, graph, timeout=600)
    assert [(entry["canvas_width"], entry["canvas_height"]) for entry in value] == [(480, 240)] * 2
    _assert_feet(value, 480, 240)
    # What the node gave is what the method computes in-process on the same weights and pixels.
    with random_weights.only_these_weights(random_weights.models_root()):
        _, expected = dwpose.pose_dwpose(torch.from_numpy(rgb).float()[None] / 255.0, {"keypoint_threshold": 0.3})
    for frame in value:
        for person, reference in zip(frame["people"], expected[0]["people"], strict=True):
            for key, values in person.items():
                np.testing.assert_allclose(values, reference[key], rtol=0, atol=1e-3)


def test_an_archive_whose_names_carry_a_prefix_loads_into_the_eager_network(tmp_path: Path) -> None:
    """An export wrapped once more (``model.backbone...``) is still the released layout."""

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = dwpose_standins.released_detector(bright=False, seed=8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)

    path = dwpose_standins._save(Wrapped(), torch.zeros(1, 3, 640, 640), tmp_path / "wrapped.pt")
    eager = dwpose.load_detector(path)
    assert isinstance(eager, dwpose_nets.Yolox)
    image = torch.rand(1, 3, 640, 640) * 255
    with torch.inference_mode():
        np.testing.assert_allclose(eager(image)[..., 4:], torch.jit.load(str(path))(image)[..., 4:], atol=1e-5)
