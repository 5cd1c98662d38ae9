"""The pack runs on its declared floor, Python 3.10: no 3.11+ API without a guard (tests/python_floor.py).

The smoke runs (.ci/smoke) run it on 3.10, 3.12 and 3.13 for real; this scan names a 3.11-only call before that,
in the lint step of .ci/run too.
"""

from __future__ import annotations

import textwrap

import python_floor


def _apis(source: str) -> list[str]:
    return [f.api for f in python_floor.scan_source(textwrap.dedent(source))]


def test_no_api_newer_than_the_floor() -> None:
    findings = [str(f) for f in python_floor.scan()]
    assert findings == [], "3.11+ APIs without a fallback:\n" + "\n".join(findings)


def test_scan_flags_each_kind_of_newer_api() -> None:
    source = """
        import asyncio, tomllib
        import asyncio as aio
        from typing import Self
        from enum import StrEnum
        async def f(loop, coro, ctx):
            async with asyncio.timeout(3):
                pass
            async with aio.TaskGroup() as group:
                group.create_task(coro)
            loop.create_task(coro, context=ctx)
            raise ExceptionGroup("x", [])
    """
    assert _apis(source) == [
        "import tomllib",
        "typing.Self",
        "enum.StrEnum",
        "asyncio.timeout",
        "asyncio.TaskGroup",
        "create_task(context=...)",
        "ExceptionGroup",
    ]


def test_scan_accepts_guarded_uses_and_310_apis() -> None:
    source = """
        import asyncio, sys
        try:
            import tomllib
        except ModuleNotFoundError:
            tomllib = None
        if sys.version_info >= (3, 11):
            timeout = asyncio.timeout
        else:
            timeout = None
        if hasattr(asyncio, "TaskGroup"):
            group = asyncio.TaskGroup()
        async def f(loop, coro):
            loop.create_task(coro)
            await asyncio.wait_for(coro, 3)
            await asyncio.to_thread(print)
    """
    assert _apis(source) == []
