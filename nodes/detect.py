"""The Detect node: IMAGE in, control map out, for the ten modalities of Scenario's detect API.

Thin by design: the schema is built from the modality table and `execute` hands the batch to a
backend. Everything it knows about modalities comes from `modalities.py`.
"""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from .modalities import (
    AUTO_METHOD,
    MODALITY_NAMES,
    PARAMS,
    Param,
    all_local_method_names,
    resolve_local_method,
    validation_errors,
)

BACKENDS = ("local",)


def _param_input(param: Param) -> io.Input:
    common = {"default": param.default, "tooltip": param.tooltip}
    if param.kind == "bool":
        return io.Boolean.Input(param.name, **common)
    if param.kind == "int":
        return io.Int.Input(param.name, min=int(param.min), max=int(param.max), step=int(param.step), **common)
    return io.Float.Input(param.name, min=param.min, max=param.max, step=param.step, round=param.step, **common)


def schema_inputs() -> list[io.Input]:
    return [
        io.Image.Input("image", tooltip="The image(s) to turn into control maps; batches are kept in order."),
        io.Combo.Input(
            "modality", options=list(MODALITY_NAMES), default="canny",
            tooltip="Which control map to compute (the names Scenario's API uses).",
        ),
        io.Combo.Input(
            "local_method", options=all_local_method_names(), default=AUTO_METHOD,
            tooltip="How the local backend computes the modality; 'auto' picks its default method. "
            "Methods marked weight-free need no download.",
        ),
        *(_param_input(param) for param in PARAMS.values()),
    ]


class Detect(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="Detect",
            display_name="Detect (control map)",
            category="image/preprocessors",
            description="Turn images into control maps (edges, depth, pose, ...) for ControlNet-style "
            "generation. Output has the input's batch size, height and width.",
            inputs=schema_inputs(),
            outputs=[io.Image.Output(display_name="control_map")],
        )

    @classmethod
    def validate_inputs(
        cls,
        modality: Any = None,
        local_method: Any = None,
        low_threshold: Any = None,
        high_threshold: Any = None,
        min_threshold: Any = None,
        max_threshold: Any = None,
    ) -> bool | str:
        # ComfyUI skips its own range checks for inputs named here, so the table's checks cover them.
        params = {
            "low_threshold": low_threshold, "high_threshold": high_threshold,
            "min_threshold": min_threshold, "max_threshold": max_threshold,
        }
        errors = validation_errors(modality, params) if modality is not None else []
        if local_method is not None and modality in MODALITY_NAMES and not errors:
            try:
                resolve_local_method(modality, local_method)
            except ValueError as error:
                # A modality with no local method yet is reported when it runs (with what is missing).
                if local_method != AUTO_METHOD:
                    errors.append(str(error))
        return "; ".join(errors) if errors else True

    @classmethod
    async def execute(
        cls, image, modality: str, local_method: str = AUTO_METHOD, **params: Any
    ) -> io.NodeOutput:
        from .run import run_detect

        maps = run_detect(image, modality, params, local_method=local_method)
        return io.NodeOutput(maps)
