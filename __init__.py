"""ComfyUI entry point of the Detect pack.

Kept tiny on purpose: ComfyUI imports this at start-up, so nothing heavy (and nothing that needs
ComfyUI) is imported until `comfy_entrypoint` is awaited.
"""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from .nodes.extension import DetectExtension

    return DetectExtension()


__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
