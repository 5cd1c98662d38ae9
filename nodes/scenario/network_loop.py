"""The pack's own event loop, in a daemon thread, where every Scenario request runs.

Why: ComfyUI runs each prompt in ``asyncio.run(...)``, which cancels what is left on its loop when
the prompt ends, while a detect request in flight at Cancel may still create a billed job that must
be followed and cancelled. The caller's loop only awaits the work here (:func:`run_here`, always
with a deadline); :func:`follow_up` keeps work that outlives its caller. At SIGTERM and interpreter
exit :func:`stop_everything` cancels every run here (each job's owner cancels its remote job) and
waits, bounded; the host's own SIGTERM handling then goes on (:func:`install_process_stop` chains it).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from .errors import ScenarioError, ScenarioTimeout

log = logging.getLogger("scenario_detect.scenario")

T = TypeVar("T")

CLEANUP_WAIT_S = 15.0  # how long a cancelled caller waits for the run's clean-up (remote cancels)
EXIT_WAIT_S = 70.0  # at a normal exit: the longest a follow-up may still need (a detect request's timeout)
SIGTERM_WAIT_S = 8.0  # the whole stop at SIGTERM, within `docker stop`'s 10 s grace before SIGKILL
START_WAIT_S = 10.0  # the loop's thread must be serving within this (it is, in milliseconds)

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_follow_ups: set[concurrent.futures.Future[Any]] = set()
_runs: set[asyncio.Task[Any]] = set()  # run_here's tasks, touched on the loop's thread only
_stop_installed = False


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
            if not ready.wait(START_WAIT_S):
                raise ScenarioError(
                    f"the Scenario network loop did not start within {START_WAIT_S:g} s; nothing was sent. "
                    "Restart ComfyUI (or the command); if it persists, report it as a bug."
                )
            _loop = new
        return _loop


def on_background_loop() -> bool:
    try:
        return asyncio.get_running_loop() is _loop
    except RuntimeError:
        return False


def create_task(
    coro: Coroutine[Any, Any, T], context: contextvars.Context | None = None
) -> asyncio.Task[T]:
    """``create_task(coro, context=context)`` on the running loop; on Python 3.10 (no ``context=``)
    the task is created inside ``context``, so it starts from a copy of it."""
    running = asyncio.get_running_loop()
    if context is None:
        return running.create_task(coro)
    if sys.version_info >= (3, 11):
        return running.create_task(coro, context=context)
    return context.run(running.create_task, coro)


async def run_here(coro: Coroutine[Any, Any, T], *, deadline_s: float, what: str = "the Scenario run") -> T:
    """Await ``coro`` run on the background loop with the caller's context variables (ComfyUI's
    executing node), for at most ``deadline_s`` (then :class:`ScenarioTimeout`). A cancelled caller or
    the deadline cancels it there and waits (bounded) for its clean-up (remote cancels); a failure
    to even start it is raised as a :class:`ScenarioError`."""
    if on_background_loop():
        try:
            return await asyncio.wait_for(coro, deadline_s)
        except asyncio.TimeoutError:
            raise ScenarioTimeout(f"{what} did not end within its deadline ({deadline_s:g} s).") from None
    bg = loop()
    context = contextvars.copy_context()
    finished: concurrent.futures.Future[T] = concurrent.futures.Future()
    holder: list[asyncio.Task[T]] = []

    def start() -> None:
        try:
            task = create_task(coro, context)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, never left to asyncio's log
            coro.close()
            finished.set_exception(ScenarioError(f"{what} could not start: {type(exc).__name__}: {exc}"))
            return
        holder.append(task)
        _runs.add(task)
        task.add_done_callback(_runs.discard)
        task.add_done_callback(lambda t: _copy_outcome(t, finished))

    def cancel() -> None:  # queued after start(), so the task exists unless start failed
        for task in holder:
            task.cancel()

    try:
        bg.call_soon_threadsafe(start)
    except RuntimeError as exc:  # the loop was closed under us
        coro.close()
        raise ScenarioError(f"{what} could not start: the Scenario network loop is closed ({exc})") from None
    waiter = asyncio.wrap_future(finished)
    waiter.add_done_callback(_retrieve)  # an outcome that comes after the caller left is not "never retrieved"
    try:
        return await asyncio.wait_for(asyncio.shield(waiter), deadline_s)
    except (asyncio.CancelledError, asyncio.TimeoutError) as exc:
        bg.call_soon_threadsafe(cancel)
        await asyncio.wait([waiter], timeout=CLEANUP_WAIT_S)
        if waiter.done() and not waiter.cancelled():
            waiter.exception()  # retrieved: the caller's own exception is what matters now
        if isinstance(exc, asyncio.TimeoutError):
            raise ScenarioTimeout(
                f"{what} did not end within its deadline ({deadline_s:g} s) and was stopped; its remote "
                "jobs were sent a cancel. Raise timeout_s or lower the batch size."
            ) from None
        raise


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _copy_outcome(task: asyncio.Task[Any], target: concurrent.futures.Future[Any]) -> None:
    if task.cancelled():
        target.set_exception(asyncio.CancelledError())
    elif task.exception() is not None:
        target.set_exception(task.exception())
    else:
        target.set_result(task.result())


def follow_up(coro: Awaitable[Any], what: str) -> concurrent.futures.Future[Any]:
    """Run ``coro`` on the background loop unawaited (waited for at exit); failures are logged."""

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


# -- the process stops ------------------------------------------------------------------------------


async def _cancel_runs(timeout: float) -> int:
    """Cancel every run here (each job's owner then cancels its remote job) and wait for them."""
    runs = [t for t in _runs if not t.done()]
    for task in runs:
        task.cancel()
    if runs:
        await asyncio.wait(runs, timeout=timeout)
    return len(runs)


def stop_everything(timeout: float = EXIT_WAIT_S) -> bool:
    """Cancel every run here and wait (at most ``timeout`` in all) for their remote cancels and the
    follow-ups; True when all ended."""
    bg = _loop
    if bg is None or bg.is_closed() or not bg.is_running() or on_background_loop():
        return True
    end = time.monotonic() + timeout
    future = asyncio.run_coroutine_threadsafe(_cancel_runs(timeout), bg)
    try:
        stopped = future.result(timeout)
    except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
        stopped = -1
    if stopped:
        shown = stopped if stopped > 0 else "some"
        log.warning("process stopping: %s Scenario run(s) were stopped and their jobs sent a cancel", shown)
    return wait_for_follow_ups(max(0.0, end - time.monotonic())) and stopped >= 0


def _on_sigterm(previous: Any) -> Callable[[int, Any], None]:
    """End our jobs, then go on with what the host had: its handler, or the default (end the process)."""

    def handler(signum: int, frame: Any) -> None:
        try:
            stop_everything(SIGTERM_WAIT_S)
        finally:
            if callable(previous):
                previous(signum, frame)
            elif previous in (signal.SIG_DFL, None):
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            # SIG_IGN: the host ignores it, so do we

    return handler


def install_process_stop() -> bool:
    """Make SIGTERM end our jobs first, then run the previous handler. Only from the main thread (the
    pack's load in ComfyUI, the CLI); True when installed."""
    global _stop_installed
    if _stop_installed:
        return True
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return False
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        return False  # the host chose to survive SIGTERM: nothing stops, nothing to cancel
    try:
        signal.signal(signal.SIGTERM, _on_sigterm(previous))
    except (ValueError, OSError):  # not the main interpreter, or a platform without it
        return False
    _stop_installed = True
    return True


atexit.register(stop_everything)
