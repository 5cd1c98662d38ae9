"""ComfyUI entry point of the Detect pack.

Kept tiny on purpose: ComfyUI imports this at start-up, so nothing heavy (and nothing that needs
ComfyUI) is imported until `comfy_entrypoint` is awaited.
"""

import importlib.util
import sys

WEB_DIRECTORY = "./web"
MIN_COMFYUI = "0.3.52"  # the oldest release tested (tests/test_comfyui_oldest.py); pyproject's requires-comfyui


def _host_too_old() -> bool:
    """Inside a ComfyUI without the V3 API (``comfy_api.latest``): it would skip the pack silently."""
    if "folder_paths" not in sys.modules:  # the CLI or plain Python: no ComfyUI to check
        return False
    try:
        return importlib.util.find_spec("comfy_api.latest") is None
    except ImportError:  # no comfy_api package at all
        return True


if _host_too_old():
    raise ImportError(
        f"Scenario Detect needs ComfyUI {MIN_COMFYUI} or newer (it uses the V3 node API, comfy_api.latest, "
        "which this ComfyUI does not have): update ComfyUI, then restart it"
    )


async def comfy_entrypoint():
    from .nodes.extension import DetectExtension

    return DetectExtension()


__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
