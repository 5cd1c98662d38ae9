"""DWPose: a YOLOX-l person detector, then RTMPose-l whole-body (133 keypoints) on each person's crop.

Runtime: the two networks are plain torch modules (``dwpose_nets``: YOLOX-l, RTMPose-l) whose weights are read
from the TorchScript exports comfyui_controlnet_aux users already have (``yolox_l.torchscript.pt``,
``dw-ll_ucoco_384_bs5.torchscript.pt``), run on ComfyUI's torch device through ``models.MODELS`` like every
other network of this pack. So DWPose needs nothing but torch: no onnxruntime(-gpu) whose CUDA build must match
the user's, no mmcv/mmpose/mmdet, and it runs wherever torch does (CUDA, MPS, XPU, DirectML, CPU). An archive
whose parameters are not laid out as the released ones is run as TorchScript instead (with a warning), at
the batch it was traced with.
Everything around the networks (letterbox, box decoding, NMS, the affine crop, the SimCC decode, the COCO
whole-body -> OpenPose conversion) is numpy/OpenCV here.

Pipeline per image (the image first resized so its short side is ``resolution``, 512 by default, as the
OpenPose methods do):

1. Detector: letterbox into 640x640 (top-left, gray 114 padding, BGR 0..255: YOLOX was trained on OpenCV's BGR
   frames), raw head output [1, 8400, 85] decoded on the stride 8/16/32 grids, person score = objectness x class
   0, boxes over ``PERSON_SCORE`` kept, NMS at ``NMS_IOU``.
2. Pose: each box padded by 1.25 and widened to the network's 3:4 aspect, warped to 288x384 (w x h), normalised
   with ImageNet mean/std (RGB), run at the batch the people need (up to ``POSE_CHUNK`` crops a pass).
3. SimCC decode: argmax of the x (576 bins) and y (768 bins) vectors, split ratio 2 (half-pixel bins), score =
   the smaller of the two maxima; mapped back through the crop into image pixels.
4. OpenPose layout: 18 body points (COCO's 17 in OpenPose order plus the neck, the shoulders' midpoint), 68 face
   points (+ the two eyes as pupils, 70, in the keypoint output), 21 points per hand, 6 foot points (keypoint
   output only: the OpenPose drawing has no feet); drawn by
   ``pose_drawing`` (the OpenPose methods' colours and stick widths) and returned as POSE_KEYPOINT entries.

A point is kept when its score reaches ``keypoint_threshold``; the neck's score is the smaller shoulder score, so
it is kept exactly when both shoulders are (the reference's rule at its fixed 0.3).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch

from ..images import rgb_u8_at
from .dwpose_nets import LayoutMismatch, fuse_batchnorm, load_archive, rtmpose_for, yolox_for
from .models import MODELS, Loaded, chunk_size, fit_size, from_model, network_resolution, run_chunks
from .pose_drawing import Point, draw_people
from .pose_keypoints import PoseKeypointFrame, frame_entry, person_entry
from .weights import WeightFile, weight_path

log = logging.getLogger("scenario_detect.dwpose")

DETECTOR = WeightFile(
    "hr16/yolox-onnx", "yolox_l.torchscript.pt", "DWPose person detector (YOLOX-l, TorchScript)", "217 MB"
)
ESTIMATOR = WeightFile(
    "hr16/DWPose-TorchScript-BatchSize5",
    "dw-ll_ucoco_384_bs5.torchscript.pt",
    "DWPose whole-body pose (RTMPose-l 384x288, TorchScript)",
    "135 MB",
)
WEIGHTS: tuple[WeightFile, ...] = (DETECTOR, ESTIMATOR)

DET_SIZE = (640, 640)  # detector input (h, w)
DET_STRIDES = (8, 16, 32)
DET_CHANNELS = 85  # x, y, w, h, objectness, 80 COCO classes (person = 0)
PAD_VALUE = 114
PERSON_SCORE = 0.3  # objectness x person probability a box needs (the reference keeps > 0.3 after NMS)
NMS_IOU = 0.45

POSE_SIZE = (288, 384)  # pose input (w, h)
POSE_BATCH = 5  # the released export was traced with batch 5 (only a TorchScript fallback needs it)
POSE_CHUNK = 16  # crops per pass of the eager network: a crowd runs in chunks, memory stays bounded
BBOX_PADDING = 1.25
SIMCC_SPLIT = 2.0
KEYPOINTS = 133
MEAN = np.array([123.675, 116.28, 103.53], np.float32)  # RGB, 0..255
STD = np.array([58.395, 57.12, 57.375], np.float32)

# COCO whole-body -> OpenPose 18: OpenPose slot i takes COCO point BODY_FROM_COCO[i]; -1 is the neck.
NECK = -1
BODY_FROM_COCO = (0, NECK, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
FEET = slice(17, 23)  # left big toe, left small toe, left heel, then the right foot's
FACE = slice(23, 91)  # 68 face points (COCO whole-body 23..90)
LEFT_HAND = slice(91, 112)
RIGHT_HAND = slice(112, 133)
PUPILS_FROM_BODY = (14, 15)  # OpenPose face points 68, 69: the right and left eye of the 18-point body


class Person(NamedTuple):
    """One person in OpenPose layout; each part ``[n, 3]`` = x, y (image pixels), score."""

    body: np.ndarray  # [18, 3]
    face: np.ndarray  # [68, 3]
    left_hand: np.ndarray  # [21, 3]
    right_hand: np.ndarray  # [21, 3]
    feet: np.ndarray  # [6, 3]


# --- loading -------------------------------------------------------------------------------------


class TorchScriptNet(torch.nn.Module):
    """An archive run as TorchScript (the fallback for a layout ``dwpose_nets`` does not know), as a plain
    module: ``models.MODELS`` (and ComfyUI's ModelPatcher) may set attributes on it and move it."""

    def __init__(self, scripted: torch.jit.ScriptModule, fixed_batch: int) -> None:
        super().__init__()
        self.net = scripted
        self.fixed_batch = fixed_batch  # traced reshapes bake the batch in: inputs are padded to it

    def forward(self, x: torch.Tensor) -> Any:
        return self.net(x)


def _read_archive(path: Path) -> torch.jit.ScriptModule:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice, once per load
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise RuntimeError(
            f"{path} is not a TorchScript archive ({str(exc)[:200]}). DWPose needs the TorchScript exports "
            f"'{DETECTOR.filename}' and '{ESTIMATOR.filename}' (not the .onnx files): delete this file and run "
            "again to download the right one."
        ) from exc


def load_network(
    path: Path, build: Callable[[dict[str, torch.Tensor]], torch.nn.Module], fixed_batch: int
) -> torch.nn.Module:
    """The eager network ``build`` makes for the archive at ``path``, its weights read from it (BatchNorm
    folded in); or, when the archive's parameters are laid out otherwise, the archive run as TorchScript."""
    scripted = _read_archive(path)
    try:
        return fuse_batchnorm(load_archive(build(scripted.state_dict()).eval(), scripted))
    except LayoutMismatch as exc:
        log.warning("%s does not have the released layout (%s): running it as TorchScript", path.name, exc)
        return TorchScriptNet(scripted, fixed_batch)


def load_detector(path: Path) -> torch.nn.Module:
    return load_network(path, yolox_for, 1)


def load_estimator(path: Path) -> torch.nn.Module:
    return load_network(path, rtmpose_for, POSE_BATCH)


def _load(spec: WeightFile, name: str) -> Loaded:
    # float32 only: the SimCC argmax and the detector's threshold are what the parity is measured on.
    build = load_detector if spec is DETECTOR else load_estimator
    return MODELS.get(name, weight_path(spec), build, half_ok=False)


# --- detector ------------------------------------------------------------------------------------


def letterbox(image: np.ndarray, size: tuple[int, int] = DET_SIZE) -> tuple[np.ndarray, float]:
    """uint8 [H, W, 3] -> float32 [3, h, w] (0..255, padded with 114 right and below) and the scale used."""
    ratio = min(size[0] / image.shape[0], size[1] / image.shape[1])
    new_w, new_h = int(image.shape[1] * ratio), int(image.shape[0] * ratio)
    canvas = np.full((size[0], size[1], 3), PAD_VALUE, np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32), ratio


def _grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Cell corners [N, 2] (x, y) and strides [N, 1] of the detector's three output levels, in output order."""
    cells, strides = [], []
    for stride in DET_STRIDES:
        ys, xs = np.mgrid[0 : size[0] // stride, 0 : size[1] // stride]
        cells.append(np.stack([xs.ravel(), ys.ravel()], 1))
        strides.append(np.full((xs.size, 1), stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


def decode_boxes(raw: np.ndarray, size: tuple[int, int] = DET_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """YOLOX head output [N, 85] -> boxes [N, 4] (x0, y0, x1, y1 in letterbox pixels) and person scores [N]."""
    cells, strides = _grid(size)
    if raw.shape != (len(cells), DET_CHANNELS):
        raise RuntimeError(
            f"the person detector returned {list(raw.shape)} for a {size[1]}x{size[0]} input, not "
            f"[{len(cells)}, {DET_CHANNELS}]: '{DETECTOR.filename}' is not the YOLOX-l COCO export DWPose uses"
        )
    centre = (raw[:, :2] + cells) * strides
    half = np.exp(raw[:, 2:4]) * strides / 2.0
    return np.concatenate([centre - half, centre + half], 1), raw[:, 4] * raw[:, 5]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes greedy non-maximum suppression keeps, best first (inclusive pixel areas, +1)."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        lo = np.maximum(boxes[best, :2], boxes[rest, :2])
        hi = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.maximum(0.0, hi - lo + 1), axis=1)
        order = rest[inter / (areas[best] + areas[rest] - inter) <= iou]
    return np.array(keep, dtype=np.int64)


def person_boxes(raw: np.ndarray, ratio: float) -> np.ndarray:
    """Person boxes [n, 4] in image pixels from the detector's raw output [8400, 85] and the letterbox scale."""
    boxes, scores = decode_boxes(raw)
    # Filtering before NMS keeps the same boxes as filtering after: a box only suppresses lower-scored ones.
    confident = scores > PERSON_SCORE
    boxes, scores = boxes[confident], scores[confident]
    return boxes[nms(boxes, scores, NMS_IOU)] / ratio


def detect_people(loaded: Loaded, rgb: np.ndarray) -> np.ndarray:
    """Person boxes [n, 4] (x0, y0, x1, y1) in the pixels of ``rgb`` (uint8 [H, W, 3])."""
    tensor, ratio = letterbox(np.ascontiguousarray(rgb[:, :, ::-1]))
    out = loaded.module(loaded.prepare(torch.from_numpy(tensor)[None]))
    if not isinstance(out, torch.Tensor) or out.dim() != 3:
        raise RuntimeError(f"'{DETECTOR.filename}' returned {type(out).__name__}, not one [1, N, 85] tensor")
    return person_boxes(out[0].float().cpu().numpy(), ratio)


# --- pose ----------------------------------------------------------------------------------------


def box_to_center_scale(box: np.ndarray, padding: float = BBOX_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """(x0, y0, x1, y1) -> the box centre and its padded size (w, h), widened to the pose input's aspect."""
    x0, y0, x1, y1 = (float(v) for v in box)
    center = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
    w, h = (x1 - x0) * padding, (y1 - y0) * padding
    aspect = POSE_SIZE[0] / POSE_SIZE[1]
    w, h = (w, w / aspect) if w > h * aspect else (h * aspect, h)
    return center, np.array([w, h])


def crop_matrix(center: np.ndarray, scale: np.ndarray, size: tuple[int, int] = POSE_SIZE) -> np.ndarray:
    """The 2x3 affine map from image pixels into the crop: the ``scale`` box around ``center`` fills ``size``."""
    s = size[0] / scale[0]  # scale has the crop's aspect, so one factor serves both axes
    return np.array([[s, 0.0, size[0] / 2.0 - s * center[0]], [0.0, s, size[1] / 2.0 - s * center[1]]])


def crop_person(rgb: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The normalised network input [3, 384, 288] float32 for one person of ``rgb`` (uint8 [H, W, 3])."""
    crop = cv2.warpAffine(rgb, crop_matrix(center, scale), POSE_SIZE, flags=cv2.INTER_LINEAR)
    return ((crop.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)


def simcc_decode(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SimCC vectors [n, K, Wx], [n, K, Wy] -> locations [n, K, 2] in crop pixels and scores [n, K].

    The location is the argmax bin over the split ratio; the score the smaller of the two axes' maxima. A
    non-positive score marks the point missing (bin -1, -1, as the reference marks it).
    """
    locs = np.stack([simcc_x.argmax(-1), simcc_y.argmax(-1)], -1).astype(np.float32)
    scores = np.minimum(simcc_x.max(-1), simcc_y.max(-1))
    locs[scores <= 0] = -1
    return locs / SIMCC_SPLIT, scores


def crop_to_image(points: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Crop pixels [..., 2] -> image pixels: the inverse of ``crop_matrix``."""
    return points / np.array(POSE_SIZE, np.float64) * scale + center - scale / 2.0


def estimate(loaded: Loaded, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Raw SimCC outputs for every crop, ``POSE_CHUNK`` a pass (a fixed-batch TorchScript net: padded to it)."""
    fixed = getattr(loaded.module, "fixed_batch", None)
    step = fixed or POSE_CHUNK
    xs, ys = [], []
    for start in range(0, len(crops), step):
        part = crops[start : start + step]
        batch = np.zeros((fixed or len(part), 3, POSE_SIZE[1], POSE_SIZE[0]), np.float32)
        batch[: len(part)] = part
        out = loaded.module(loaded.prepare(torch.from_numpy(batch)))
        if not isinstance(out, (tuple, list)) or len(out) != 2 or out[0].shape[1] != KEYPOINTS:
            shapes = [list(o.shape) for o in out] if isinstance(out, (tuple, list)) else type(out).__name__
            raise RuntimeError(
                f"'{ESTIMATOR.filename}' returned {shapes}, not (simcc_x [n, 133, 576], simcc_y [n, 133, 768]): "
                "it is not the DWPose whole-body export"
            )
        xs.append(out[0][: len(part)].float().cpu().numpy())
        ys.append(out[1][: len(part)].float().cpu().numpy())
    return np.concatenate(xs), np.concatenate(ys)


def to_openpose(points: np.ndarray, scores: np.ndarray) -> list[Person]:
    """COCO whole-body [n, 133, 2] + [n, 133] -> people in OpenPose layout (body 18, face 68, hands 21)."""
    people = []
    for xy, score in zip(points, scores, strict=True):
        whole = np.concatenate([xy, score[:, None]], 1)
        neck = np.array([*(xy[5] + xy[6]) / 2.0, min(score[5], score[6])])
        body = np.stack([neck if i == NECK else whole[i] for i in BODY_FROM_COCO])
        people.append(Person(body, whole[FACE], whole[LEFT_HAND], whole[RIGHT_HAND], whole[FEET]))
    return people


def estimate_people(detector: Loaded, estimator: Loaded, frames: Sequence[np.ndarray]) -> list[list[Person]]:
    """Every person of every frame (uint8 RGB [H, W, 3]), coordinates in that frame's pixels."""
    crops: list[np.ndarray] = []
    where: list[tuple[int, np.ndarray, np.ndarray]] = []
    for index, rgb in enumerate(frames):
        for box in detect_people(detector, rgb):
            center, scale = box_to_center_scale(box)
            crops.append(crop_person(rgb, center, scale))
            where.append((index, center, scale))
    found: list[list[Person]] = [[] for _ in frames]
    if not crops:
        return found
    simcc_x, simcc_y = estimate(estimator, crops)  # the people of all frames share the passes
    locs, scores = simcc_decode(simcc_x, simcc_y)
    for (index, center, scale), loc, score in zip(where, locs, scores, strict=True):
        found[index] += to_openpose(crop_to_image(loc, center, scale)[None], score[None])
    return found


# --- drawing and keypoints -------------------------------------------------------------------------


def _normalised(part: np.ndarray, threshold: float, width: int, height: int) -> list[Point | None]:
    """Points of one part as the drawing wants them: 0..1 coordinates, None under the threshold."""
    return [Point(x / width, y / height) if c >= threshold and c > 0 else None for x, y, c in part]


def draw(people: Sequence[Person], threshold: float, height: int, width: int) -> np.ndarray:
    """OpenPose-style RGB uint8 canvas of ``people`` (coordinates in pixels of a ``width`` x ``height`` image)."""
    parts = [
        tuple(_normalised(p, threshold, width, height) for p in (person.body, person.left_hand, person.right_hand))
        + (_normalised(person.face, threshold, width, height),)
        for person in people
    ]
    return draw_people(parts, height, width)


def keypoint_entry(people: Sequence[Person], threshold: float, sx: float, sy: float) -> list[dict[str, Any]]:
    """POSE_KEYPOINT people; coordinates multiplied by ``sx``, ``sy`` (detection size -> input pixels)."""
    scale = np.array([sx, sy, 1.0])
    entries = []
    for person in people:
        face = np.concatenate([person.face, person.body[list(PUPILS_FROM_BODY)]])
        entries.append(
            person_entry(
                person.body * scale,
                threshold,
                face=face * scale,
                left_hand=person.left_hand * scale,
                right_hand=person.right_hand * scale,
                feet=person.feet * scale,
            )
        )
    return entries


def pose_dwpose(images: torch.Tensor, params: dict[str, Any]) -> tuple[torch.Tensor, list[PoseKeypointFrame]]:
    """DWPose body, hands and face, drawn as OpenPose on black; also the keypoints (POSE_KEYPOINT)."""
    detector = _load(DETECTOR, "dwpose_detector")
    estimator = _load(ESTIMATOR, "dwpose_estimator")
    threshold = float(params.get("keypoint_threshold", 0.3))
    height, width = images.shape[1:3]
    size = fit_size(height, width, network_resolution(params), 1)
    keypoints: list[PoseKeypointFrame] = []

    def run(chunk: torch.Tensor) -> torch.Tensor:
        frames = [rgb_u8_at(frame, size) for frame in chunk.numpy()]
        found = estimate_people(detector, estimator, frames)
        for people in found:
            entry = keypoint_entry(people, threshold, width / size[1], height / size[0])
            keypoints.append(frame_entry(width, height, entry))
        maps = np.stack([draw(people, threshold, size[0], size[1]) for people in found])
        return from_model(torch.from_numpy(maps).permute(0, 3, 1, 2).float() / 255.0, height, width)

    maps = run_chunks(images, chunk_size(params, detector), run)
    return maps, keypoints
