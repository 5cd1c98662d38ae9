"""nodes/local_thread.py: local runs on one worker thread, awaited without blocking the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from scenario_detect.nodes import host
from scenario_detect.nodes.local_thread import run_off_loop

NODE = contextvars.ContextVar("node", default=None)


def test_the_loop_runs_other_tasks_while_the_work_blocks() -> None:
    loop_ticked = threading.Event()

    def work() -> str:
        # Only a free event loop can set this: a blocked one would leave the wait to time out.
        return "free" if loop_ticked.wait(timeout=30) else "blocked"

    async def main() -> str:
        job = asyncio.ensure_future(run_off_loop(work))
        await asyncio.sleep(0)
        loop_ticked.set()
        return await job

    assert asyncio.run(main()) == "free"


def test_the_work_sees_the_callers_context_and_runs_on_another_thread() -> None:
    def work() -> tuple[str | None, int]:
        return NODE.get(), threading.get_ident()

    async def main() -> tuple[str | None, int]:
        NODE.set("node-7")  # as ComfyUI's CurrentNodeContext does inside the node's task
        return await run_off_loop(work)

    node, thread = asyncio.run(main())
    assert node == "node-7" and thread != threading.get_ident()


def test_errors_reach_the_caller() -> None:
    def work() -> None:
        raise ValueError("bad input, named")

    with pytest.raises(ValueError, match="bad input, named"):
        asyncio.run(run_off_loop(work))


def test_runs_go_one_at_a_time_on_one_thread() -> None:
    log: list[tuple[str, str, int]] = []
    first_started = threading.Event()
    release_first = threading.Event()

    def work(name: str) -> None:
        log.append(("start", name, threading.get_ident()))
        if name == "first":
            first_started.set()
            release_first.wait(timeout=30)
        log.append(("end", name, threading.get_ident()))

    async def main() -> None:
        first = asyncio.ensure_future(run_off_loop(work, "first"))
        await asyncio.to_thread(first_started.wait, 30)
        second = asyncio.ensure_future(run_off_loop(work, "second"))
        await asyncio.sleep(0)
        release_first.set()
        await asyncio.gather(first, second)

    asyncio.run(main())
    assert [(event, name) for event, name, _ in log] == [
        ("start", "first"), ("end", "first"), ("start", "second"), ("end", "second")
    ]
    assert len({thread for *_, thread in log}) == 1


def test_a_cancelled_caller_stops_the_run_at_its_next_check() -> None:
    started, go = threading.Event(), threading.Event()
    outcome: list[str] = []

    def work() -> None:
        started.set()
        go.wait(timeout=30)
        try:
            host.throw_if_interrupted()  # what run_chunks and downloads call between chunks
            outcome.append("ran on")
        except host.Interrupted:
            outcome.append("stopped")
            raise

    async def main() -> None:
        job = asyncio.ensure_future(run_off_loop(work))
        await asyncio.to_thread(started.wait, 30)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

    asyncio.run(main())
    go.set()
    # The run finishes on the worker; the next run on the same worker waits for it.
    asyncio.run(run_off_loop(lambda: None))
    assert outcome == ["stopped"]
    host.throw_if_interrupted()  # the caller's own context was never marked


def test_a_device_claim_holds_the_loop_until_the_run_ends() -> None:
    """What ``ModelCache.get`` does inside ComfyUI (``host.claim_device``): from the claim to the end of
    the run, no other task of the loop (another node of the prompt) runs; before and after, they do."""
    from scenario_detect.nodes.local_thread import _PromptThreadHold

    state = {"claimed": False, "ticks_while_claimed": 0, "ticks": 0}
    before_claim = threading.Event()

    def work(hold: _PromptThreadHold) -> int:
        before_claim.wait(timeout=30)  # the ticker ran while the run had not claimed yet
        hold.claim()
        state["claimed"] = True
        total = sum(sum(range(2000)) for _ in range(2000))  # CPU work while owning the device
        state["claimed"] = False
        hold.release()
        return total

    async def ticker(done: asyncio.Future) -> None:
        while not done.done():
            state["ticks"] += 1
            state["ticks_while_claimed"] += state["claimed"]
            before_claim.set()
            await asyncio.sleep(0)

    async def main() -> None:
        hold = _PromptThreadHold(asyncio.get_running_loop())
        job = asyncio.ensure_future(asyncio.to_thread(work, hold))
        await asyncio.gather(job, ticker(job))

    asyncio.run(main())
    assert state["ticks"] > 1
    assert state["ticks_while_claimed"] == 0


def test_an_abandoned_run_gives_up_its_claim_and_leaves_the_loop_free() -> None:
    """The node task was cancelled while the run waited for the loop: the run stops, and the parking
    callback still queued on the loop returns at once instead of blocking the next prompt."""
    from scenario_detect.nodes.local_thread import _PromptThreadHold

    async def main() -> list[str]:
        hold = _PromptThreadHold(asyncio.get_running_loop())
        abandoned, finished = threading.Event(), threading.Event()
        abandoned.set()
        outcome: list[str] = []

        def work() -> None:
            host.set_abandon_event(abandoned)
            try:
                hold.claim()
                outcome.append("claimed")
            except host.Interrupted:
                outcome.append("gave up")
            finally:
                hold.release()
                finished.set()

        thread = threading.Thread(target=work)
        thread.start()
        finished.wait(timeout=60)  # keeps the loop busy: the parking callback cannot run before the run ends
        thread.join()
        await asyncio.sleep(0)  # now it runs, and must not park the loop for good
        outcome.append("loop free")
        return outcome

    assert asyncio.run(main()) == ["gave up", "loop free"]
