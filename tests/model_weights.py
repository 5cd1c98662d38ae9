"""Random-weight files laid out like the real downloads, for the model-backed detectors' tests.

Each writer builds the real network class with a fixed seed and saves its state dict in the same
format as the release file on the hub, so loading goes through exactly the code users run:

- PiDiNet ``table5_pidinet.pth``: ``{"state_dict": {"module.<k>": ...}}`` (saved from DataParallel);
- BAE ``scannet.pt``: ``{"model": {"module.<k>": ...}}`` (BAE's ``torch.save({"model":
  model.state_dict()})`` of a DataParallel model; 291 MB of float32 = exactly its 72.6 M values, so
  nothing else of size is in it), every buffer included (``num_batches_tracked`` too: the reference
  loader is strict);
- HED ``ControlNetHED.pth``: a plain state dict of float16 tensors (29 MB for 14.7 M values);
- OpenPose body/hand: a flat state dict without the stage prefix (``conv1_1.weight``);
- the others: the network's plain ``state_dict()``. All are zip-format ``torch.save`` pickles of
  tensors only (``torch.load(weights_only=True)`` reads them, as it reads the release files).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch

from scenario_detect.nodes.local import aux_detectors as ad
from scenario_detect.nodes.local.weights import WeightFile


def _seeded(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    torch.manual_seed(0)
    return build()


def _mlsd() -> dict:
    return _seeded(ad.aux("mlsd.models.mbv2_mlsd_large").MobileV2_MLSD_Large).state_dict()


def _pidinet() -> dict:
    net = _seeded(ad.aux("pidi.model").pidinet)
    return {"state_dict": {"module." + k: v for k, v in net.state_dict().items()}}


def _hed() -> dict:
    # The release file (29 MB for 14.7 M values) stores float16 tensors.
    return {k: v.half() for k, v in _seeded(ad.aux("hed").ControlNetHED_Apache2).state_dict().items()}


def _normal_bae() -> dict:
    net = _seeded(ad.bae_network)
    return {"model": {"module." + k: v for k, v in net.state_dict().items()}}


def _lineart() -> dict:
    return _seeded(lambda: ad.aux("lineart").Generator(3, 1, 3)).state_dict()


def _lineart_anime() -> dict:
    norm = functools.partial(torch.nn.InstanceNorm2d, affine=False, track_running_stats=False)
    mod = ad.aux("lineart_anime")
    return _seeded(lambda: mod.UnetGenerator(3, 1, 8, 64, norm_layer=norm, use_dropout=False)).state_dict()


def _openpose(cls_name: str) -> dict:
    net = _seeded(getattr(ad.aux("open_pose.model"), cls_name))
    return {k.split(".", 1)[1]: v for k, v in net.state_dict().items()}


def _face() -> dict:
    return _seeded(ad.aux("open_pose.face").FaceNet).state_dict()


WRITERS: dict[WeightFile, Callable[[], dict]] = {
    ad.MLSD: _mlsd,
    ad.PIDINET: _pidinet,
    ad.HED: _hed,
    ad.LINEART: _lineart,
    ad.LINEART_COARSE: _lineart,
    ad.LINEART_ANIME: _lineart_anime,
    ad.OPENPOSE_BODY: lambda: _openpose("bodypose_model"),
    ad.OPENPOSE_HAND: lambda: _openpose("handpose_model"),
    ad.OPENPOSE_FACE: _face,
    ad.NORMAL_BAE: _normal_bae,
}


def write_random(spec: WeightFile, root: Path, layout: str = "models") -> Path:
    """Write a random ``spec`` under ``root`` in one of the layouts the resolver searches.

    ``models``: ``root/<org>/<repo>/<file>`` (our models folder); ``hf``: a Hugging Face cache
    (``root/models--org--repo/snapshots/<rev>/<file>`` plus ``refs/main``); ``ckpts``: the same as
    ``models``, for comfyui_controlnet_aux's ``ckpts`` folder.
    """
    if layout == "hf":
        rev = "0123456789abcdef0123456789abcdef01234567"
        repo_dir = root / ("models--" + spec.repo.replace("/", "--"))
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / "main").write_text(rev)
        path = repo_dir / "snapshots" / rev / spec.filename
    else:
        path = root.joinpath(*spec.repo.split("/"), spec.filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(WRITERS[spec](), path)
    return path
