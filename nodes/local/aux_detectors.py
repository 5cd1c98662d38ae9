"""Model-backed detectors built on the network classes of ``controlnet-aux`` (a dependency, imported lazily).

Each detector has the local-method signature ``fn(images [B,H,W,3] float32 CPU, params) ->
[B,H,W,3] float32 0..1`` with the input's H and W. Each network is described once at the end of
this module (a ``networks.Network``: weight file, builder, input multiple, precision) and run by
``networks.run_network``: the image is resized so its short side is ``params["resolution"]`` (the
node's ``resolution`` widget and the CLI's ``--resolution``; default 512, the size the networks were
trained at), run in chunks (``Network.chunk``: one image per pass on a CPU, four on a GPU, or
``params["chunk"]``), and the map is resized back exactly.

Only the network classes come from controlnet-aux; the weights are found or downloaded by
``weights.py`` (never ``hf_hub_download``), read with ``torch.load(weights_only=True)`` and loaded
with ``strict=True``; networks are cached by ``models.MODELS``. Importing any controlnet_aux
submodule would run its package ``__init__`` (every detector, ~3 s and 250 MB): ``aux`` defers that
``__init__`` and loads only the submodule a method needs, inside its first call, never when ComfyUI
loads the pack.

Weights (all from https://huggingface.co/lllyasviel/Annotators) are the ``WeightFile`` constants below;
``nodes.local.METHODS`` lists each method's files, fetched together before it runs.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..images import rgb_u8_at
from .depth_maps import normal_rgb
from .models import Loaded, chunk_size, from_model, run_chunks, to_model
from .networks import Network, run_network
from .pose_drawing import Point, draw_people
from .pose_keypoints import PoseKeypointFrame, frame_entry, person_entry
from .weights import WeightFile, WeightFileUnusable, load_state_dict

ANNOTATORS = "lllyasviel/Annotators"
MLSD = WeightFile(ANNOTATORS, "mlsd_large_512_fp32.pth", "M-LSD line segment detector", "6.3 MB")
PIDINET = WeightFile(ANNOTATORS, "table5_pidinet.pth", "PiDiNet edge detector", "2.9 MB")
HED = WeightFile(ANNOTATORS, "ControlNetHED.pth", "HED edge detector", "29 MB")
LINEART = WeightFile(ANNOTATORS, "sk_model.pth", "lineart (informative drawings)", "17 MB")
LINEART_COARSE = WeightFile(ANNOTATORS, "sk_model2.pth", "coarse lineart (informative drawings)", "17 MB")
LINEART_ANIME = WeightFile(ANNOTATORS, "netG.pth", "anime lineart generator", "218 MB")
OPENPOSE_BODY = WeightFile(ANNOTATORS, "body_pose_model.pth", "OpenPose body", "209 MB")
OPENPOSE_HAND = WeightFile(ANNOTATORS, "hand_pose_model.pth", "OpenPose hand", "147 MB")
OPENPOSE_FACE = WeightFile(ANNOTATORS, "facenet.pth", "OpenPose face", "154 MB")
NORMAL_BAE = WeightFile(ANNOTATORS, "scannet.pt", "BAE surface normals (ScanNet)", "291 MB")

_IMPORT_LOCK = threading.RLock()


def _defer_package_init(name: str) -> None:
    """Register package ``name`` in ``sys.modules`` WITHOUT running its ``__init__`` yet.

    ``controlnet_aux/__init__.py`` imports every detector it has (~3 s and 250 MB: timm, DWPose,
    SAM, ...), and Python runs a package's ``__init__`` before any submodule of it. A network class
    lives in a submodule that imports only its siblings and ``controlnet_aux.util``, so the package
    is registered as a module object with the real ``__spec__`` and ``__path__`` (submodules are
    found as usual) whose ``__init__`` runs on the first attribute it lacks (``controlnet_aux.
    HEDdetector`` still works for any other code in the process: PEP 562 ``__getattr__``).
    Only a package nobody imported yet is touched.
    """
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # not a regular package on disk: let the normal import run (and fail clearly)
    package = importlib.util.module_from_spec(spec)

    def complete(attribute: str) -> Any:
        missing = AttributeError(f"module {name!r} has no attribute {attribute!r}")
        if attribute.startswith("__") and attribute not in ("__all__", "__version__"):
            raise missing
        if f"{name}.{attribute}" in sys.modules:
            return sys.modules[f"{name}.{attribute}"]
        if importlib.machinery.PathFinder.find_spec(f"{name}.{attribute}", package.__path__) is not None:
            # A submodule (``from . import util``): the import system loads it when this lookup fails;
            # running the __init__ here would re-enter the half-imported module that asked.
            raise missing
        with _IMPORT_LOCK:
            if package.__dict__.get("__getattr__") is complete:
                del package.__dict__["__getattr__"]  # before running it: its own lookups must not come back here
                spec.loader.exec_module(package)
        return getattr(package, attribute)

    package.__getattr__ = complete  # type: ignore[attr-defined]
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], child, package)  # as the import system does for a subpackage


def aux(module: str) -> ModuleType:
    """``controlnet_aux.<module>``, or an error that says how to install it.

    Only ``<module>`` and what it imports are loaded: the package ``__init__`` of each parent
    (``controlnet_aux``, ``controlnet_aux.pidi`` for ``pidi.model``) is deferred, see
    ``_defer_package_init``. ``aux("")`` is the whole package, as a plain import gives it.
    """
    full = f"controlnet_aux.{module}" if module else "controlnet_aux"
    try:
        with _IMPORT_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # timm / torch.jit deprecation noise from its __init__
            parts = full.split(".")
            for depth in range(1, len(parts)):
                _defer_package_init(".".join(parts[:depth]))
            return importlib.import_module(full)
    except ImportError as exc:
        raise RuntimeError(
            "this local method needs the package controlnet-aux (in this pack's requirements.txt): "
            "install it into ComfyUI's Python with `pip install controlnet-aux==0.0.10`, "
            f"then restart ComfyUI ({exc})"
        ) from exc


def need_aux() -> None:
    """Fail before any weight download when the network classes are not installed."""
    if importlib.util.find_spec("controlnet_aux") is None:
        aux("")  # raises the install message


def _strict(module: torch.nn.Module, state: dict[str, Any], path: Path) -> torch.nn.Module:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        expected, found = set(module.state_dict()), set(state)
        if expected == found:
            why = "its tensors have other shapes"
        else:
            why = f"{len(expected - found)} of the network's {len(expected)} tensors missing"
            why += f", {len(found - expected)} unknown ones"
        raise WeightFileUnusable(
            path, f"it holds the weights of another network ({why}); a file of the same name from elsewhere?"
        ) from exc
    return module


def _strip_prefix(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}


# --- M-LSD -------------------------------------------------------------------------------------


def build_mlsd(path: Path) -> torch.nn.Module:
    net = aux("mlsd.models.mbv2_mlsd_large").MobileV2_MLSD_Large()
    return _strict(net, load_state_dict(path), path)


def _mlsd_segments(out: torch.Tensor, score_thr: float, dist_thr: float, top_k: int = 200) -> list[np.ndarray]:
    """Line segments per image from M-LSD's [b,9,h/2,w/2] output, in the output map's pixels."""
    b, _, h, w = out.shape
    out = out.float()
    heat = torch.sigmoid(out[:, 0])
    peaks = F.max_pool2d(heat[:, None], 3, stride=1, padding=1)[:, 0]
    heat = torch.where(peaks == heat, heat, torch.zeros_like(heat)).reshape(b, -1)
    scores, idx = torch.topk(heat, min(top_k, heat.shape[1]), dim=1)
    disp = out[:, 1:5].reshape(b, 4, -1)
    segments = []
    for i in range(b):
        ys, xs = (idx[i] // w).float(), (idx[i] % w).float()
        d = disp[i][:, idx[i]]  # [4, k]: start x,y and end x,y offsets
        length = torch.hypot(d[0] - d[2], d[1] - d[3])
        keep = (scores[i] > score_thr) & (length > dist_thr)
        seg = torch.stack([xs + d[0], ys + d[1], xs + d[2], ys + d[3]], dim=1)[keep]
        segments.append(seg.cpu().numpy())
    return segments


# controlnet-aux's MLSDdetector defaults (thr_v, thr_d), which ControlNet's mlsd maps were made with.
MLSD_SCORE = 0.1
MLSD_DISTANCE = 0.1


def mlsd(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """M-LSD straight lines, 1-px-wide (scaled with the image) white on black."""
    need_aux()
    height, width = images.shape[1:3]

    def run(loaded: Loaded, chunk: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = to_model(chunk, size, loaded) * 2.0 - 1.0
        # M-LSD's fourth input plane: a plane of ones that went through the same 0..255 -> -1..1
        # normalisation as the pixels in the original pipeline, hence 1/127.5 - 1, not 1.
        x = torch.cat([x, torch.full_like(x[:, :1], 1.0 / 127.5 - 1.0)], dim=1)
        x = x.contiguous(memory_format=torch.channels_last)  # see to_model
        segs = _mlsd_segments(loaded.module(x), MLSD_SCORE, MLSD_DISTANCE)
        sx, sy = 2.0 * width / size[1], 2.0 * height / size[0]  # output is half the input size
        thickness = max(1, round(min(height, width) / 512))
        maps = np.zeros((chunk.shape[0], height, width), np.uint8)
        for canvas, seg in zip(maps, segs, strict=True):
            for x0, y0, x1, y1 in seg:
                p0 = (int(x0 * sx), int(y0 * sy))  # truncated, as the reference M-LSD drawing does
                p1 = (int(x1 * sx), int(y1 * sy))
                cv2.line(canvas, p0, p1, 255, thickness, cv2.LINE_8)
        return torch.from_numpy(maps).float().div_(255.0)[..., None].expand(-1, -1, -1, 3)

    return run_network(images, params, MLSD_NET, run)


# --- scribble: PiDiNet and HED, thinned and thickened like ControlNet's scribble maps ----------


def build_pidinet(path: Path) -> torch.nn.Module:
    """PiDiNet with its pixel-difference convolutions folded into plain ones (the paper's own
    re-parameterisation, ``convert=True``): the same outputs (to float rounding) and no kernel built
    at every forward nor the extra 1x1 convolution of the central-difference layers; measured 15-40 %
    faster on CPU at 512 px (the cold start is mostly this forward). The file is first loaded
    strictly into the original layout."""
    module = aux("pidi.model")
    state = load_state_dict(path)
    state = state.get("state_dict", state)  # the release file wraps it, keys prefixed "module."
    original = _strict(module.pidinet(), _strip_prefix(state, "module."), path)
    ops = [module.nets["carv4"][f"layer{i}"] for i in range(16)]  # the configuration pidinet() builds
    converted = module.PiDiNet(60, ops, dil=24, sa=True, convert=True)
    folded = dict(original.state_dict())
    blocks = ["init_block"] + [f"block{stage}_{i}" for stage, count in ((1, 3), (2, 4), (3, 4), (4, 4))
                               for i in range(1, count + 1)]
    for op, block in zip(ops, blocks, strict=True):
        key = f"{block}.weight" if block == "init_block" else f"{block}.conv1.weight"
        folded[key] = _plain_kernel(folded[key], op)
        if block != "init_block":
            # Its input is its own convolution's fresh output: in place saves a 60x512x512 float map per
            # block (measured 10-20 % of the forward on CPU). Not the other ReLUs: their inputs are reused.
            getattr(converted, block).relu2.inplace = True
    return _strict(converted, folded, path)


def _plain_kernel(weight: torch.Tensor, op: str) -> torch.Tensor:
    """The plain convolution kernel equal to PiDiNet's pixel-difference one (controlnet-aux's
    ``createConvFunc``): central (cd), angular (ad, 3x3) or radial (rd, 5x5) differences."""
    out_ch, in_ch = weight.shape[:2]
    flat = weight.reshape(out_ch, in_ch, 9)
    if op == "cd":  # conv(x, w) - conv(x, sum(w)) as 1x1: the centre tap minus the sum
        kernel = weight.clone()
        kernel[:, :, 1, 1] -= weight.sum(dim=(2, 3))
        return kernel
    if op == "ad":  # each tap minus its clockwise neighbour
        return (flat - flat[:, :, [3, 0, 1, 6, 4, 2, 7, 8, 5]]).reshape(weight.shape)
    if op == "rd":  # outer ring of a 5x5 kernel minus the inner ring
        kernel = torch.zeros(out_ch, in_ch, 25, dtype=weight.dtype)
        kernel[:, :, [0, 2, 4, 10, 14, 20, 22, 24]] = flat[:, :, 1:]
        kernel[:, :, [6, 7, 8, 11, 13, 16, 17, 18]] = -flat[:, :, 1:]
        return kernel.reshape(out_ch, in_ch, 5, 5)
    return weight  # "cv": already plain


def build_hed(path: Path) -> torch.nn.Module:
    return _strict(aux("hed").ControlNetHED_Apache2(), load_state_dict(path), path)


def _thin_lines(edge: np.ndarray, threshold: float = 127.0 / 255.0, sigma: float = 3.0) -> np.ndarray:
    """Soft edge map 0..1 -> scribble lines: non-maximum suppression, blur, then binarise.

    The constants are ControlNet's scribble recipe on 0..255 maps (ridge above 127, widened by a
    blur of sigma 3, kept where the rounded blur exceeds 4), expressed on 0..1.
    """
    x = cv2.GaussianBlur(edge.astype(np.float32), (0, 0), sigma)
    kept = np.zeros_like(x)
    for kernel in (
        np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], np.uint8),
        np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]], np.uint8),
        np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.uint8),
        np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], np.uint8),
    ):
        # A pixel that is the maximum along one of the four directions is on a ridge.
        np.putmask(kept, cv2.dilate(x, kernel) == x, x)
    lines = (kept > threshold).astype(np.float32)
    lines = cv2.GaussianBlur(lines, (0, 0), sigma)
    return (lines >= 4.5 / 255.0).astype(np.float32)


def _scribble(edges: torch.Tensor, height: int, width: int) -> torch.Tensor:
    maps = np.stack([_thin_lines(e) for e in edges[:, 0].float().cpu().numpy()])[:, None]
    return from_model(torch.from_numpy(maps), height, width)


def pidinet_edges(loaded: Loaded, images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Soft PiDiNet edges [b,1,h,w] in 0..1 for RGB images [b,H,W,3] seen at ``size``."""
    x = to_model(images, size, loaded).flip(1).contiguous(memory_format=torch.channels_last)
    return loaded.module(x)[-1]  # PiDiNet was trained on BGR


def hed_edges(loaded: Loaded, images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Soft HED edges [b,1,h,w] in 0..1: the mean of its five side outputs, through a sigmoid."""
    sides = loaded.module(to_model(images, size, loaded) * 255.0)  # HED takes 0..255 RGB
    sides = [F.interpolate(p.float(), size=size, mode="bilinear", align_corners=False) for p in sides]
    return torch.sigmoid(torch.stack(sides).mean(0))


def scribble_pidinet(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    need_aux()
    return run_network(images, params, PIDINET_NET, lambda loaded, chunk, size: _scribble(
        pidinet_edges(loaded, chunk, size), chunk.shape[1], chunk.shape[2]))


def scribble_hed(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    need_aux()
    return run_network(images, params, HED_NET, lambda loaded, chunk, size: _scribble(
        hed_edges(loaded, chunk, size), chunk.shape[1], chunk.shape[2]))


# --- lineart (sketch) and anime lineart ----------------------------------------------------------


def build_lineart(path: Path) -> torch.nn.Module:
    return _strict(aux("lineart").Generator(3, 1, 3), load_state_dict(path), path)


def _lineart(loaded: Loaded, chunk: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    lines = 1.0 - loaded.module(to_model(chunk, size, loaded)).float().clamp(0, 1)  # dark lines -> white
    return from_model(lines, chunk.shape[1], chunk.shape[2])


def sketch_lineart(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    need_aux()
    return run_network(images, params, LINEART_NET, _lineart)


def sketch_lineart_coarse(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    need_aux()
    return run_network(images, params, LINEART_COARSE_NET, _lineart)


def build_lineart_anime(path: Path) -> torch.nn.Module:
    import functools

    net_module = aux("lineart_anime")
    norm = functools.partial(torch.nn.InstanceNorm2d, affine=False, track_running_stats=False)
    net = net_module.UnetGenerator(3, 1, 8, 64, norm_layer=norm, use_dropout=False)
    return _strict(net, _strip_prefix(load_state_dict(path), "module."), path)


def _lineart_anime(loaded: Loaded, chunk: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    out = loaded.module(to_model(chunk, size, loaded) * 2.0 - 1.0).float()
    return from_model(1.0 - (out * 0.5 + 0.5).clamp(0, 1), chunk.shape[1], chunk.shape[2])


def lineart_anime(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    need_aux()
    return run_network(images, params, LINEART_ANIME_NET, _lineart_anime)


# --- BAE surface normals (ControlNet 1.1 normalbae's annotator) --------------------------------

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def bae_network() -> torch.nn.Module:
    """Bae et al.'s NNET (EfficientNet-B5 encoder, BN decoder, the 'scannet' configuration), untrained.

    The encoder is built from the EfficientNet code controlnet-aux ships (``torch.hub.load`` on
    that local folder with ``pretrained=False``): no download, no timm.
    """
    import contextlib
    import io
    import types

    args = types.SimpleNamespace(
        mode="client", architecture="BN", pretrained="scannet", sampling_ratio=0.4, importance_ratio=0.7
    )
    nnet = aux("normalbae.nets.NNET")
    with contextlib.redirect_stdout(io.StringIO()):  # its encoder prints "Loading base model ()...Done."
        return nnet.NNET(args)


def build_normal_bae(path: Path) -> torch.nn.Module:
    """The release file is ``{"model": state_dict}`` saved from a DataParallel model (``module.`` keys)."""
    state = load_state_dict(path)
    state = state.get("model", state)
    return _strict(bae_network(), _strip_prefix(state, "module."), path)


def bae_normals(loaded: Loaded, images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Unit normals [b,3,h,w] (-1..1; X left, Y up, Z towards the viewer) for RGB images seen at ``size``.

    The finest of the network's four predictions (full resolution); its fourth channel is the
    uncertainty, dropped.
    """
    x = to_model(images, size, loaded)
    mean = torch.tensor(_IMAGENET_MEAN, device=x.device, dtype=x.dtype)[:, None, None]
    std = torch.tensor(_IMAGENET_STD, device=x.device, dtype=x.dtype)[:, None, None]
    predictions = loaded.module((x - mean) / std)[0]
    return predictions[-1][:, :3].float()


def normal_bae(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """BAE normals as ControlNet's normalbae model was trained on: RGB = (n + 1) / 2, no renormalising."""
    need_aux()
    return run_network(images, params, NORMAL_BAE_NET, lambda loaded, chunk, size: from_model(
        normal_rgb(bae_normals(loaded, chunk, size)), chunk.shape[1], chunk.shape[2]))


# --- OpenPose ------------------------------------------------------------------------------------


def _transfer(net: torch.nn.Module, state: dict[str, Any], path: Path) -> torch.nn.Module:
    """The OpenPose release files name each layer without its stage prefix ("conv1_1.weight")."""
    renamed = {}
    for key in net.state_dict():
        short = key.split(".", 1)[1]
        if short not in state:
            raise WeightFileUnusable(path, f"it lacks the layer '{short}': it is not an OpenPose file of this kind")
        renamed[key] = state[short]
    if len(renamed) != len(state):
        raise WeightFileUnusable(path, f"it holds {len(state)} tensors where the network expects {len(renamed)}")
    return _strict(net, renamed, path)


def build_openpose_body(path: Path) -> torch.nn.Module:
    return _transfer(aux("open_pose.model").bodypose_model(), load_state_dict(path), path)


def build_openpose_hand(path: Path) -> torch.nn.Module:
    return _transfer(aux("open_pose.model").handpose_model(), load_state_dict(path), path)


def build_openpose_face(path: Path) -> torch.nn.Module:
    return _strict(aux("open_pose.face").FaceNet(), load_state_dict(path), path)


def _estimator(cls: type, loaded: Loaded) -> Any:
    """controlnet-aux's Body/Hand/Face post-processing around our already loaded network.

    Their constructors load the file with a full-pickle ``torch.load``; ours is loaded already.
    """
    obj = cls.__new__(cls)
    obj.model = loaded.module
    if cls.__name__ == "Face":
        face = aux("open_pose.face")
        obj.inference_size = face.params["inference_img_size"]
        obj.sigma = face.params["gaussian_sigma"]
        obj.threshold = face.params["heatmap_peak_thresh"]
    return obj


def confident_keypoints(person: Any, threshold: float, height: int, width: int) -> list[Any]:
    """``keypoint_threshold``: a joint is drawn only when its confidence reaches it.

    Returns the body's keypoints with coordinates normalised to 0..1 (what the drawing expects) and
    ``None`` for joints that are missing or below ``threshold``; limbs need both ends.
    """
    return [
        Point(k.x / width, k.y / height) if k is not None and k.score >= threshold else None for k in person.keypoints
    ]


def _body_array(person: Any, net_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """controlnet-aux body keypoints (network pixels, with scores) -> ``[18, 3]`` in input pixels."""
    sy, sx = size[0] / net_size[0], size[1] / net_size[1]
    return np.array(
        [(k.x * sx, k.y * sy, k.score) if k is not None else (0.0, 0.0, 0.0) for k in person.keypoints], np.float64
    ).reshape(-1, 3)


def _part_array(points: Any, size: tuple[int, int]) -> np.ndarray | None:
    """Hand or face points (normalised 0..1, not positive = not found, no score) -> ``[n, 3]`` input pixels.

    controlnet-aux gives hand and face peaks no confidence; a found point counts as 1, as in its JSON.
    """
    if not points:
        return None
    return np.array(
        [(p.x * size[1], p.y * size[0], 1.0) if p.x > 0 and p.y > 0 else (0.0, 0.0, 0.0) for p in points], np.float64
    )


def pose_frame(
    people: list[tuple[Any, Any, Any, Any]], threshold: float, net_size: tuple[int, int], size: tuple[int, int]
) -> PoseKeypointFrame:
    """One POSE_KEYPOINT entry from controlnet-aux results at ``net_size`` (h, w) for an input of ``size``.

    ``people`` holds (body, left hand, right hand, face) as the estimators return them: the body in
    network pixels with scores, hands and face normalised. Coordinates become input-image pixels,
    the positions our map shows once resized back; a body point under ``threshold`` is 0, 0, 0, like
    the drawing leaves it out.
    """
    entries = [
        person_entry(
            _body_array(body, net_size, size), threshold, face=_part_array(face, size),
            left_hand=_part_array(left, size), right_hand=_part_array(right, size),
        )
        for body, left, right, face in people
    ]
    return frame_entry(size[1], size[0], entries)


def _pose(
    images: torch.Tensor, params: dict[str, Any], hands_and_face: bool
) -> tuple[torch.Tensor, list[PoseKeypointFrame]]:
    need_aux()
    op = aux("open_pose")
    body = _estimator(op.Body, OPENPOSE_BODY_NET.load())
    hand = face = None
    if hands_and_face:
        hand = _estimator(op.Hand, OPENPOSE_HAND_NET.load())
        face = _estimator(op.Face, OPENPOSE_FACE_NET.load())
    detector = op.OpenposeDetector(body, hand, face)  # for its hand/face crops around a body
    threshold = float(params.get("keypoint_threshold", 0.3))
    height, width = images.shape[1:3]
    size = OPENPOSE_BODY_NET.size(height, width, params)
    keypoints: list[PoseKeypointFrame] = []

    def draw_one(frame: np.ndarray) -> np.ndarray:
        bgr = np.ascontiguousarray(rgb_u8_at(frame, size)[:, :, ::-1])
        candidate, subset = body(bgr)
        found = []
        for person in body.format_body_result(candidate, subset):
            left = right = face_points = None
            if hands_and_face:
                left, right = detector.detect_hands(person, bgr)
                face_points = detector.detect_face(person, bgr)
            found.append((person, left, right, face_points))
        keypoints.append(pose_frame(found, threshold, size, (height, width)))
        drawn = [(confident_keypoints(p, threshold, size[0], size[1]), lh, rh, fc) for p, lh, rh, fc in found]
        return draw_people(drawn, size[0], size[1])

    def run(chunk: torch.Tensor) -> torch.Tensor:
        maps = np.stack([draw_one(frame) for frame in chunk.numpy()])
        return from_model(torch.from_numpy(maps).permute(0, 3, 1, 2).float() / 255.0, height, width)

    maps = run_chunks(images, chunk_size(params), run)  # one image at a time inside anyway; in batch order
    return maps, keypoints


def pose_body(images: torch.Tensor, params: dict[str, Any]) -> tuple[torch.Tensor, list[PoseKeypointFrame]]:
    """OpenPose body skeleton (18 keypoints), drawn in OpenPose colours on black, and its keypoints."""
    return _pose(images, params, hands_and_face=False)


def pose_full(images: torch.Tensor, params: dict[str, Any]) -> tuple[torch.Tensor, list[PoseKeypointFrame]]:
    """OpenPose body, hands and face, drawn and as keypoints."""
    return _pose(images, params, hands_and_face=True)


# --- the networks, each described once (weights, builder, the sizes it takes) -------------------

MLSD_NET = Network("mlsd", MLSD, build_mlsd, multiple=64)
# float32: a 2.9 MB network gains little from float16, which was never checked against the reference.
PIDINET_NET = Network("pidinet", PIDINET, build_pidinet, multiple=8, half_ok=False)
# float32 only: HED takes 0..255 inputs and its deep activations can overflow float16.
HED_NET = Network("hed", HED, build_hed, multiple=16, half_ok=False)
LINEART_NET = Network("lineart", LINEART, build_lineart, multiple=8)
LINEART_COARSE_NET = Network("lineart_coarse", LINEART_COARSE, build_lineart, multiple=8)
LINEART_ANIME_NET = Network("lineart_anime", LINEART_ANIME, build_lineart_anime, multiple=256)  # 8 downsamplings
# float32: its unit-vector normalisation squares raw outputs and adds 1e-10, beyond float16's range
# either way, and the reference (what normalbae was trained on) runs in float32.
NORMAL_BAE_NET = Network("normal_bae", NORMAL_BAE, build_normal_bae, multiple=32, half_ok=False)  # EfficientNet: 32
OPENPOSE_BODY_NET = Network("openpose_body", OPENPOSE_BODY, build_openpose_body, multiple=1, half_ok=False)
OPENPOSE_HAND_NET = Network("openpose_hand", OPENPOSE_HAND, build_openpose_hand, multiple=1, half_ok=False)
OPENPOSE_FACE_NET = Network("openpose_face", OPENPOSE_FACE, build_openpose_face, multiple=1, half_ok=False)
