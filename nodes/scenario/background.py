"""The pack's own event loop, in a daemon thread, where every Scenario request runs.

Why: ComfyUI runs each prompt in ``asyncio.run(...)``, which cancels whatever is left on its loop
when the prompt ends. A detect request still in flight when the user presses Cancel may create a
billed job a second later; following it to its answer (and cancelling that job) must outlive the
prompt. So the network side of a run lives here, and the caller's loop only awaits it
(:func:`run_here`). Work that must finish after the caller left (:func:`follow_up`) is kept here
and, at interpreter exit, waited for (bounded), so the CLI does not drop it either.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import logging
import threading
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger("scenario_detect.scenario")

T = TypeVar("T")

# How long the caller waits for the run's own clean-up (remote cancels) after it was cancelled.
CLEANUP_WAIT_S = 15.0
EXIT_WAIT_S = 70.0  # at exit: the longest a follow-up may still need (a detect request's timeout)

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_follow_ups: set[concurrent.futures.Future[Any]] = set()


def loop() -> asyncio.AbstractEventLoop:
    """The background loop, started on first use."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            new = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(new)
                new.call_soon(ready.set)
                new.run_forever()

            threading.Thread(target=serve, name="scenario-detect-io", daemon=True).start()
            ready.wait()
            _loop = new
        return _loop


def on_background_loop() -> bool:
    try:
        return asyncio.get_running_loop() is _loop
    except RuntimeError:
        return False


async def run_here(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` run on the background loop, with the caller's context variables (ComfyUI's
    executing node, for progress). Cancelling the caller cancels it there and waits (bounded) for
    its clean-up, so remote jobs are cancelled before the caller's loop may end."""
    if on_background_loop():
        return await coro
    bg = loop()
    context = contextvars.copy_context()
    started: concurrent.futures.Future[asyncio.Task[T]] = concurrent.futures.Future()
    finished: concurrent.futures.Future[T] = concurrent.futures.Future()

    def start() -> None:
        task = bg.create_task(coro, context=context)
        started.set_result(task)
        task.add_done_callback(lambda t: _copy_outcome(t, finished))

    bg.call_soon_threadsafe(start)
    try:
        return await asyncio.shield(asyncio.wrap_future(finished))
    except asyncio.CancelledError:
        task = started.result(timeout=CLEANUP_WAIT_S)
        bg.call_soon_threadsafe(task.cancel)
        await asyncio.wait([asyncio.wrap_future(finished)], timeout=CLEANUP_WAIT_S)
        raise


def _copy_outcome(task: asyncio.Task[Any], target: concurrent.futures.Future[Any]) -> None:
    if task.cancelled():
        target.set_exception(asyncio.CancelledError())
    elif task.exception() is not None:
        target.set_exception(task.exception())
    else:
        target.set_result(task.result())


def follow_up(coro: Awaitable[Any], what: str) -> concurrent.futures.Future[Any]:
    """Run ``coro`` on the background loop on its own: nobody awaits it, the loop keeps it alive,
    and the interpreter waits for it at exit. Its failures are logged, never raised."""

    async def guarded() -> Any:
        try:
            return await coro
        except BaseException as exc:  # noqa: BLE001 - a follow-up has nobody to raise to
            log.warning("Scenario %s failed: %s: %s", what, type(exc).__name__, exc)
            return None

    future = asyncio.run_coroutine_threadsafe(guarded(), loop())
    with _lock:
        _follow_ups.add(future)
    future.add_done_callback(_forget)
    return future


def _forget(future: concurrent.futures.Future[Any]) -> None:
    with _lock:
        _follow_ups.discard(future)


def pending_follow_ups() -> int:
    with _lock:
        return len(_follow_ups)


def wait_for_follow_ups(timeout: float = EXIT_WAIT_S) -> bool:
    """Block until every follow-up ended (True) or ``timeout`` passed (False)."""
    with _lock:
        pending = list(_follow_ups)
    if not pending:
        return True
    log.info("waiting for %d Scenario request(s) still in flight, to cancel the jobs they create", len(pending))
    _, not_done = concurrent.futures.wait(pending, timeout=timeout)
    return not not_done


atexit.register(wait_for_follow_ups)
