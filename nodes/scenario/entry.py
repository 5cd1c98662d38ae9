"""The cloud backend's two ways in, the node's (run_for_node) and the CLI's (run_for_cli): progress and
interrupt wired to run_scenario.

Kept out of ``detect.py`` so the node file stays thin, and out of ``backend.py`` so the backend
stays free of ComfyUI (host adapters fall back to no-ops outside ComfyUI).
"""

from __future__ import annotations

import logging
from typing import Any

from .. import host
from ..modalities import REMOTE_OPTIONS

log = logging.getLogger("scenario_detect.scenario")


def remote_values(values: dict[str, Any]) -> dict[str, Any]:
    """The remote options from the node's inputs, defaults filled in."""
    return {name: values.get(name, option.default) for name, option in REMOTE_OPTIONS.items()}


def run_options(opts: dict[str, Any]) -> dict[str, Any]:
    """run_scenario's keyword arguments from the remote option values (node and CLI alike)."""
    from .backend import parse_asset_ids

    return {
        "asset_ids": parse_asset_ids(opts["asset_id"]) or None,
        "original_assets": bool(opts["original_assets"]),
        "keep_api_size": bool(opts["keep_api_size"]),
        "dry_run": bool(opts["estimate_only"]),
        "concurrency": int(opts["max_parallel_jobs"]),
        "timeout_s": float(opts["timeout_s"]),
    }


async def run_for_node(image: Any, modality: str, params: dict[str, Any], options: dict[str, Any]):
    """(maps, asset ids as one comma-separated string, UI text lines) for the Detect node."""
    from .backend import run_scenario

    kwargs = run_options(remote_values(options))
    ids = kwargs["asset_ids"]
    count = len(ids) if ids else int(image.shape[0]) if getattr(image, "ndim", 0) == 4 else 1
    bar = host.progress_bar(count)
    try:
        result = await run_scenario(
            image, modality, params, **kwargs, on_progress=bar, check_interrupt=host.interrupted
        )
    except host.Interrupted:
        # ComfyUI's own exception, so the UI shows "interrupted". A progress update may have consumed
        # the host's flag already (its hook raises and clears it): raise the host's exception anyway.
        host.throw_if_interrupted()
        if host.in_comfyui():
            import comfy.model_management as mm

            raise mm.InterruptProcessingException() from None
        raise
    return result.images, ", ".join(result.asset_ids), result.messages


def run_for_cli(image: Any, modality: str, params: dict[str, Any], options: dict[str, Any]):
    """Blocking scenario run for the CLI: maps, with messages printed; errors as DetectError."""
    from ..errors import DetectError
    from ..params import check_params
    from .backend import run_scenario_sync
    from .errors import ScenarioError
    from .network_loop import install_process_stop

    install_process_stop()  # SIGTERM (docker stop, a closed terminal) cancels the job before the process goes
    try:
        result = run_scenario_sync(
            image, modality, check_params(modality, params), **run_options(remote_values(options))
        )
    except ScenarioError as error:
        raise DetectError(f"Detect ({modality}, scenario): {error}") from None
    except KeyboardInterrupt:
        # Ctrl-C: the jobs were cancelled and the log said how that went; no traceback on top.
        raise SystemExit(130) from None
    for line in result.messages:
        print(line)
    if result.asset_ids:
        print("asset ids: " + ", ".join(result.asset_ids))
    return result.images
