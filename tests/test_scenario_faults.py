"""Client policy against the fake over real loopback HTTP: every fault ends in a correct result or a
clear error, never a hang and never a second billed job; no secret in any message or log line."""

from __future__ import annotations

import socket
import time

import pytest
from scenario_support import assert_no_secret, creds, fake_fixture, images, run, secret_free_logs_fixture

from scenario_detect.nodes.scenario.credentials import Credentials
from scenario_detect.nodes.scenario.errors import (
    ScenarioAuthError,
    ScenarioBadResponse,
    ScenarioBatchError,
    ScenarioJobFailed,
    ScenarioMaybeSent,
    ScenarioRateLimited,
    ScenarioRequestError,
    ScenarioServerError,
    ScenarioTimeout,
    ScenarioUnreachable,
)

pytestmark = pytest.mark.timeout(60)

fake = fake_fixture()


_logs = secret_free_logs_fixture()


def _fails(fake, exc_type, **kwargs):
    with pytest.raises(exc_type) as info:
        run(fake, **kwargs)
    assert_no_secret(str(info.value), fake)
    return info.value


# -- auth and request errors ---------------------------------------------------------------------


def test_wrong_secret_is_401_that_says_where_keys_come_from(fake):
    bad = Credentials(fake.key, "not-the-secret-123", fake.base_url, "environment (SCENARIO_API_KEY/...)")
    err = _fails(fake, ScenarioAuthError, credentials=bad)
    assert "401" in str(err) and "environment (SCENARIO_API_KEY" in str(err)
    assert "not-the-secret-123" not in str(err)
    assert len(fake.billed_jobs) == 0


def test_403_from_api_is_an_auth_error_with_the_api_message(fake):
    fake.add_fault("POST", "/generate/detect", 403, body={"message": "Team has no access to detect"})
    err = _fails(fake, ScenarioAuthError)
    assert "403" in str(err) and "Team has no access to detect" in str(err)


def test_400_carries_the_api_reason(fake):
    fake.add_fault("POST", "/generate/detect", 400, body={"reason": "image is too small", "trace_id": "t1"})
    err = _fails(fake, ScenarioRequestError)
    assert "image is too small" in str(err)


def test_422_and_413_are_request_errors(fake):
    fake.add_fault("POST", "/generate/detect", 422, body={"reason": "bad modality options"})
    assert "bad modality options" in str(_fails(fake, ScenarioRequestError))
    fake.add_fault("POST", "/generate/detect", 413, body={"message": "Request Entity Too Large"})
    assert "too large" in str(_fails(fake, ScenarioRequestError)).lower()


def test_unknown_asset_id_is_a_clear_400(fake):
    err = _fails(fake, ScenarioRequestError, asset_ids=["asset_doesnotexist"])
    assert "asset_doesnotexist not found" in str(err)


# -- 429 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, body",
    [
        ({"Retry-After": "1"}, {"reason": "cooldown"}),
        ({}, {"reason": "cooldown", "remainingSeconds": 0.4}),
        ({}, {"reason": "concurrency", "details": {"limit": "jobs"}}),
    ],
    ids=["retry-after", "remainingSeconds", "neither"],
)
def test_429_waits_then_retries_and_bills_once(fake, headers, body):
    fake.add_fault("POST", "/generate/detect", 429, headers=headers, body=body)
    started = time.monotonic()
    result = run(fake)
    elapsed = time.monotonic() - started
    assert result.images.shape == (1, 48, 80, 3)
    assert len(fake.requests_to("POST", "/generate/detect")) == 2
    assert len(fake.billed_jobs) == 1
    if "Retry-After" in headers:
        assert elapsed >= 1.0
    elif "remainingSeconds" in body:
        assert elapsed >= 0.4


def test_429_asking_longer_than_the_cap_fails_fast(fake):
    fake.add_fault("POST", "/generate/detect", 429, body={"reason": "cooldown", "remainingSeconds": 3600})
    err = _fails(fake, ScenarioRateLimited)
    assert "3600" in str(err)
    assert len(fake.requests_to("POST", "/generate/detect")) == 1  # not waited out, not retried


def test_429_on_get_is_waited_out(fake):
    fake.add_fault("GET", "/jobs/", 429, headers={"Retry-After": "0"}, times=2)
    run(fake)
    assert len(fake.billed_jobs) == 1


# -- POST that may have reached the server: never retried ----------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_on_detect_is_never_retried(fake, status):
    fake.add_fault("POST", "/generate/detect", status, body={"message": "upstream"}, create_job=True)
    err = _fails(fake, ScenarioMaybeSent)
    assert "NOT retried" in str(err) and str(status) in str(err)
    assert len(fake.requests_to("POST", "/generate/detect")) == 1
    assert len(fake.billed_jobs) == 1  # the one the server made; we did not make a second


def test_connection_dropped_after_sending_is_never_retried(fake):
    fake.add_fault("POST", "/generate/detect", action="drop", create_job=True)
    err = _fails(fake, ScenarioMaybeSent)
    assert "NOT retried" in str(err)
    assert len(fake.requests_to("POST", "/generate/detect")) == 1


def test_read_timeout_after_sending_is_never_retried(fake):
    from scenario_detect.nodes.scenario.client import RetryPolicy

    fake.add_fault("POST", "/generate/detect", action="delay", delay_s=1.5, create_job=True)
    policy = RetryPolicy(backoff_base_s=0.01, read_timeout_s=0.5, connect_timeout_s=0.5)
    err = _fails(fake, ScenarioMaybeSent, policy=policy)
    assert "NOT retried" in str(err)
    assert len(fake.requests_to("POST", "/generate/detect")) == 1


def test_unreachable_api_is_clear_and_quick(fake):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = Credentials(fake.key, fake.secret, f"http://127.0.0.1:{port}/v1", "test")
    err = _fails(fake, ScenarioUnreachable, credentials=dead)
    assert f"127.0.0.1:{port}" in str(err)


def test_html_instead_of_json_names_the_base_url(fake):
    fake.add_fault("POST", "/generate/detect", 200, action="html")
    err = _fails(fake, ScenarioBadResponse)
    assert "HTML" in str(err) and "SCENARIO_BASE_URL" in str(err)


# -- GETs retry ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_on_job_poll_is_retried(fake, status):
    fake.add_fault("GET", "/jobs/", status, times=2)
    result = run(fake)
    assert result.cost_units == fake.cost_per_job
    assert len(fake.billed_jobs) == 1


def test_html_502_on_asset_get_is_retried(fake):
    fake.add_fault("GET", "/assets/", 502, action="html", times=2)
    run(fake)


def test_polls_failing_for_good_give_up_and_cancel_the_job(fake):
    fake.job_seconds = 30
    fake.add_fault("GET", "/jobs/", 503, times=100)
    err = _fails(fake, ScenarioServerError)
    assert "503" in str(err)
    assert fake.canceled_jobs() == [fake.billed_jobs[0].id]


@pytest.mark.parametrize("action", ["reset", "drop", "bad_encoding"])
@pytest.mark.parametrize("step, path", [("poll", "/v1/jobs/"), ("asset", "/v1/assets/"), ("download", "/content/")])
def test_transport_fault_for_good_at_each_step(fake, step, path, action):
    """A GET that keeps breaking ends in a clear error after its retries; the job is canceled when
    it was still running (poll), and not when it had already finished (asset, download)."""
    from scenario_detect.nodes.scenario.errors import ScenarioError

    if step == "poll":
        fake.job_seconds = 60
    fake.add_fault("GET", path, action=action, times=1000)
    err = _fails(fake, ScenarioError)
    assert "Traceback" not in str(err)
    [job] = fake.billed_jobs
    assert len(fake.requests_to("POST", "/generate/detect")) == 1
    assert fake.canceled_jobs() == ([job.id] if step == "poll" else [])


# -- job outcomes ----------------------------------------------------------------------------------


def test_job_failure_reports_error_and_hint(fake):
    fake.queue_outcome("failure", "No person found in the image", "Use a photo with a visible body")
    err = _fails(fake, ScenarioJobFailed, modality="pose")
    text = str(err)
    assert "No person found in the image" in text and "Use a photo with a visible body" in text
    assert err.job_id and err.job_id in text


def test_job_canceled_remotely_is_reported(fake):
    fake.queue_outcome("canceled")
    err = _fails(fake, ScenarioJobFailed)
    assert "canceled" in str(err)


def test_stuck_job_times_out_with_its_id_and_is_canceled(fake):
    fake.queue_outcome("stuck")
    err = _fails(fake, ScenarioTimeout, timeout_s=1.0)
    job_id = fake.billed_jobs[0].id
    assert job_id in str(err) and fake.canceled_jobs() == [job_id]


# -- content download ------------------------------------------------------------------------------


def test_expired_signed_url_refetches_the_asset_once(fake):
    fake.add_fault("GET", "/content/", 403, body={"message": "Request has expired"})
    result = run(fake)
    assert result.images.shape[0] == 1
    assert len(fake.requests_to("GET", "/v1/assets/")) == 2


def test_url_expired_twice_is_a_clear_error(fake):
    fake.add_fault("GET", "/content/", 403, times=2)
    err = _fails(fake, ScenarioBadResponse)
    assert "403" in str(err)
    assert len(fake.requests_to("GET", "/v1/assets/")) == 2


@pytest.mark.parametrize("action", ["truncate", "short_body", "not_image"])
def test_bad_content_once_is_downloaded_again(fake, action):
    fake.add_fault("GET", "/content/", action=action)
    result = run(fake)
    assert result.images.shape == (1, 48, 80, 3)
    assert len(fake.billed_jobs) == 1


def test_content_never_an_image_is_a_clear_error(fake):
    fake.add_fault("GET", "/content/", action="not_image", times=10)
    err = _fails(fake, ScenarioBadResponse)
    assert "not a usable image" in str(err)


# -- batches ---------------------------------------------------------------------------------------


def test_one_failing_image_fails_the_batch_naming_it(fake):
    fake.job_seconds = 0.3
    fake.queue_outcome("success")
    fake.queue_outcome("failure", "Corrupted input", "")
    fake.queue_outcome("success")
    err = _fails(fake, ScenarioBatchError, imgs=images(3), concurrency=1)
    assert "image 2 of 3" in str(err) and "Corrupted input" in str(err)
    assert err.index == 1
    assert len(fake.billed_jobs) == 2  # image 3 never started: no money spent on a failed batch


def test_interrupt_cancels_every_remote_job(fake):
    """Cancel is "pressed" once all three jobs run on the server; each is canceled before the run
    returns. (benchmarks/bench_scenario.py --cancel-latency measures how fast, in ComfyUI.)"""
    fake.job_seconds = 60

    from scenario_detect.nodes.host import Interrupted

    with pytest.raises(Interrupted):
        run(fake, imgs=images(3), check_interrupt=lambda: len(fake.billed_jobs) == 3, concurrency=3)
    jobs = {j.id for j in fake.billed_jobs}
    assert len(jobs) == 3 and set(fake.canceled_jobs()) == jobs


def test_every_secret_stays_out_across_faults(fake, caplog):
    """One run through many faults at DEBUG level: no key, secret, auth header or signed URL."""
    fake.add_fault("GET", "/jobs/", 503)
    fake.add_fault("GET", "/content/", 403)
    fake.add_fault("POST", "/generate/detect", 429, headers={"Retry-After": "0"})
    run(fake, imgs=images(2))
    fake.add_fault("POST", "/generate/detect", 500, body={"message": f"echo {fake.secret}"})
    err = _fails(fake, ScenarioMaybeSent)
    assert "<redacted>" in str(err)
    assert_no_secret(caplog.text, fake)
    assert creds(fake).api_secret not in repr(creds(fake))


def test_interrupt_during_a_slow_detect_request_still_cancels_the_job(fake):
    """The job id arrives after the run was abandoned: it is followed in the background and the job
    canceled, not left running."""
    fake.job_seconds = 60
    held = fake.hold("POST", "/generate/detect$")

    from scenario_detect.nodes.host import Interrupted

    with pytest.raises(Interrupted):  # Cancel pressed while the server has not answered the POST
        run(fake, check_interrupt=held.reached.is_set)
    assert fake.canceled_jobs() == []  # the job exists, its id has not reached us yet
    from scenario_detect.nodes.scenario import network_loop

    assert network_loop.pending_follow_ups() >= 1  # what the interpreter waits for at exit (the CLI)
    held.release()
    assert network_loop.wait_for_follow_ups(30)
    [job] = fake.billed_jobs
    assert fake.canceled_jobs() == [job.id]
    assert len(fake.requests_to("POST", "/generate/detect")) == 1


class HostInterrupt(Exception):
    """Stands for ComfyUI's InterruptProcessingException: raised by the host's progress hook."""


@pytest.mark.parametrize("exc_type", [HostInterrupt, RuntimeError, KeyError])
def test_any_exception_from_a_progress_update_cancels_the_job(fake, exc_type):
    """ComfyUI's progress hook raises its own interrupt exception after Cancel, and our own code can
    have bugs: whatever leaves a running job's code cancels the job."""
    fake.queue_outcome("stuck")
    fake.job_seconds = 60

    def on_progress(done: float) -> None:
        if 0 < done < 1:  # a progress update while the job runs
            raise exc_type("raised from a progress update")

    with pytest.raises(exc_type):
        run(fake, on_progress=on_progress)
    [job] = fake.billed_jobs
    assert fake.canceled_jobs() == [job.id]
    assert len(fake.requests_to("POST", "/generate/detect")) == 1


def test_progress_exception_in_one_image_of_a_batch_cancels_every_job(fake):
    fake.job_seconds = 60
    for _ in range(3):
        fake.queue_outcome("stuck")

    def on_progress(done: float) -> None:
        with fake.lock:
            running = len(fake.jobs)
        if running == 3 and 0 < done:
            raise HostInterrupt("interrupted")

    with pytest.raises(HostInterrupt):
        run(fake, imgs=images(3), on_progress=on_progress, concurrency=3)
    # A job whose detect answer was still on its way at the interrupt is cancelled by the late-answer
    # follow-up, which may end after run() returned: wait for it (bounded), then hold every job to it.
    fake.wait_until(lambda: len(fake.canceled_jobs()) == len(fake.billed_jobs), what="every job's cancel")
    assert sorted(fake.canceled_jobs()) == sorted(j.id for j in fake.billed_jobs)
    assert len(fake.billed_jobs) == 3


def test_timeout_while_the_detect_request_is_unanswered_cancels_the_late_job(fake):
    fake.job_seconds = 60
    held = fake.hold("POST", "/generate/detect$")
    err = _fails(fake, ScenarioTimeout, timeout_s=0.5)
    assert "timeout_s (0.5 s)" in str(err) and "canceled" in str(err)
    held.release()
    fake.wait_until(lambda: fake.canceled_jobs(), what="the cancel of the late job")
    assert len(fake.billed_jobs) == 1 and fake.canceled_jobs() == [fake.billed_jobs[0].id]


def test_timeout_bounds_429_waits_and_creates_nothing(fake):
    fake.add_fault("POST", "/generate/detect", 429, headers={"Retry-After": "4"}, times=5)
    err = _fails(fake, ScenarioTimeout, timeout_s=0.5)
    assert "timeout_s" in str(err)
    from scenario_detect.nodes.scenario import network_loop

    assert network_loop.wait_for_follow_ups(10)
    assert len(fake.requests_to("POST", "/generate/detect")) == 1  # the 4 s wait was cut short, no retry
    assert fake.billed_jobs == []


def test_stalled_download_ends_at_timeout_without_a_cancel(fake):
    """The job succeeded (nothing to cancel); its result stalls half way: timeout_s ends the wait."""
    fake.content_url = "stall"
    err = _fails(fake, ScenarioTimeout, timeout_s=1.5)
    [job] = fake.billed_jobs
    assert job.id in str(err) and "not downloaded" in str(err)
    assert fake.canceled_jobs() == []
    assert len(fake.requests_to("POST", "/generate/detect")) == 1


def test_timeout_bounds_the_upload_and_no_job_is_created(fake):
    held = fake.hold("POST", "/v1/assets$")
    err = _fails(fake, ScenarioTimeout, timeout_s=0.5, inline_max_bytes=100)
    assert "not uploaded" in str(err) and "no job was created" in str(err)
    held.release()
    assert fake.requests_to("POST", "/generate/detect") == [] and fake.billed_jobs == []


def test_cancelling_the_callers_task_cancels_the_job_before_it_returns(fake):
    """The host (or Ctrl-C in the CLI) cancels the coroutine awaiting run_scenario: the job is
    canceled on Scenario before that cancellation completes, so no loop ending can drop it."""
    import asyncio

    from scenario_support import FAST_POLICY, FAST_POLLS, creds

    from scenario_detect.nodes.scenario.backend import run_scenario
    from scenario_detect.nodes.scenario.client import RetryPolicy

    fake.job_seconds = 60
    held = fake.hold("GET", "/v1/jobs/")  # the first poll: the job exists

    async def main() -> None:
        task = asyncio.ensure_future(
            run_scenario(
                images(), "canny", {}, credentials=creds(fake), use_cache=False,
                policy=RetryPolicy(**FAST_POLICY), poll_schedule=FAST_POLLS,
            )
        )  # fmt: skip
        await asyncio.to_thread(held.wait_reached)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert fake.canceled_jobs() == [fake.billed_jobs[0].id]  # already, not "eventually"

    asyncio.run(main())
    held.release()


def test_cost_says_when_some_jobs_cost_is_unknown(fake):
    fake.next_costs = [2.0, None, 4.0, None]
    result = run(fake, imgs=images(4), concurrency=1)
    assert result.cost_units is None
    assert "cost at least 6 CU; 2 jobs' cost unknown" in result.messages[0]


def test_cost_line_forms():
    from scenario_detect.nodes.scenario.backend import cost_line

    assert cost_line([2.0, 2.0]) == (4.0, "4 CU")
    assert cost_line([2.0, None]) == (None, "at least 2 CU; 1 job's cost unknown")
    assert cost_line([None, None]) == (None, "unknown")
    assert cost_line([]) == (0.0, "0 CU")


def test_upload_refused_as_too_large_is_a_clear_error(fake):
    fake.add_fault("POST", "/v1/assets$", 413, body={"message": "Request Entity Too Large"})
    err = _fails(fake, ScenarioRequestError, inline_max_bytes=100)
    assert "too large" in str(err).lower() and "upload" in str(err)
    assert fake.billed_jobs == []


def test_retry_after_forms():
    import email.utils

    import httpx

    from scenario_detect.nodes.scenario.client import retry_after_s

    def response(headers, body=None):
        return httpx.Response(429, headers=headers, json=body) if body else httpx.Response(429, headers=headers)

    assert retry_after_s(response({"Retry-After": "3"})) == 3
    soon = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3 < retry_after_s(response({"Retry-After": soon})) <= 5
    assert retry_after_s(response({"Retry-After": "soon-ish"}, {"remainingSeconds": 7})) == 7
    assert retry_after_s(response({}, {"reason": "cooldown"})) is None
