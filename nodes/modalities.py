"""The one table of modalities and their parameters.

Everything else reads this module: the node schema (``detect.py``), the Scenario API field mapping,
the CLI, the web extension (served as JSON) and the docs. Nothing here imports torch, ComfyUI or
any optional library, so it is cheap to import anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ParamKind = Literal["int", "float", "bool"]


@dataclass(frozen=True)
class Param:
    """One tuning widget, mapped one-to-one to a field of ``POST /v1/generate/detect``."""

    name: str  # widget name, snake_case
    api_field: str  # the API's camelCase field
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

    name: str  # unique across the table: it is a value of the node's `local_method` combo
    description: str
    # "package.module:function", imported lazily relative to ``nodes.local``; the function has the
    # signature ``(images: torch.Tensor [B,H,W,C] float32, params: dict) -> torch.Tensor [B,H,W,3]``.
    entry: str
    needs_weights: bool = False
    # True for the weight-free OpenCV methods: they read the raw batch (any channel count, NaN
    # handled per pixel) so the hot path makes no sanitised float copy first.
    raw_input: bool = False


@dataclass(frozen=True)
class Modality:
    name: str  # spelled as the API spells it
    description: str
    params: tuple[str, ...] = ()  # names of the Params that apply
    local_methods: tuple[LocalMethod, ...] = field(default_factory=tuple)
    # What a local run needs but this pack does not provide yet (shown in the error).
    local_missing: str = ""


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
            "Grayscale: remove the background (black) before conversion. Needs a "
            "background-removal model locally.",
        ),
        Param(
            "keypoint_threshold", "keypointThreshold", "float", 0.3,
            "Pose: confidence (0-1) a body keypoint needs to be drawn. Raise it to drop "
            "doubtful joints, lower it to draw more.",
            min=0.0, max=1.0, step=0.01,
        ),
    )
}

# Cross-parameter rules: pairs (low, high) where low must not exceed high.
ORDERED_PAIRS: tuple[tuple[str, str], ...] = (
    ("low_threshold", "high_threshold"),
    ("min_threshold", "max_threshold"),
)

_OPENCV = "opencv_detectors"

MODALITIES: dict[str, Modality] = {
    m.name: m
    for m in (
        Modality(
            "canny", "Canny edges of the grayscale image, white on black.",
            params=("low_threshold", "high_threshold"),
            local_methods=(
                LocalMethod("opencv_canny", "OpenCV Canny on the grayscale image (weight-free).",
                            f"{_OPENCV}:canny", raw_input=True),
            ),
        ),
        Modality(
            "depth", "Depth map, near is bright.",
            local_missing="a depth model (Depth Anything V2), which this version does not ship yet",
        ),
        Modality(
            "grayscale", "Grayscale image with contrast and a levels window.",
            params=("factor", "min_threshold", "max_threshold", "remove_background"),
            local_methods=(
                LocalMethod("levels", "Luma, contrast factor and min..max window (weight-free).",
                            f"{_OPENCV}:grayscale", raw_input=True),
            ),
        ),
        Modality(
            "lineart_anime", "Anime-style line art, white lines on black.",
            local_missing="the anime lineart model (netG.pth), which this version does not ship yet",
        ),
        Modality(
            "mlsd", "Straight line segments (M-LSD style), white on black.",
            local_methods=(
                LocalMethod("opencv_lsd", "OpenCV line segment detector with a length filter "
                            "(weight-free).", f"{_OPENCV}:mlsd_lines", raw_input=True),
            ),
        ),
        Modality(
            "normal", "Surface normal map (RGB = X right, Y up, Z towards the viewer).",
            local_missing="a depth or normal model, which this version does not ship yet",
        ),
        Modality(
            "pose", "OpenPose-style skeleton on black.",
            params=("keypoint_threshold",),
            local_missing="a pose model (OpenPose), which this version does not ship yet",
        ),
        Modality(
            "scribble", "Rough scribble lines, white on black.",
            local_methods=(
                LocalMethod("xdog", "Extended difference of Gaussians, thresholded and thickened "
                            "(weight-free).", f"{_OPENCV}:scribble_xdog", raw_input=True),
            ),
        ),
        Modality(
            "segmentation", "Semantic segmentation in the ADE20K palette.",
            local_missing="a semantic segmentation model (ADE20K), which this version does not ship yet",
        ),
        Modality(
            "sketch", "Pencil-sketch lines, white on black.",
            local_methods=(
                LocalMethod("pencil", "Dodge-blend pencil lines (weight-free).", f"{_OPENCV}:sketch_pencil",
                            raw_input=True),
            ),
        ),
    )
}

MODALITY_NAMES: tuple[str, ...] = tuple(MODALITIES)  # the API's ten values, in its order

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
    if not spec.local_methods:
        raise ValueError(
            f"modality '{modality}' cannot run locally yet: it needs {spec.local_missing}. "
            "Use backend 'scenario' for it, or pick another modality."
        )
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
    return {name: p.default for name, p in PARAMS.items()}


def validation_errors(modality: Any, params: dict[str, Any]) -> list[str]:
    """Every problem with a modality and its parameter values (empty when all is well).

    Only checks the parameters present in ``params``; missing ones take their defaults later.
    """
    errors: list[str] = []
    if modality not in MODALITIES:
        errors.append(f"modality must be one of {', '.join(MODALITY_NAMES)}; got {modality!r}")
    for name, value in params.items():
        if name in PARAMS and value is not None:
            problem = PARAMS[name].check(value)
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


def as_json() -> dict[str, Any]:
    """The table as plain data, for the web extension and the docs."""
    return {
        "modalities": {
            m.name: {
                "description": m.description,
                "params": list(m.params),
                "local_methods": [
                    {"name": lm.name, "description": lm.description, "needs_weights": lm.needs_weights}
                    for lm in m.local_methods
                ],
                "local_missing": m.local_missing,
            }
            for m in MODALITIES.values()
        },
        "params": {
            p.name: {
                "api_field": p.api_field, "kind": p.kind, "default": p.default, "min": p.min,
                "max": p.max, "step": p.step, "tooltip": p.tooltip,
            }
            for p in PARAMS.values()
        },
    }
