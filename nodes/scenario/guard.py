"""The test harness's guard: when ``SCENARIO_DETECT_TEST_GUARD`` names a file, both HTTP clients
refuse (before connecting) and record there any request to a host that is not loopback."""

from __future__ import annotations

import os
from typing import Any

from .errors import ScenarioUnreachable
from .urls import is_loopback_host

GUARD_ENV = "SCENARIO_DETECT_TEST_GUARD"


class TestGuardBlocked(ScenarioUnreachable):
    """The test harness's guard refused a request to a non-loopback host (nothing was sent)."""

    __test__ = False  # not a pytest test class, whatever its name


async def refuse_remote_hosts(request: Any) -> None:
    """httpx request hook: under the test harness, refuse (and record) a non-loopback host."""
    record = os.environ.get(GUARD_ENV)
    if not record or is_loopback_host(request.url.host):
        return
    line = f"{request.method} {request.url.scheme}://{request.url.host}{request.url.path}"
    try:
        with open(record, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {line}\n")
    except OSError:
        pass  # the refusal below still stops the request
    raise TestGuardBlocked(
        f"test guard: refused {request.method} to {request.url.host}, which is not this machine; tests must "
        f"never reach the real Scenario API ({GUARD_ENV} is set)."
    )
