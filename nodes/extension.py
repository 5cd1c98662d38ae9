"""The ComfyUI extension: which nodes this pack offers (loaded through `comfy_entrypoint`)."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .detect import Detect


class DetectExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        from .scenario.network_loop import install_process_stop

        install_process_stop()  # ComfyUI loads packs on its main thread: SIGTERM first cancels our Scenario jobs
        return [Detect]
