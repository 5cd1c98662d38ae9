"""The one table of modalities and their parameters.

Everything else reads this module: the node schema (``detect.py``), the Scenario API field mapping,
the CLI, the web extension (its rules travel as option keys of the node's inputs in /object_info,
see ``widget_visibility.py``) and the docs. Which function runs a local method is not here but
beside the functions, in ``nodes/local/__init__.py`` (``METHODS``). Nothing here imports torch, ComfyUI or
any optional library, so it is cheap to import anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ParamKind = Literal["int", "float", "bool"]


@dataclass(frozen=True)
class Param:
    """One tuning widget, mapped one-to-one to a field of ``POST /v1/generate/detect`` (or, in
    ``NETWORK_PARAMS``, an option of the local networks the API has no field for)."""

    name: str  # widget name, snake_case
    api_field: str  # the API's camelCase field; "" for a local-only option
    kind: ParamKind
    default: Any
    tooltip: str
    min: float | None = None
    max: float | None = None
    step: float | None = None

    def check(self, value: Any) -> str | None:
        """Return an error message when ``value`` is not acceptable, else None."""
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"{self.name} must be true or false, got {value!r}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{self.name} must be a number, got {value!r}"
        if value != value:  # NaN
            return f"{self.name} must be a number, got NaN"
        if self.min is not None and value < self.min:
            return f"{self.name}={value} is below its minimum {self.min:g}"
        if self.max is not None and value > self.max:
            return f"{self.name}={value} is above its maximum {self.max:g}"
        return None


@dataclass(frozen=True)
class LocalMethod:
    """One way to compute a modality on this machine."""

    # Unique across the table: it is a value of the node's `local_method` combo, and the key of its
    # function in ``nodes.local.METHODS`` (kept there, beside the code, imported only when it runs).
    name: str
    description: str
    needs_weights: bool = False
    # What the first run downloads ("6.3 MB"), for the web extension's method labels; required when
    # ``needs_weights`` (tests/test_web_table.py checks it), empty for weight-free methods.
    download: str = ""
    # True for the weight-free OpenCV methods: they read the raw batch (any channel count, NaN
    # handled per pixel) so the hot path makes no sanitised float copy first.
    raw_input: bool = False


@dataclass(frozen=True)
class Modality:
    name: str  # spelled as the API spells it
    description: str
    params: tuple[str, ...] = ()  # names of the Params that apply
    local_methods: tuple[LocalMethod, ...] = field(default_factory=tuple)


PARAMS: dict[str, Param] = {
    p.name: p
    for p in (
        Param(
            "low_threshold", "lowThreshold", "int", 100,
            "Canny: gradient strength below which a pixel is never an edge (0-255 scale). "
            "Lower finds more, fainter edges.",
            min=0, max=255, step=1,
        ),
        Param(
            "high_threshold", "highThreshold", "int", 200,
            "Canny: gradient strength above which a pixel is surely an edge (0-255 scale). "
            "Must be at least low_threshold.",
            min=0, max=255, step=1,
        ),
        Param(
            "factor", "factor", "float", 1.0,
            "Grayscale: contrast around mid-gray. 1 keeps the image, above 1 adds contrast, "
            "below 1 flattens it, 0 gives flat gray.",
            min=0.0, max=10.0, step=0.05,
        ),
        Param(
            "min_threshold", "minThreshold", "int", 0,
            "Grayscale: levels at or below this become black; the window min..max is stretched "
            "to the full 0-255 range.",
            min=0, max=255, step=1,
        ),
        Param(
            "max_threshold", "maxThreshold", "int", 255,
            "Grayscale: levels at or above this become white. Must be at least min_threshold.",
            min=0, max=255, step=1,
        ),
        Param(
            "remove_background", "removeBackground", "bool", False,
            "Grayscale: make the background black, keeping people, animals, vehicles, furniture "
            "and objects. Locally this runs an ADE20K segmentation model (241 MB download).",
        ),
        Param(
            "keypoint_threshold", "keypointThreshold", "float", 0.3,
            "Pose: confidence (0-1) a body keypoint needs to be drawn. Raise it to drop "
            "doubtful joints, lower it to draw more.",
            min=0.0, max=1.0, step=0.01,
        ),
    )
}

# Options of the local network methods (those that need weights), named and ranged as in
# comfyui_controlnet_aux, whose users set them on every preprocessor. The API has no such fields:
# the scenario backend ignores them (``api_fields`` reads ``Modality.params`` only), and so do the
# weight-free methods.
NETWORK_PARAMS: dict[str, Param] = {
    p.name: p
    for p in (
        Param(
            "resolution", "", "int", 512,
            "Local networks: the short side, in pixels, of the image the network sees (the map comes back "
            "at the input's size). Higher finds finer detail on large images and costs time and memory; "
            "lower is faster. Weight-free methods and the scenario backend ignore it.",
            min=64, max=16384, step=64,
        ),
    )
}

# Cross-parameter rules: pairs (low, high) where low must not exceed high.
ORDERED_PAIRS: tuple[tuple[str, str], ...] = (
    ("low_threshold", "high_threshold"),
    ("min_threshold", "max_threshold"),
)

# Model-backed methods (controlnet-aux networks, transformers models): where a weight-free method exists
# it stays first, so `auto` never starts a download nobody asked for; choosing the model by name
# downloads its weights once (see nodes/local/weights.py).

MODALITIES: dict[str, Modality] = {
    m.name: m
    for m in (
        Modality(
            "canny", "Canny edges of the RGB image (as ControlNet's canny annotator), white on black.",
            params=("low_threshold", "high_threshold"),
            local_methods=(
                LocalMethod("opencv_canny", "OpenCV Canny on the RGB image, as ControlNet's canny annotator "
                            "(weight-free).", raw_input=True),
                LocalMethod("opencv_canny_luma", "OpenCV Canny on the grayscale image, as ComfyUI core's "
                            "Canny node (weight-free; faster, loses edges between colours of similar "
                            "brightness).", raw_input=True),
            ),
        ),
        Modality(
            "depth", "Depth map, near is bright.",
            local_methods=(
                LocalMethod("depth_anything_v2", "Depth Anything V2 Small (99 MB download), near = bright, "
                            "normalised per image.", needs_weights=True, download="99 MB"),
            ),
        ),
        Modality(
            "grayscale", "Grayscale image with contrast and a levels window.",
            params=("factor", "min_threshold", "max_threshold", "remove_background"),
            local_methods=(
                LocalMethod("levels", "Luma, contrast factor and min..max window (weight-free).", raw_input=True),
            ),
        ),
        Modality(
            "lineart_anime", "Anime-style line art, white lines on black.",
            local_methods=(
                LocalMethod("lineart_anime", "Anime lineart network (netG.pth, 218 MB, downloaded "
                            "on first use).", needs_weights=True, download="218 MB"),
            ),
        ),
        Modality(
            "mlsd", "Straight line segments (M-LSD style), white on black.",
            local_methods=(
                LocalMethod("opencv_lsd", "OpenCV line segment detector with a length filter "
                            "(weight-free).", raw_input=True),
                LocalMethod("mlsd_large", "M-LSD network (mlsd_large_512_fp32.pth, 6.3 MB, downloaded "
                            "on first use).", needs_weights=True, download="6.3 MB"),
            ),
        ),
        Modality(
            "normal", "Surface normal map (RGB = X left, Y up, Z towards the viewer, as ControlNet "
            "normalbae expects).",
            local_methods=(
                LocalMethod("normal_bae", "BAE normal estimator, what ControlNet's normalbae model was "
                            "trained on (scannet.pt, 291 MB, downloaded on first use; slow on CPU).",
                            needs_weights=True, download="291 MB"),
                LocalMethod("depth_anything_normals", "Normals from Depth Anything V2 Small's depth "
                            "(99 MB download; lighter and faster), Sobel gradients as ControlNet's normal-from-depth.",
                            needs_weights=True, download="99 MB"),
            ),
        ),
        Modality(
            "pose", "OpenPose-style skeleton on black.",
            params=("keypoint_threshold",),
            local_methods=(
                LocalMethod("dwpose", "DWPose body, hands and face drawn as OpenPose (YOLOX-l + RTMPose-l "
                            "TorchScript, 2 files, 352 MB, downloaded on first use; Apache-2.0).",
                            needs_weights=True, download="352 MB"),
                LocalMethod("openpose_body", "OpenPose body skeleton (body_pose_model.pth, 209 MB, "
                            "downloaded on first use).", needs_weights=True, download="209 MB"),
                LocalMethod("openpose_full", "OpenPose body, hands and face (three files, 510 MB, "
                            "downloaded on first use; slow on CPU).",
                            needs_weights=True, download="510 MB"),
            ),
        ),
        Modality(
            "scribble", "Rough scribble lines, white on black.",
            local_methods=(
                LocalMethod("xdog", "Extended difference of Gaussians, thresholded and thickened "
                            "(weight-free).", raw_input=True),
                LocalMethod("pidinet_scribble", "PiDiNet edges thinned to scribble lines "
                            "(table5_pidinet.pth, 2.9 MB, downloaded on first use).",
                            needs_weights=True, download="2.9 MB"),
                LocalMethod("hed_scribble", "HED edges thinned to scribble lines (ControlNetHED.pth, "
                            "29 MB, downloaded on first use).", needs_weights=True,
                            download="29 MB"),
            ),
        ),
        Modality(
            "segmentation", "Semantic segmentation in the ADE20K palette.",
            local_methods=(
                LocalMethod("upernet_ade20k", "UperNet ConvNeXt-tiny on ADE20K (241 MB download), in "
                            "ControlNet's 150-colour palette.",
                            needs_weights=True, download="241 MB"),
            ),
        ),
        Modality(
            "sketch", "Pencil-sketch lines, white on black.",
            local_methods=(
                LocalMethod("pencil", "Dodge-blend pencil lines (weight-free).", raw_input=True),
                LocalMethod("lineart", "Lineart network, fine lines (sk_model.pth, 17 MB, downloaded "
                            "on first use).", needs_weights=True, download="17 MB"),
                LocalMethod("lineart_coarse", "Lineart network, coarse lines (sk_model2.pth, 17 MB, "
                            "downloaded on first use).", needs_weights=True,
                            download="17 MB"),
            ),
        ),
    )
}

MODALITY_NAMES: tuple[str, ...] = tuple(MODALITIES)  # the API's ten values, in its order

# The node's id is global across every pack a ComfyUI loads and frozen into saved workflows: it carries
# the pack's name so no other pack (or a future core node) can shadow it, and it never changes.
NODE_ID = "ScenarioDetect"
NODE_DISPLAY_NAME = "Scenario Detect (control map)"
NODE_CATEGORY = "image/preprocessors"  # where core's Canny lives; kept for users who browse the menu
# What people type in the node search to find a preprocessor (ComfyUI matches these besides the names);
# given only to a ComfyUI whose io.Schema has `search_aliases` (see detect.schema_extras).
SEARCH_ALIASES: tuple[str, ...] = (
    "canny", "edges", "edge detection", "depth map", "depth", "openpose", "pose", "pose keypoints",
    "normal map", "line art", "lineart", "anime line art", "scribble", "sketch", "mlsd", "straight lines",
    "segmentation", "grayscale", "controlnet preprocessor", "preprocessor", "annotator", "control map",
)  # fmt: skip
ESSENTIALS_CATEGORY = "Image Tools"  # core's Canny node is filed there

AUTO_METHOD = "auto"


def all_local_method_names() -> list[str]:
    """Values of the node's `local_method` combo: "auto" then every method once."""
    names = [AUTO_METHOD]
    for modality in MODALITIES.values():
        names += [m.name for m in modality.local_methods if m.name not in names]
    return names


def resolve_local_method(modality: str, method: str = AUTO_METHOD) -> LocalMethod:
    """The method to run, or a ValueError that says what is missing and what to do."""
    spec = MODALITIES[modality]
    if method in (AUTO_METHOD, "", None):
        return spec.local_methods[0]
    for candidate in spec.local_methods:
        if candidate.name == method:
            return candidate
    offered = ", ".join(m.name for m in spec.local_methods)
    raise ValueError(
        f"local_method '{method}' does not apply to modality '{modality}'; choose one of: "
        f"auto, {offered}."
    )


def default_params() -> dict[str, Any]:
    return {name: p.default for name, p in (PARAMS | NETWORK_PARAMS).items()}


def network_methods(modality: Modality) -> list[str]:
    """The `local_method` values that run a network for a modality (``auto`` when its default does):
    where the ``NETWORK_PARAMS`` apply."""
    names = [m.name for m in modality.local_methods if m.needs_weights]
    if modality.local_methods and modality.local_methods[0].needs_weights:
        names.insert(0, AUTO_METHOD)
    return names


class CheckedParams(dict):  # type: ignore[type-arg]
    """Parameter values already found valid for ``modality`` (``params.check_params`` makes them), so
    each path (node, CLI; local or remote backend) validates once, not again at every layer."""

    def __init__(self, modality: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.modality = modality


def validation_errors(modality: Any, params: dict[str, Any]) -> list[str]:
    """Every problem with a modality and its parameter values (empty when all is well).

    Only checks the parameters present in ``params``; missing ones take their defaults later.
    ``CheckedParams`` of the same modality were checked already: nothing to report.
    """
    if isinstance(params, CheckedParams) and params.modality == modality:
        return []
    errors: list[str] = []
    if modality not in MODALITIES:
        errors.append(f"modality must be one of {', '.join(MODALITY_NAMES)}; got {modality!r}")
    checked = PARAMS | NETWORK_PARAMS
    for name, value in params.items():
        if name in checked and value is not None:
            problem = checked[name].check(value)
            if problem:
                errors.append(problem)
    applies = MODALITIES[modality].params if modality in MODALITIES else tuple(PARAMS)
    for low, high in ORDERED_PAIRS:
        if low not in applies:  # hidden widgets of another modality must not block this one
            continue
        lo, hi = params.get(low), params.get(high)
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
            errors.append(f"{low} ({lo}) is greater than {high} ({hi}); set {low} <= {high}")
    return errors


def api_fields(modality: str, params: dict[str, Any]) -> dict[str, Any]:
    """The API body fields for a modality: only the parameters that apply to it."""
    fields: dict[str, Any] = {}
    for name in MODALITIES[modality].params:
        param = PARAMS[name]
        value = params.get(name, param.default)
        if param.kind == "int":
            value = int(value)
        elif param.kind == "float":
            value = float(value)
        else:
            value = bool(value)
        fields[param.api_field] = value
    return fields


# ------------------------------------------------------------------------------------------------
# Remote backend (Scenario API): the backend choice and the widgets only the `scenario` backend
# uses. The node builds its extra inputs from REMOTE_OPTIONS and the web extension hides them for
# `local`. Credentials are never a widget (see nodes/scenario/credentials.py).

BACKENDS: tuple[str, ...] = ("local", "scenario")
DEFAULT_BACKEND = "local"


@dataclass(frozen=True)
class RemoteOption:
    name: str  # widget name
    kind: Literal["bool", "int", "string"]
    default: Any
    tooltip: str
    maps_to: str = ""  # the API parameter it sets, when it sets one
    min: int | None = None
    max: int | None = None
    step: int | None = None
    optional: bool = False  # an optional input rather than a required widget


REMOTE_OPTIONS: dict[str, RemoteOption] = {
    o.name: o
    for o in (
        RemoteOption(
            "asset_id", "string", "",
            "Scenario: existing asset id(s) to process instead of uploading the image (one per image, "
            "separated by commas; several for a single image). Empty: the image is sent.",
            maps_to="image", optional=True,
        ),
        RemoteOption(
            "original_assets", "bool", False,
            "Scenario: ask for the original assets, without transformation (API query originalAssets).",
            maps_to="originalAssets",
        ),
        RemoteOption(
            "keep_api_size", "bool", False,
            "Scenario: keep the size Scenario returns instead of resizing the map back to the input's size.",
        ),
        RemoteOption(
            "estimate_only", "bool", False,
            "Scenario: only ask what the run would cost (dryRun); nothing runs, nothing is billed, the map "
            "is black and the estimate is shown on the node.",
            maps_to="dryRun",
        ),
        RemoteOption(
            "timeout_s", "int", 300,
            "Scenario: seconds to wait for each job before canceling it.",
            min=10, max=3600, step=10,
        ),
        RemoteOption(
            "max_parallel_jobs", "int", 8,
            "Scenario: how many images of a batch run at once (each image is its own job).",
            min=1, max=16, step=1,
        ),
    )
}
