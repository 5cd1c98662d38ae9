"""The job's life (jobs.py): a cancel is retried until Scenario confirms it, or the message says
which job may still run; a detect POST waiting between two tries is stopped with no job left."""

from __future__ import annotations

import pytest
from scenario_support import fake_fixture, images, run, secret_free_logs_fixture

from scenario_detect.nodes import host
from scenario_detect.nodes.scenario import jobs, network_loop
from scenario_detect.nodes.scenario.errors import ScenarioTimeout

pytestmark = pytest.mark.timeout(90)

fake = fake_fixture()

DETECT = "/generate/detect$"
CANCEL = "/jobs/[^/]+/action$"


_logs = secret_free_logs_fixture()


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


def test_cancel_between_two_tries_of_the_detect_post_stops_it_with_no_job(fake, caplog):
    """Cancel while the detect POST waits out a 429: nothing is in flight, so no job can exist; the
    POST is stopped there (no follow-up kept, never tried again). The job's exit's between-tries branch."""
    fake.add_fault("POST", DETECT, 429, headers={"Retry-After": "4"}, body={"reason": "cooldown"})

    def refused() -> bool:
        return any(r.status == 429 for r in fake.requests_to("POST", DETECT))

    with pytest.raises(host.Interrupted) as info:
        run(fake, check_interrupt=refused)
    assert network_loop.pending_follow_ups() == 0  # nothing left that could send the POST again
    assert "stopped between tries" in caplog.text and "Nothing was spent: no job was created." in str(info.value)
    assert len(fake.requests_to("POST", DETECT)) == 1 and fake.billed_jobs == []


def test_cancel_after_one_image_failed_names_only_jobs_that_may_run(fake):
    """A job seen failed has nothing left to cancel: the message must not call it "may still be
    running"; the running one is canceled and said so."""
    import time

    fake.queue_outcome("failure", "Corrupted input", "")
    fake.queue_outcome("stuck")
    wall = time.time() - time.monotonic()  # the fake runs in this process: one clock offset

    def failure_seen() -> bool:
        jobs_now = fake.billed_jobs
        if len(jobs_now) < 2:
            return False
        first = jobs_now[0]
        ended = first.created + first.duration  # when the fake shows it failed (wall clock)
        return any(r.at + wall > ended and r.status == 200 for r in fake.requests_to("GET", f"/jobs/{first.id}$"))

    with pytest.raises(host.Interrupted) as info:
        run(fake, images(2), concurrency=2, check_interrupt=failure_seen)
    failed, stuck = fake.billed_jobs
    text = str(info.value)
    assert f"job {stuck.id} was canceled (confirmed by Scenario)" in text and fake.canceled_jobs() == [stuck.id]
    assert "MAY STILL BE RUNNING" not in text and "still being tried" not in text
    # Seen failed by the run: not named. Its failure answer still in flight at Cancel: its cancel says so.
    assert failed.id not in text or f"job {failed.id} had already ended (failure)" in text
