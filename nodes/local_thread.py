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
- One GPU, one owner: ComfyUI's other nodes run on its prompt thread (the thread of the prompt's
  event loop) meanwhile, and ComfyUI's model management (``load_models_gpu``, ``free_memory``) is not
  thread-safe and marks no model "in use": a sampler of an independent branch could move or free our
  network mid-forward. So the first time a run enters model management (``ModelCache.get`` calls
  ``host.claim_device``), ``_PromptThreadHold`` parks the prompt thread in a callback on its loop and
  keeps it there until the run ends: from our first ``load_models_gpu`` to the last map copied back,
  no other node runs. Before that point the prompt runs on: weight downloads, reading and building a
  network on the CPU, image preparation and every weight-free method overlap with other nodes (a cloud
  Detect keeps polling). Outside ComfyUI (CLI, tests) nothing is parked.
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


class _PromptThreadHold:
    """The worker's hold on ComfyUI's prompt thread: ``claim`` parks it, ``release`` lets it go.

    Parking is a callback on the prompt's event loop that waits for ``release``: while it waits, the
    loop (and so every other node of the prompt) is stopped. Release is idempotent and always called
    when the run ends, so a claim given up half way (interrupt) never leaves the loop parked.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parked = threading.Event()
        self._released = threading.Event()
        self._claimed = False

    def claim(self) -> None:
        if self._claimed:
            return
        self._claimed = True
        try:
            self._loop.call_soon_threadsafe(self._park)
        except RuntimeError:  # the loop is closed: its prompt is over
            raise host.Interrupted("the local run was abandoned: its prompt is over") from None
        while not self._parked.wait(0.05):  # the loop runs other callbacks first; Cancel still works
            host.throw_if_interrupted()

    def _park(self) -> None:
        self._parked.set()
        self._released.wait()

    def release(self) -> None:
        self._released.set()


async def run_off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on the local worker thread, awaited without blocking the loop
    (except while the run owns the device: see the module docstring)."""
    context = contextvars.copy_context()
    abandoned = threading.Event()
    context.run(host.set_abandon_event, abandoned)
    hold = _PromptThreadHold(asyncio.get_running_loop())
    if host.in_comfyui():
        context.run(host.set_device_claim, hold.claim)

    def call() -> T:
        try:
            return fn(*args, **kwargs)
        except host.Interrupted:
            if abandoned.is_set():  # nobody awaits the result any more: say where the run went
                log.info("Local run stopped: the prompt it belonged to was cancelled or failed")
            raise
        finally:
            hold.release()

    future = _worker().submit(context.run, call)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        abandoned.set()  # not-yet-started runs are dropped by the cancel; a running one stops at its next check
        raise
