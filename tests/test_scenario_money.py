"""Money at the level of the batch (backend.py): a failed batch keeps what finished, says what it
spent, and the rerun pays only for the rest; the cost estimate honours timeout_s and Cancel.
(Cancels: test_scenario_jobs.py; the network loop's deadlines: test_scenario_network_loop.py.)"""

from __future__ import annotations

import pytest
from scenario_support import assert_no_secret, fake_fixture, images, run, secret_free_logs_fixture

from scenario_detect.nodes import host
from scenario_detect.nodes.scenario.cache import ResultCache
from scenario_detect.nodes.scenario.errors import (
    ScenarioBatchError,
    ScenarioJobFailed,
    ScenarioTimeout,
)

pytestmark = pytest.mark.timeout(90)

fake = fake_fixture()

DETECT = "/generate/detect$"


_logs = secret_free_logs_fixture()
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
