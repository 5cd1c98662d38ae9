"""Helpers shared by the Scenario backend tests (not a conftest: the harness owns that)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from fake_scenario import FakeScenario

from scenario_detect.nodes.scenario.backend import ScenarioResult, run_scenario
from scenario_detect.nodes.scenario.client import RetryPolicy
from scenario_detect.nodes.scenario.credentials import Credentials
from scenario_detect.nodes.scenario.jobs import PollSchedule

# Short waits so fault tests take milliseconds, not the production seconds.
FAST_POLICY = dict(
    backoff_base_s=0.01, backoff_max_s=0.05, rate_limit_cap_s=5.0, connect_timeout_s=1.0, read_timeout_s=2.0
)
FAST_POLLS = PollSchedule(first_s=0.03, steady_until_s=0.3, growth=1.5, max_s=0.2)

FORBIDDEN = ("Authorization", "Signature", "X-Amz", "Basic ")


def fake_fixture(job_seconds: float = 0.15) -> Any:
    """The one ``fake`` fixture of the in-process tests: ``fake = fake_fixture(0.1)`` in a test
    module gives its tests a fresh fake Scenario server each (a test may change ``job_seconds``)."""

    @pytest.fixture()
    def fake() -> Iterator[FakeScenario]:
        with FakeScenario(job_seconds=job_seconds) as server:
            yield server

    return fake


def secret_free_logs_fixture() -> Any:
    """``_logs = secret_free_logs_fixture()`` in a test module: every test logs at DEBUG and its log must
    hold no key, secret or Authorization value of the fake (checked after the test)."""

    @pytest.fixture(autouse=True)
    def _logs(caplog: pytest.LogCaptureFixture, fake: FakeScenario) -> Iterator[None]:
        caplog.set_level(logging.DEBUG)
        yield
        assert_no_secret(caplog.text, fake)

    return _logs


def creds(fake: FakeScenario) -> Credentials:
    return Credentials(fake.key, fake.secret, fake.base_url, "test environment")


def images(batch: int = 1, height: int = 48, width: int = 80, seed: int = 0) -> torch.Tensor:
    """Distinct images (each a different brightness ramp plus noise), so outputs can be matched."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, width).view(1, 1, width, 1).expand(batch, height, width, 3)
    offsets = torch.linspace(0.0, 0.6, batch).view(batch, 1, 1, 1)
    noise = torch.rand(batch, height, width, 3, generator=g) * 0.1
    return ((ramp * 0.3 + offsets + noise).clamp(0, 1)).contiguous()


def run(
    fake: FakeScenario,
    imgs: torch.Tensor | None = None,
    modality: str = "canny",
    params: dict[str, Any] | None = None,
    **kwargs: Any,
) -> ScenarioResult:
    kwargs.setdefault("use_cache", False)
    kwargs.setdefault("credentials", creds(fake))
    kwargs.setdefault("policy", RetryPolicy(**FAST_POLICY))
    kwargs.setdefault("poll_schedule", FAST_POLLS)
    kwargs.setdefault("timeout_s", 20)
    return asyncio.run(run_scenario(images() if imgs is None else imgs, modality, params or {}, **kwargs))


def assert_no_secret(text: str, fake: FakeScenario) -> None:
    for needle in (fake.key, fake.secret, *FORBIDDEN):
        assert needle not in text, f"{needle!r} leaked into: {text[:500]}"
