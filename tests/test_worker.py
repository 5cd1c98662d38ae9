"""nodes/worker.py: local runs on one worker thread, awaited without blocking the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from scenario_detect.nodes import host
from scenario_detect.nodes.worker import run_off_loop

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
