"""Money safety at the level of the batch, the cancel and the hand-off (issue 14): a failed batch
keeps what finished and the rerun pays only for the rest; a cancel is retried until Scenario
confirms it, or the message says which job may still run; every wait has a deadline."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scenario_support import assert_no_secret, fake_fixture, images, run

from scenario_detect.nodes import host
from scenario_detect.nodes.scenario import background, jobs
from scenario_detect.nodes.scenario.cache import ResultCache
from scenario_detect.nodes.scenario.errors import (
    ScenarioBatchError,
    ScenarioError,
    ScenarioJobFailed,
    ScenarioTimeout,
)

pytestmark = pytest.mark.timeout(90)

fake = fake_fixture()

DETECT = "/generate/detect$"
CANCEL = "/jobs/[^/]+/action$"


@pytest.fixture(autouse=True)
def _logs(caplog, fake):
    caplog.set_level(logging.DEBUG)
    yield
    assert_no_secret(caplog.text, fake)


# -- finished means kept ---------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [3, 1])
def test_a_failed_image_keeps_the_finished_maps_and_the_rerun_posts_only_the_rest(fake, tmp_path, concurrency):
    """The second job fails. With all three running, the other two finish and are cached; one at a
    time, image 3 is not started after the failure (image 2's). The rerun sends detect POSTs only
    for what did not finish."""
    cache = ResultCache(tmp_path)
    batch = images(3)
    fake.queue_outcome("success")
    fake.queue_outcome("failure", "Corrupted input", "")
    fake.queue_outcome("success")
    with pytest.raises(ScenarioBatchError) as info:
        run(fake, batch, use_cache=True, cache=cache, concurrency=concurrency)
    text = str(info.value)
    finished = 2 if concurrency == 3 else 1
    # Outcomes go to jobs in the order their POSTs arrive: with three at once, any image may be the one.
    failed = info.value.index
    assert f"failed on 1 of 3 image(s): image {failed + 1} of 3:" in text and "Corrupted input" in text
    assert concurrency == 3 or failed == 1
    assert f"{finished} finished map(s) were kept" in text
    assert f"Spent so far: {finished * 2:g} CU for {finished} finished job(s); 1 unfinished job(s) quoted 2 CU" in text
    first_posts = len(fake.requests_to("POST", DETECT))
    assert first_posts == finished + 1
    result = run(fake, batch, use_cache=True, cache=cache, concurrency=concurrency)
    assert len(fake.requests_to("POST", DETECT)) - first_posts == 3 - finished
    assert result.stats["cache_hits"] == finished and result.images.shape == (3, 48, 80, 3)
    assert_no_secret(text, fake)


def test_without_the_cache_the_error_says_the_maps_were_not_kept(fake):
    fake.queue_outcome("failure", "Corrupted input", "")
    with pytest.raises(ScenarioBatchError) as info:
        run(fake, images(2), concurrency=2)
    assert "1 map(s) finished but were not kept" in str(info.value)


def test_a_single_failed_image_says_what_it_cost(fake):
    fake.queue_outcome("failure", "Corrupted input", "")
    with pytest.raises(ScenarioJobFailed) as info:
        run(fake)
    assert "Corrupted input" in str(info.value)
    assert "Spent so far: 1 unfinished job(s) quoted 2 CU (Scenario may bill them)." in str(info.value)


# -- a cancel is a promise kept or a truthful warning ----------------------------------------------


def test_a_cancel_refused_by_502_then_429_is_retried_until_confirmed(fake):
    """Without the retry the first 502 ends the cancel and the job keeps running (and billing)."""
    fake.queue_outcome("stuck")
    fake.add_fault("POST", CANCEL, 502, body={"message": "Bad gateway"})
    fake.add_fault("POST", CANCEL, 429, headers={"Retry-After": "0.2"}, body={"reason": "cooldown"})
    with pytest.raises(ScenarioTimeout) as info:
        run(fake, timeout_s=0.6)
    [job] = fake.billed_jobs
    assert fake.canceled_jobs() == [job.id]
    assert len(fake.requests_to("POST", CANCEL)) == 3
    assert f"job {job.id} was canceled (confirmed by Scenario)" in str(info.value)


def test_a_cancel_that_breaks_the_connection_is_retried(fake):
    fake.job_seconds = 60
    fake.add_fault("POST", CANCEL, action="reset")

    with pytest.raises(host.Interrupted) as info:
        run(fake, check_interrupt=lambda: len(fake.billed_jobs) == 1)
    [job] = fake.billed_jobs
    assert fake.canceled_jobs() == [job.id] and len(fake.requests_to("POST", CANCEL)) == 2
    assert f"job {job.id} was canceled (confirmed by Scenario)" in str(info.value)
    assert "Spent so far: 1 unfinished job(s) quoted 2 CU" in str(info.value)


def test_a_cancel_never_confirmed_names_the_job_that_may_still_run(fake, monkeypatch):
    monkeypatch.setattr(jobs, "CANCEL_RETRY_S", 1.0)  # the production bound is 30 s
    fake.queue_outcome("stuck")
    fake.add_fault("POST", CANCEL, 503, times=1000)
    with pytest.raises(ScenarioTimeout) as info:
        run(fake, timeout_s=0.5)
    [job] = fake.billed_jobs
    assert fake.canceled_jobs() == []
    assert len(fake.requests_to("POST", CANCEL)) >= 2
    text = str(info.value)
    assert f"job {job.id} MAY STILL BE RUNNING" in text and "app.scenario.com" in text
    assert "was canceled" not in text


def test_a_cancel_refused_for_good_is_not_repeated(fake):
    """A 404 says the same every time: one request, then the job's status is read once."""
    fake.queue_outcome("stuck")
    fake.add_fault("POST", CANCEL, 404, body={"reason": "Job not found"})
    with pytest.raises(ScenarioTimeout) as info:
        run(fake, timeout_s=0.5)
    assert len(fake.requests_to("POST", CANCEL)) == 1
    assert "MAY STILL BE RUNNING" in str(info.value) and "Job not found" in str(info.value)


# -- every wait has a deadline ---------------------------------------------------------------------


def test_the_estimate_stops_at_cancel(fake):
    held = fake.hold("POST", DETECT)
    try:
        with pytest.raises(host.Interrupted):
            run(fake, dry_run=True, check_interrupt=held.reached.is_set, timeout_s=60)
    finally:
        held.release()
    assert fake.billed_jobs == []


def test_the_estimate_honours_timeout_s(fake):
    held = fake.hold("POST", DETECT)
    try:
        with pytest.raises(ScenarioTimeout) as info:
            run(fake, dry_run=True, timeout_s=0.5)
    finally:
        held.release()
    assert "timeout_s (0.5 s)" in str(info.value) and "nothing was run" in str(info.value)


def test_a_hand_off_past_its_deadline_is_stopped_and_said():
    stopped = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.append(True)
            raise

    with pytest.raises(ScenarioTimeout, match="deadline"):
        asyncio.run(background.run_here(forever(), deadline_s=0.2))
    assert stopped == [True]


def test_a_failure_to_start_work_on_the_loop_reaches_the_caller():
    """Before, asyncio only logged it and the caller waited forever (Python 3.10's create_task)."""

    class NotACoroutine:
        def close(self) -> None:
            pass

    with pytest.raises(ScenarioError, match="could not start"):
        asyncio.run(background.run_here(NotACoroutine(), deadline_s=30))  # type: ignore[arg-type]


# -- Python 3.10 ------------------------------------------------------------------------------------


def _interpreters() -> list[str]:
    """This one, plus any named in SCENARIO_DETECT_SMOKE_PYTHONS (e.g. a 3.10 venv with httpx, numpy
    and Pillow: the smoke needs no torch)."""
    extra = [p for p in os.environ.get("SCENARIO_DETECT_SMOKE_PYTHONS", "").split(os.pathsep) if p]
    return [sys.executable, *extra]


@pytest.mark.parametrize("python", _interpreters())
def test_the_cloud_core_runs_on_each_interpreter(python, tmp_path):
    """Job, timeout, cancel retry and estimate through the pack's loop, in a fresh process: on
    Python 3.10 this hung before (asyncio.timeout, create_task(context=))."""
    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "scenario_detect").symlink_to(repo)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(repo / "tests")])}
    done = subprocess.run(
        [python, str(repo / "tests" / "scenario_cloud_smoke.py")], env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert done.returncode == 0 and ": 4 passed, 0 failed" in done.stdout, done.stdout + done.stderr[-3000:]


def test_cancel_between_two_tries_of_the_detect_post_stops_it_with_no_job(fake, caplog):
    """Cancel while the detect POST waits out a 429: nothing is in flight, so no job can exist; the
    POST is stopped there (no follow-up kept, never tried again). The job's exit's between-tries branch."""
    fake.add_fault("POST", DETECT, 429, headers={"Retry-After": "4"}, body={"reason": "cooldown"})

    def refused() -> bool:
        return any(r.status == 429 for r in fake.requests_to("POST", DETECT))

    with pytest.raises(host.Interrupted) as info:
        run(fake, check_interrupt=refused)
    assert background.pending_follow_ups() == 0  # nothing left that could send the POST again
    assert "stopped between tries" in caplog.text and "Nothing was spent: no job was created." in str(info.value)
    assert len(fake.requests_to("POST", DETECT)) == 1 and fake.billed_jobs == []
