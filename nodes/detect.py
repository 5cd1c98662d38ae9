"""The Detect node: IMAGE in, control map out, for the ten modalities of Scenario's detect API.

Thin by design: the schema is built from the modality table and `execute` hands the batch to a
backend. Everything it knows about modalities comes from `modalities.py`.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from comfy_api.latest import io

from .modalities import (
    AUTO_METHOD,
    BACKENDS,
    DEFAULT_BACKEND,
    ESSENTIALS_CATEGORY,
    MODALITY_NAMES,
    NETWORK_PARAMS,
    NODE_CATEGORY,
    NODE_DISPLAY_NAME,
    NODE_ID,
    PARAMS,
    REMOTE_OPTIONS,
    SEARCH_ALIASES,
    Param,
    RemoteOption,
    all_local_method_names,
    resolve_local_method,
    validation_errors,
)
from .widget_visibility import annotate_inputs


def _param_input(param: Param, optional: bool = False) -> io.Input:
    common = {"default": param.default, "tooltip": param.tooltip, "optional": optional}
    if param.kind == "bool":
        return io.Boolean.Input(param.name, **common)
    if param.kind == "int":
        return io.Int.Input(param.name, min=int(param.min), max=int(param.max), step=int(param.step), **common)
    return io.Float.Input(param.name, min=param.min, max=param.max, step=param.step, round=param.step, **common)


def _remote_input(option: RemoteOption) -> io.Input:
    common = {"default": option.default, "tooltip": option.tooltip, "optional": option.optional}
    if option.kind == "bool":
        return io.Boolean.Input(option.name, **common)
    if option.kind == "int":
        return io.Int.Input(option.name, min=option.min, max=option.max, step=option.step, **common)
    return io.String.Input(option.name, **common)


def schema_inputs() -> list[io.Input]:
    # annotate_inputs: which modality/backend each widget applies to, for web/ to hide the others.
    return annotate_inputs([
        io.Image.Input("image", tooltip="The image(s) to turn into control maps; batches are kept in order."),
        io.Combo.Input(
            "modality", options=list(MODALITY_NAMES), default="canny",
            tooltip="Which control map to compute (the names Scenario's API uses).",
        ),
        io.Combo.Input(
            "backend", options=list(BACKENDS), default=DEFAULT_BACKEND,
            tooltip="local: computed on this machine. scenario: Scenario's API (credits; key from "
            "SCENARIO_API_KEY/SCENARIO_API_SECRET or the credentials file, never a widget).",
        ),
        io.Combo.Input(
            "local_method", options=all_local_method_names(), default=AUTO_METHOD,
            tooltip="How the local backend computes the modality; 'auto' picks its default method. "
            "Methods marked weight-free need no download.",
        ),
        *(_param_input(param) for param in PARAMS.values()),
        *(_remote_input(option) for option in REMOTE_OPTIONS.values()),
        # Added after the first release: optional and last, so a saved workflow (whose widget values
        # are positional) or an API prompt without it still loads, with the default.
        *(_param_input(param, optional=True) for param in NETWORK_PARAMS.values()),
    ])


# The POSE_KEYPOINT type of ComfyUI core (SDPose nodes) and comfyui_controlnet_aux: the same name, so
# links colour alike and their nodes accept ours. Declared by name: older hosts have no io class for it.
PoseKeypoint = io.Custom("POSE_KEYPOINT")


def schema_extras(schema: type) -> dict[str, Any]:
    """``search_aliases`` and ``essentials_category`` for a host whose Schema has those fields.

    They came after ComfyUI 0.3.75; passing them to an older Schema would raise a TypeError and the
    pack would not load, so each is given only when the running host declares it.
    """
    if dataclasses.is_dataclass(schema):
        accepted = {f.name for f in dataclasses.fields(schema)}
    else:
        accepted = set(inspect.signature(schema).parameters)
    wanted = {"search_aliases": list(SEARCH_ALIASES), "essentials_category": ESSENTIALS_CATEGORY}
    return {name: value for name, value in wanted.items() if name in accepted}


class Detect(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_ID,
            display_name=NODE_DISPLAY_NAME,
            category=NODE_CATEGORY,
            description="Turn images into control maps (edges, depth, pose, ...) for ControlNet-style "
            "generation. Output has the input's batch size, height and width; pose methods also give "
            "their keypoints as data.",
            inputs=schema_inputs(),
            # Frozen order (saved workflows link outputs by index): new outputs go at the end.
            outputs=[
                io.Image.Output(display_name="control_map"),
                io.String.Output(display_name="asset_ids"),
                PoseKeypoint.Output(
                    display_name="pose_keypoint",
                    tooltip="Pose keypoints (OpenPose JSON, pixels of the input image), one entry per image; "
                    "no people for other modalities and for the scenario backend.",
                ),
            ],
            **schema_extras(io.Schema),
        )

    @classmethod
    def validate_inputs(
        cls,
        modality: Any = None,
        local_method: Any = None,
        backend: Any = None,
        low_threshold: Any = None,
        high_threshold: Any = None,
        min_threshold: Any = None,
        max_threshold: Any = None,
    ) -> bool | str:
        # ComfyUI skips its own range AND list checks for inputs named here (a linked input arrives
        # as None), so every check it would have made is made here, with the allowed values named.
        params = {
            "low_threshold": low_threshold, "high_threshold": high_threshold,
            "min_threshold": min_threshold, "max_threshold": max_threshold,
        }
        errors = validation_errors(modality, params) if modality is not None else []
        choices = {"backend": (backend, list(BACKENDS)), "local_method": (local_method, all_local_method_names())}
        for name, (value, allowed) in choices.items():
            if value is not None and value not in allowed:
                errors.append(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        if errors:
            return "; ".join(errors)
        if local_method is not None and modality in MODALITY_NAMES and backend != "scenario":
            try:
                resolve_local_method(modality, local_method)
            except ValueError as error:
                # A modality with no local method yet is reported when it runs (with what is missing).
                if local_method != AUTO_METHOD:
                    errors.append(str(error))
        return "; ".join(errors) if errors else True

    @classmethod
    async def execute(
        cls, image, modality: str, local_method: str = AUTO_METHOD, backend: str = DEFAULT_BACKEND,
        **params: Any
    ) -> io.NodeOutput:
        if backend == "scenario":
            from .local.pose_keypoints import empty_frames
            from .params import check_params
            from .scenario.entry import run_for_node

            maps, asset_ids, text = await run_for_node(image, modality, check_params(modality, params), params)
            # The API returns only images: one empty entry per map, with the map's size as canvas.
            keypoints = empty_frames(*maps.shape[:3])
            return io.NodeOutput(maps, asset_ids, keypoints, ui={"text": text})
        params = {k: v for k, v in params.items() if k not in REMOTE_OPTIONS}
        from .local_thread import run_off_loop
        from .run import run_detect

        # Off the event loop: the prompt's other async nodes (remote jobs) keep polling meanwhile.
        maps, keypoints = await run_off_loop(run_detect, image, modality, params, local_method=local_method)
        return io.NodeOutput(maps, "", keypoints)
