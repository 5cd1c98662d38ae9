"""Model-backed detectors run through Hugging Face transformers: depth, normal, segmentation, and
the background removal behind grayscale's ``remove_background``.

Networks (each a whole hub repository folder: config.json, model.safetensors,
preprocessor_config.json; found or downloaded by ``weights.repo_folder``, loaded once by
``models.MODELS``):

- depth, normal: Depth Anything V2 Small (``depth-anything/Depth-Anything-V2-Small-hf``, 99 MB,
  Apache-2.0). Normals are derived from its depth (``depth_maps``), as ControlNet's normal-from-MiDaS.
- segmentation, remove_background: UperNet + ConvNeXt-tiny trained on ADE20K
  (``openmmlab/upernet-convnext-tiny``, 241 MB, MIT): UperNet on ADE20K is what ControlNet's seg
  annotator runs (UperNet + UniFormer-S), so its maps match what seg ControlNets were trained on.

transformers is imported inside the loaders only: importing this module costs torch, not more.
Any checkpoint of the same families can replace these (another Depth Anything size, an ADE20K
SegFormer): put its folder where the default one would go.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..images import sanitized
from . import depth_maps
from .ade20k import ADE20K_PALETTE, SUBJECT_CLASSES
from .models import Loaded, to_model
from .networks import Network, run_network
from .opencv_detectors import grayscale
from .weights import WeightFile, WeightFileUnusable

log = logging.getLogger("scenario_detect.transformers")

REPO_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")
DEPTH_REPO = "depth-anything/Depth-Anything-V2-Small-hf"
SEGMENTATION_REPO = "openmmlab/upernet-convnext-tiny"


def repo_files(repo: str, description: str, weights_size: str) -> tuple[WeightFile, ...]:
    """The three files of a hub model folder, with sizes for the fetch-by-hand message."""
    return tuple(
        WeightFile(repo, name, description, weights_size if name == "model.safetensors" else "1 KB")
        for name in REPO_FILES
    )


DEPTH_FILES = repo_files(DEPTH_REPO, "Depth Anything V2 Small", "99 MB")
SEGMENTATION_FILES = repo_files(SEGMENTATION_REPO, "UperNet ConvNeXt-tiny ADE20K", "241 MB")

DEPTH_RESOLUTION = 518  # Depth Anything V2's training size; sides must be multiples of its 14 px patch
# ``resolution`` (default 512) is scaled by this for Depth Anything: the default gives its training
# size, 518; other values in proportion (1024 -> 1036: 74 patches of 14 px).
DEPTH_SCALE = DEPTH_RESOLUTION / 512
DEPTH_MULTIPLE = 14
SEGMENTATION_RESOLUTION = 512  # ADE20K models are trained on 512 px crops, tested at short side 512
SEGMENTATION_MULTIPLE = 32  # ConvNeXt downsamples by 32
ADE20K_LABELS = 150
# A picture with less than this fraction of "subject" pixels has no subject to keep: it is left
# whole rather than blacked out (and a warning is logged).
MIN_SUBJECT_FRACTION = 0.002

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# Images per forward pass on a GPU, which gains from batches; on a CPU one at a time (batch 2 showed
# no gain there, and one image keeps memory low, 150 class maps each, and the progress bar moving).
GPU_CHUNK = 8


def _normalization(folder: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std (0..1 scale) from the repository's preprocessor_config.json."""
    try:
        config = json.loads((folder / "preprocessor_config.json").read_text())
    except (OSError, ValueError):
        return _IMAGENET_MEAN, _IMAGENET_STD
    mean = tuple(float(v) for v in config.get("image_mean", _IMAGENET_MEAN))
    std = tuple(float(v) for v in config.get("image_std", _IMAGENET_STD))
    if max(mean) > 1.0:  # mmseg-style configs give 0..255 statistics
        mean, std = tuple(v / 255.0 for v in mean), tuple(v / 255.0 for v in std)
    return mean, std


def _normalize(x: torch.Tensor, network: HubNetwork) -> torch.Tensor:
    m = torch.tensor(network.mean, device=x.device, dtype=x.dtype)[None, :, None, None]
    s = torch.tensor(network.std, device=x.device, dtype=x.dtype)[None, :, None, None]
    return (x - m) / s


# -- loaders: folder -> CPU float32 module (called by MODELS.get once per folder/device/dtype) --


class HubNetwork(torch.nn.Module):
    """A transformers model behind a plain module whose forward returns one tensor.

    ComfyUI's ModelPatcher assigns ``model.device``, which transformers models expose as a
    read-only property; a plain wrapper takes the assignment and holds the real network inside.
    """

    def __init__(self, network: torch.nn.Module, output: str, folder: Path) -> None:
        super().__init__()
        self.network = network
        self.output = output
        self.mean, self.std = _normalization(folder)  # the input statistics its folder announces

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return getattr(self.network(pixel_values=pixel_values), self.output)


def build_depth_model(folder: Path) -> torch.nn.Module:
    from transformers import AutoModelForDepthEstimation

    # No dtype argument: its name changed across transformers versions (ComfyUI needs >= 4.50).
    network = AutoModelForDepthEstimation.from_pretrained(str(folder), local_files_only=True)
    return HubNetwork(network.float(), "predicted_depth", folder)


def build_segmentation_model(folder: Path) -> torch.nn.Module:
    from transformers import AutoModelForSemanticSegmentation

    model = AutoModelForSemanticSegmentation.from_pretrained(str(folder), local_files_only=True).float()
    labels = int(model.config.num_labels)
    if labels != ADE20K_LABELS:
        raise WeightFileUnusable(
            folder,
            f"it predicts {labels} classes; the segmentation modality needs an ADE20K model with "
            f"{ADE20K_LABELS} classes (ControlNet's palette), such as {SEGMENTATION_REPO}",
        )
    return HubNetwork(model, "logits", folder)


DEPTH = Network(
    "depth_anything_v2_small", DEPTH_FILES, build_depth_model, DEPTH_MULTIPLE, scale=DEPTH_SCALE, gpu_chunk=GPU_CHUNK
)
SEGMENTATION = Network(
    "upernet_ade20k", SEGMENTATION_FILES, build_segmentation_model, SEGMENTATION_MULTIPLE, SEGMENTATION_RESOLUTION,
    gpu_chunk=GPU_CHUNK,
)


def depth_model(models_dir: str | Path | None = None) -> tuple[Loaded, Path]:
    return DEPTH.load(models_dir), DEPTH.path(models_dir)


def segmentation_model(models_dir: str | Path | None = None) -> tuple[Loaded, Path]:
    return SEGMENTATION.load(models_dir), SEGMENTATION.path(models_dir)


# -- inference on one chunk --


def predict_depth(loaded: Loaded, images: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """[b, H, W, 3] 0..1 CPU -> [b, H, W] normalised depth (near = 1) on the model's device; the
    network sees ``size`` (default: ``DEPTH``'s own)."""
    height, width = images.shape[1:3]
    size = size or DEPTH.size(height, width, {})
    prediction = loaded.module(_normalize(to_model(images, size, loaded), loaded.module)).float()  # larger = nearer
    prediction = F.interpolate(prediction[:, None], size=(height, width), mode="bicubic", align_corners=False)
    return depth_maps.normalize_depth(prediction[:, 0])


def predict_logits(loaded: Loaded, images: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """[b, H, W, 3] 0..1 CPU -> ADE20K logits [b, 150, h, w] (float32) at the model's resolution."""
    size = size or SEGMENTATION.size(images.shape[1], images.shape[2], {})
    return loaded.module(_normalize(to_model(images, size, loaded), loaded.module)).float()


def paint_labels(labels: torch.Tensor) -> torch.Tensor:
    """Class indices [b, H, W] -> ADE20K palette colours [b, H, W, 3] float 0..1."""
    palette = torch.tensor(ADE20K_PALETTE, dtype=torch.float32, device=labels.device) / 255.0
    return palette[labels.clamp(0, len(ADE20K_PALETTE) - 1)]


def labels_at(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Class per output pixel: argmax at the model's resolution, then nearest-neighbour resize
    (colours must stay exact palette entries, never blends)."""
    labels = logits.argmax(dim=1, keepdim=True).float()
    labels = F.interpolate(labels, size=(height, width), mode="nearest-exact")
    return labels[:, 0].long()


def subject_alpha(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Soft foreground [b, H, W] 0..1: the probability that a pixel belongs to a subject class.

    An image whose subject area is below ``MIN_SUBJECT_FRACTION`` gets alpha 1 everywhere (kept).
    """
    probabilities = logits.softmax(dim=1)
    subject = probabilities[:, list(SUBJECT_CLASSES)].sum(dim=1, keepdim=True)
    alpha = F.interpolate(subject, size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    alpha = alpha.clamp_(0.0, 1.0)
    empty = (alpha > 0.5).float().mean(dim=(1, 2)) < MIN_SUBJECT_FRACTION
    if bool(empty.any()):
        log.warning(
            "remove_background: no person, animal, vehicle, furniture or object found in %d image(s); "
            "kept their background",
            int(empty.sum()),
        )
        alpha[empty] = 1.0
    return alpha


# -- detectors (the LocalMethod entries) --


def depth_anything(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """Depth, near = bright, normalised per image, same size as the input."""
    # [b,H,W,1]: broadcast into 3 channels
    return run_network(images, params, DEPTH, lambda loaded, chunk, size: predict_depth(loaded, chunk, size)[..., None])


def normal_from_depth_anything(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """Normals from Depth Anything's depth, RGB = (left, up, viewer) as ControlNet normalbae expects."""
    return run_network(images, params, DEPTH, lambda loaded, chunk, size: depth_maps.normals_from_depth(
        predict_depth(loaded, chunk, size)))


def segmentation_ade20k(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """ADE20K semantic segmentation in ControlNet's palette, same size as the input."""
    return run_network(images, params, SEGMENTATION, lambda loaded, chunk, size: paint_labels(
        labels_at(predict_logits(loaded, chunk, size), chunk.shape[1], chunk.shape[2])))


def remove_background(images: torch.Tensor) -> torch.Tensor:
    """Soft subject mask [B, H, W] 0..1 (1 = keep) from the ADE20K segmentation model, at its own resolution
    (grayscale has no ``resolution``: it is a weight-free method)."""
    alpha = run_network(images, {}, SEGMENTATION, lambda loaded, chunk, size: subject_alpha(
        predict_logits(loaded, chunk, size), chunk.shape[1], chunk.shape[2])[..., None])
    return alpha[..., 0]


def grayscale_without_background(images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """Grayscale levels of the subject on a black background.

    The levels (factor, min/max window) are computed on the whole image, so the subject's tones do
    not depend on what surrounded it; the background is then made exactly black through the soft
    mask, whatever the levels would have turned black into.
    """
    alpha = remove_background(sanitized(images))  # grayscale gets the raw batch (any channels, NaN)
    gray = grayscale(images, params)
    return gray.mul_(alpha[..., None])
