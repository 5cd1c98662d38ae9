"""The cloud backend's network core on any Python, without torch or OpenCV: one job through the
pack's own loop to its result bytes, a stuck job timed out and its cancel retried until confirmed,
and an estimate. For the interpreters the test venv does not cover (Python 3.10's asyncio has no
``timeout`` and no ``create_task(context=)``):

    python -m venv /tmp/py310 && /tmp/py310/bin/pip install httpx numpy pillow
    PYTHONPATH=<folder holding the pack as scenario_detect>:tests /tmp/py310/bin/python tests/scenario_cloud_smoke.py

Prints one line per check and ``cloud smoke: N passed, 0 failed``; exits 1 on any failure.
"""

from __future__ import annotations

import asyncio
import base64
import sys

from fake_scenario import FakeScenario

from scenario_detect.nodes.scenario import network_loop
from scenario_detect.nodes.scenario.client import RetryPolicy, ScenarioClient
from scenario_detect.nodes.scenario.credentials import Credentials
from scenario_detect.nodes.scenario.errors import ScenarioTimeout
from scenario_detect.nodes.scenario.jobs import PollSchedule, Session, estimate, run_job

POLICY = RetryPolicy(backoff_base_s=0.01, backoff_max_s=0.05, connect_timeout_s=1.0, read_timeout_s=2.0)
POLLS = PollSchedule(first_s=0.03, steady_until_s=0.3, max_s=0.2)
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
    "53de0000000c4944415408d763f8ffff3f0005fe02fea7d6a4f60000000049454e44ae426082"
)


async def one_job(fake: FakeScenario, timeout_s: float) -> tuple[bytes | None, str, Session]:
    creds = Credentials(fake.key, fake.secret, fake.base_url, "smoke")
    session = Session(ScenarioClient(creds, POLICY))
    body = {"image": "data:image/png;base64," + base64.b64encode(PNG_1PX).decode(), "modality": "canny"}

    async def go() -> bytes:
        async with session:
            outcome = await run_job(session, body, {}, timeout_s=timeout_s, validate=bytes, schedule=POLLS)
            return outcome.content

    try:
        return await network_loop.run_here(go(), deadline_s=timeout_s + 60), "", session
    except ScenarioTimeout as exc:
        return None, str(exc), session


async def one_estimate(fake: FakeScenario) -> float:
    creds = Credentials(fake.key, fake.secret, fake.base_url, "smoke")

    async def go() -> float:
        async with ScenarioClient(creds, POLICY) as client:
            return await estimate(client, {"image": "data:image/png;base64,", "modality": "canny"}, {})

    return await network_loop.run_here(go(), deadline_s=30)


def main() -> int:
    results: list[tuple[str, bool]] = []
    with FakeScenario(job_seconds=0.15) as fake:
        fake.result_png = PNG_1PX  # the fake's own maps need OpenCV
        content, _, _ = asyncio.run(one_job(fake, 20))
        results.append(("a job runs to its result bytes", bool(content) and content.startswith(b"\x89PNG")))
        fake.queue_outcome("stuck")
        fake.add_fault("POST", "/jobs/[^/]+/action$", 502)
        fake.add_fault("POST", "/jobs/[^/]+/action$", 429, headers={"Retry-After": "0.2"})
        _, message, _ = asyncio.run(one_job(fake, 0.6))
        stuck = fake.billed_jobs[-1].id
        results.append(("a stuck job times out", "timeout_s (0.6 s" in message))
        results.append(("its cancel is retried until confirmed", fake.canceled_jobs() == [stuck]
                        and "canceled (confirmed by Scenario)" in message))
        fake.add_fault("POST", "/generate/detect$", 400, body={"reason": "no image"})  # the empty data URL
        try:
            asyncio.run(one_estimate(fake))
            results.append(("an estimate's error reaches the caller", False))
        except Exception as exc:  # noqa: BLE001 - any pack error is the expected outcome here
            results.append(("an estimate's error reaches the caller", "no image" in str(exc)))
    for name, ok in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    failed = sum(1 for _, ok in results if not ok)
    print(f"cloud smoke ({sys.version.split()[0]}): {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
