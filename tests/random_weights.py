"""Random-weight model folders laid out exactly like the real downloads, for tests (no network).

One models root holds every network as ``<root>/<org>/<repo>/<files>``, the layout
``nodes.local.weights`` searches and downloads into. Each builder writes one repository folder with
small, randomly initialised networks of the real architecture (the real loading code runs on them).

Shared by every model-backed area: append a builder with ``@builder("org/repo")`` below; a builder
receives the repository folder to fill. ``build_all(root)`` writes every registered repository
(skipping those already complete). The single-file checkpoints of ``model_weights.WRITERS``
(controlnet_aux networks) are registered here too, one builder per repository.

``models_root()`` is the one folder the whole session uses: built once and kept in
``~/.cache/scenario-detect/random-weights/<key>`` (``$SCENARIO_DETECT_TEST_WEIGHTS`` overrides the
parent), where the key hashes this file, ``model_weights.py`` and the torch/transformers versions,
so editing a builder rebuilds and an unchanged tree reuses about 1 GB of random weights.

The shared ComfyUI test server gets this folder as its ``scenario_detect`` models folder (an
``extra_model_paths.yaml`` entry) with downloads disabled, through the setup step registered at the
bottom; importing this module from a test module is enough.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

BuildRepo = Callable[[Path], None]
BUILDERS: dict[str, BuildRepo] = {}
_DONE = ".random-weights-complete"


def builder(repo: str) -> Callable[[BuildRepo], BuildRepo]:
    """Register ``fn(folder)`` as the writer of hub repository ``repo`` ("org/name")."""

    def register(fn: BuildRepo) -> BuildRepo:
        BUILDERS[repo] = fn
        return fn

    return register


def repo_dir(root: Path, repo: str) -> Path:
    return root.joinpath(*repo.split("/"))


def build(root: Path, repo: str) -> Path:
    """Write ``repo`` under ``root`` (once; a marker file says it is complete)."""
    folder = repo_dir(root, repo)
    if not (folder / _DONE).is_file():
        import torch

        folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)  # the same weights every session: outputs are reproducible
        BUILDERS[repo](folder)
        (folder / _DONE).write_text("ok")
    return folder


def build_all(root: Path) -> Path:
    for repo in BUILDERS:
        build(root, repo)
    return root


_ROOT: Path | None = None


def _cache_key() -> str:
    import torch

    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("random_weights.py", "model_weights.py", "dwpose_standins.py"):
        if (here / name).is_file():
            digest.update((here / name).read_bytes())
    try:
        from importlib.metadata import version

        digest.update(version("transformers").encode())
    except Exception:
        pass
    digest.update(torch.__version__.encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def only_these_weights(root: Path) -> Iterator[Path]:
    """For in-process tests: the pack finds weights in ``root`` only (no HF cache, no aux ckpts, no
    download: a miss fails instead of reaching the network), runs on the CPU, and starts and ends
    with an empty model cache."""
    from scenario_detect.nodes.local.models import MODELS

    mp = pytest.MonkeyPatch()
    mp.setenv("SCENARIO_DETECT_MODELS_DIR", str(root))
    mp.setenv("SCENARIO_DETECT_OFFLINE", "1")
    mp.setenv("HF_HUB_CACHE", str(root / ".empty-hf-cache"))
    mp.setenv("AUX_ANNOTATOR_CKPTS_PATH", str(root / ".no-ckpts"))
    mp.setenv("SCENARIO_DETECT_DEVICE", "cpu")
    MODELS.clear()
    try:
        yield root
    finally:
        MODELS.clear()
        mp.undo()


def models_root() -> Path:
    """The session's models folder with every registered repository in it (built at most once)."""
    global _ROOT
    if _ROOT is None:
        parent = os.environ.get("SCENARIO_DETECT_TEST_WEIGHTS") or Path.home() / ".cache" / "scenario-detect"
        root = Path(parent) / "random-weights" / _cache_key()
        if not root.is_dir():
            # Build aside, then rename: a concurrent session never sees a half-written folder.
            root.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".building-", dir=root.parent))
            build_all(staging)
            try:
                staging.rename(root)
            except OSError:  # another session finished first
                shutil.rmtree(staging, ignore_errors=True)
            # Folders of older builders (~1 GB each) go once unused for a day: a folder of another checkout's
            # code may be in use by a test session running right now (two checkouts on one machine).
            for stale in root.parent.iterdir():
                if stale != root and not stale.name.startswith(".") and time.time() - stale.stat().st_mtime > 86400:
                    shutil.rmtree(stale, ignore_errors=True)
        os.utime(root)  # in use: the cleanup above, in other sessions, keeps it for a day from now
        _ROOT = root
    return build_all(_ROOT)  # a builder added since the folder was made is written now


def _json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2))


# -- transformers networks (nodes/local/transformers_detectors.py) --


@builder("depth-anything/Depth-Anything-V2-Small-hf")
def depth_anything_v2_small(folder: Path) -> None:
    """Depth Anything V2 (DINOv2 backbone + DPT head), tiny widths, saved by transformers."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=14,
        image_size=518,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
        apply_layernorm=True,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        patch_size=14,
        depth_estimation_type="relative",
    )
    DepthAnythingForDepthEstimation(config).save_pretrained(str(folder))
    _json(
        folder / "preprocessor_config.json",
        {
            "image_processor_type": "DPTImageProcessor",
            "do_resize": True,
            "size": {"height": 518, "width": 518},
            "keep_aspect_ratio": True,
            "ensure_multiple_of": 14,
            "resample": 3,
            "do_rescale": True,
            "rescale_factor": 1 / 255,
            "do_normalize": True,
            "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225],
            "do_pad": False,
        },
    )


@builder("openmmlab/upernet-convnext-tiny")
def upernet_convnext_tiny(folder: Path) -> None:
    """UperNet + ConvNeXt with ADE20K's 150 labels, tiny widths, saved by transformers."""
    from transformers import ConvNextConfig, UperNetConfig, UperNetForSemanticSegmentation

    from scenario_detect.nodes.local.ade20k import ADE20K_NAMES

    backbone = ConvNextConfig(
        hidden_sizes=[8, 16, 32, 64],
        depths=[1, 1, 1, 1],
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = UperNetConfig(
        backbone_config=backbone,
        hidden_size=16,
        use_auxiliary_head=False,
        num_labels=len(ADE20K_NAMES),
        id2label=dict(enumerate(ADE20K_NAMES)),
        label2id={n: i for i, n in enumerate(ADE20K_NAMES)},
    )
    UperNetForSemanticSegmentation(config).save_pretrained(str(folder))
    _json(
        folder / "preprocessor_config.json",
        {
            "image_processor_type": "SegformerImageProcessor",
            "do_resize": True,
            "size": {"height": 512, "width": 512},
            "resample": 2,
            "do_rescale": False,
            "do_normalize": True,
            "image_mean": [123.675, 116.28, 103.53],
            "image_std": [58.395, 57.12, 57.375],
            "do_reduce_labels": False,
        },
    )


# -- controlnet_aux checkpoints (tests/model_weights.py): one builder per repository --

try:
    import model_weights
except ImportError:  # that area is not present
    model_weights = None

if model_weights is not None:

    def _aux_repo_builder(repo: str) -> BuildRepo:
        def write(folder: Path) -> None:
            root = folder.parents[len(repo.split("/")) - 1]
            for spec in model_weights.WRITERS:
                if spec.repo == repo:
                    model_weights.write_random(spec, root)

        return write

    for _repo in sorted({spec.repo for spec in model_weights.WRITERS}):
        BUILDERS.setdefault(_repo, _aux_repo_builder(_repo))


# -- DWPose's TorchScript files (tests/dwpose_standins.py) --

try:
    import dwpose_standins
except ImportError:  # that area is not present
    dwpose_standins = None

if dwpose_standins is not None:
    from scenario_detect.nodes.local import dwpose as _dwpose

    @builder(_dwpose.DETECTOR.repo)
    def _dwpose_detector(folder: Path) -> None:
        dwpose_standins.write_detector(folder / _dwpose.DETECTOR.filename)

    @builder(_dwpose.ESTIMATOR.repo)
    def _dwpose_estimator(folder: Path) -> None:
        dwpose_standins.write_estimator(folder / _dwpose.ESTIMATOR.filename)


# -- the shared ComfyUI server --

try:
    import comfy_host
except ImportError:  # imported outside the tests folder
    comfy_host = None

if comfy_host is not None:

    @comfy_host.register_server_setup
    def _random_weights_folder(options: comfy_host.ServerOptions, stack: contextlib.ExitStack) -> None:
        """Every random-weight repository as the server's ``scenario_detect`` models folder, offline."""
        options.extra_paths["scenario_detect"] = str(models_root())
        options.env["SCENARIO_DETECT_OFFLINE"] = "1"
        options.env.setdefault("HF_HUB_OFFLINE", "1")
        # An empty HF cache: a developer's real downloads must not replace the random weights.
        options.env["HF_HUB_CACHE"] = str(models_root() / ".empty-hf-cache")
        options.env["SCENARIO_DETECT_MODELS_DIR"] = ""  # a developer's own folder is not searched
