"""Local runs off ComfyUI's event loop, one at a time.

``Detect.execute`` is a coroutine: ComfyUI runs it as a task and goes on with the prompt's other
nodes while it is pending (remote jobs polling, ComfyUI's own API nodes). Local inference and weight
downloads block for seconds, so they run here, on one worker thread, while the loop stays free.

- One worker, shared by every local Detect of the process: a CPU method already uses every core
  (torch's intra-op threads, the OpenCV frame pool in ``images.map_frames``), so two at once would
  only oversubscribe them; on a GPU, one run at a time keeps ComfyUI's VRAM accounting simple. A
  second local Detect waits in the queue (its task is pending, the loop is still free).
- Models and downloads are therefore never raced by two of our runs. For any other caller (CLI code,
  tests, a second thread) ``ModelCache.get`` holds its lock across look-up and build (each network is
  built once) and ``weights._fetch_all`` locks per destination file (one download per file; a second
  caller finds the finished file).
- Not covered: ComfyUI's own nodes run on the prompt thread meanwhile. A GPU node of an independent
  branch of the same prompt may ask ComfyUI for VRAM while our network runs, and ComfyUI may then
  offload it mid-run (its model management has no "in use" flag); a graph that feeds the map onward
  waits for it and is unaffected.
- The run executes in a copy of the node task's context: ComfyUI's progress hook finds the executing
  node (``comfy_execution.utils.current_executing_context``) there, so the progress bar moves on the
  right node. Cancel is ComfyUI's global interrupt flag, checked between chunks as before.
- If the node's task is cancelled (another node failed, or consumed the interrupt flag first), the
  run is told to stop at its next check instead of running on into the next prompt.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from . import host

log = logging.getLogger("scenario_detect")
T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _worker() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scenario-detect-local")
        return _executor


async def run_off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on the local worker thread, awaited without blocking the loop."""
    context = contextvars.copy_context()
    abandoned = threading.Event()
    context.run(host.set_abandon_event, abandoned)

    def call() -> T:
        try:
            return fn(*args, **kwargs)
        except host.Interrupted:
            if abandoned.is_set():  # nobody awaits the result any more: say where the run went
                log.info("Local run stopped: the prompt it belonged to was cancelled or failed")
            raise

    future = _worker().submit(context.run, call)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        abandoned.set()  # not-yet-started runs are dropped by the cancel; a running one stops at its next check
        raise
