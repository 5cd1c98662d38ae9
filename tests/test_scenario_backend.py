"""run_scenario end to end against the fake: fields per modality, order, sizes, asset ids, upload of
large images, dry run, cost, progress, bounded concurrency and the on-disk result cache."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import torch
from scenario_support import assert_no_secret, fake_fixture, images, run

from scenario_detect.nodes.modalities import MODALITY_NAMES, api_fields, default_params
from scenario_detect.nodes.scenario.backend import parse_asset_ids
from scenario_detect.nodes.scenario.cache import ResultCache
from scenario_detect.nodes.scenario.errors import ScenarioRequestError

pytestmark = pytest.mark.timeout(60)


fake = fake_fixture(0.1)


def _luma(batch: torch.Tensor) -> torch.Tensor:
    return batch[..., 0] * 0.299 + batch[..., 1] * 0.587 + batch[..., 2] * 0.114


@pytest.mark.parametrize("modality", MODALITY_NAMES)
def test_each_modality_sends_only_its_fields_and_keeps_the_size(fake, modality):
    params = default_params()  # every widget has a value, as in the node; only some apply
    params["keypoint_threshold"] = 0.55
    result = run(fake, images(1, 37, 91), modality, params)
    assert result.images.shape == (1, 37, 91, 3) and result.images.dtype == torch.float32
    assert 0.0 <= float(result.images.min()) and float(result.images.max()) <= 1.0
    body = fake.requests_to("POST", "/generate/detect")[0].body
    expected = api_fields(modality, params)
    assert {k: v for k, v in body.items() if k not in ("image", "modality")} == expected
    assert body["modality"] == modality and body["image"].startswith("data:image/png;base64,")
    assert result.asset_ids and result.asset_ids[0].startswith("asset_")


def test_batch_results_come_back_in_input_order(fake):
    fake.job_seconds = 0.2
    batch = images(5, 40, 60)
    result = run(fake, batch, concurrency=5)
    means_in = _luma(batch).mean(dim=(1, 2))
    means_out = result.images[..., 0].mean(dim=(1, 2))
    assert torch.allclose(means_in, means_out, atol=0.03), (means_in, means_out)
    assert len(result.asset_ids) == 5 and len(set(result.asset_ids)) == 5


def test_keep_api_size_returns_the_api_resolution(fake):
    result = run(fake, images(2, 100, 150), keep_api_size=True)
    assert result.images.shape == (2, 128, 128, 3)


def test_asset_id_is_sent_instead_of_the_image(fake):
    # An asset that exists on the (fake) server, e.g. from an earlier upload.
    import asyncio

    from scenario_support import creds

    from scenario_detect.nodes.images import encode_png
    from scenario_detect.nodes.scenario.client import ScenarioClient
    from scenario_detect.nodes.scenario.jobs import upload_image

    async def upload() -> str:
        async with ScenarioClient(creds(fake)) as client:
            png = encode_png(images(1, 64, 64)[0].numpy())
            import base64

            return await upload_image(client, "data:image/png;base64," + base64.b64encode(png).decode(), "x.png")

    asset_id = asyncio.run(upload())
    result = run(fake, images(1, 30, 20), asset_ids=f"  {asset_id} ")
    body = fake.requests_to("POST", "/generate/detect")[0].body
    assert body["image"] == asset_id
    assert result.images.shape == (1, 30, 20, 3)


def test_asset_ids_must_match_the_batch(fake):
    with pytest.raises(ScenarioRequestError, match="one asset id per image"):
        run(fake, images(3), asset_ids=["asset_a", "asset_b"])
    assert parse_asset_ids("asset_a, asset_b\nasset_c") == ["asset_a", "asset_b", "asset_c"]


def test_original_assets_maps_to_the_query_parameter(fake):
    run(fake, original_assets=True)
    run(fake, original_assets=False)
    first, second = fake.requests_to("POST", "/generate/detect")
    assert first.query.get("originalAssets") == "true"
    assert "originalAssets" not in second.query


def test_large_images_are_uploaded_first_and_passed_by_asset_id(fake):
    result = run(fake, images(1, 64, 64), inline_max_bytes=1000)
    uploads = fake.requests_to("POST", "/v1/assets$")
    assert len(uploads) == 1 and uploads[0].body["image"].startswith("data:image/png;base64,")
    body = fake.requests_to("POST", "/generate/detect")[0].body
    assert body["image"].startswith("asset_")
    assert result.images.shape == (1, 64, 64, 3)


def test_a_real_large_image_goes_through_upload(fake):
    # Noise does not compress: about 4.3 MB of PNG, over the 3.5 MB inline limit.
    noise = torch.rand(1, 1200, 1200, 3, generator=torch.Generator().manual_seed(1))
    result = run(fake, noise)
    assert len(fake.requests_to("POST", "/v1/assets$")) == 1
    assert result.images.shape == (1, 1200, 1200, 3)


def test_dry_run_estimates_without_running(fake):
    result = run(fake, images(3), dry_run=True)
    assert result.cost_units == 3 * fake.cost_per_job
    assert fake.requests_to("POST", "/generate/detect")[0].query["dryRun"] == "true"
    assert fake.billed_jobs == []
    assert "Estimate" in result.messages[0] and result.images.shape == (3, 48, 80, 3)


def test_cost_is_returned_and_logged_without_secrets(fake, caplog):
    caplog.set_level(logging.INFO)
    result = run(fake, images(2))
    assert result.cost_units == 2 * fake.cost_per_job
    assert "cost 4 CU" in result.messages[0]
    assert "cost 4 CU" in caplog.text
    assert_no_secret(caplog.text, fake)


def test_progress_follows_the_jobs(fake):
    fake.job_seconds = 0.4
    seen: list[float] = []
    run(fake, images(2), on_progress=seen.append)
    assert seen and seen[-1] == pytest.approx(2.0)
    assert any(0 < v < 2 for v in seen)
    assert all(b >= a - 1e-9 for a, b in zip(seen, seen[1:], strict=False))


def test_concurrency_is_bounded(fake):
    fake.job_seconds = 0.25
    run(fake, images(6), concurrency=2)
    jobs = sorted(fake.billed_jobs, key=lambda j: j.created)
    # A new job starts only after an earlier one finished: at most two overlap at any time.
    for i, job in enumerate(jobs):
        overlapping = [o for o in jobs[:i] if o.created + o.duration > job.created + 0.02]
        assert len(overlapping) <= 1


def test_batch_of_8_runs_its_jobs_at_once(fake):
    """All eight jobs exist before any is polled (polls are held): they run in parallel, so a batch
    takes about the time of one job (benchmarks/bench_scenario.py measures it)."""
    import threading

    held = fake.hold("GET", "/v1/jobs/", times=8)
    seen: list[int] = []

    def release_when_all_created() -> None:
        fake.wait_until(lambda: len(fake.jobs) == 8, what="eight jobs")
        seen.append(sum(1 for r in fake.requests if "/v1/jobs/" in r.path and r.answered.is_set()))
        held.release()

    releaser = threading.Thread(target=release_when_all_created)
    releaser.start()
    result = run(fake, images(8), concurrency=8)
    releaser.join()
    assert seen == [0] and result.images.shape[0] == 8


# -- cache ---------------------------------------------------------------------------------------


def test_cache_rerun_pays_nothing_and_survives_a_new_process(fake, tmp_path):
    cache = ResultCache(tmp_path / "cache")
    first = run(fake, images(2), use_cache=True, cache=cache)
    assert len(fake.billed_jobs) == 2
    again = run(fake, images(2), use_cache=True, cache=ResultCache(tmp_path / "cache"))  # a "restart"
    assert len(fake.billed_jobs) == 2
    assert torch.equal(first.images, again.images) and first.asset_ids == again.asset_ids
    assert again.cost_units == 0 and "from cache" in again.messages[0]
    run(fake, images(2), params={"low_threshold": 10}, use_cache=True, cache=cache)
    assert len(fake.billed_jobs) == 4  # other parameters: another result
    run(fake, images(2), "depth", use_cache=True, cache=cache)
    assert len(fake.billed_jobs) == 6


def test_cache_opt_out_by_environment(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("SCENARIO_DETECT_CACHE", "0")
    monkeypatch.setenv("SCENARIO_DETECT_CACHE_DIR", str(tmp_path / "c"))
    run(fake, use_cache=None)
    run(fake, use_cache=None)
    assert len(fake.billed_jobs) == 2
    assert not (tmp_path / "c").exists()


def test_cache_is_bounded(tmp_path):
    cache = ResultCache(tmp_path, max_bytes=10_000)
    for i in range(10):
        cache.put(f"{i:064x}", bytes([i]) * 3000, [f"asset_{i}"], 1.0)
        time.sleep(0.01)
    total = sum(p.stat().st_size for p in tmp_path.glob("*/*"))
    assert total <= 10_000
    assert cache.get(f"{9:064x}") is not None and cache.get(f"{0:064x}") is None


def test_segmentation_is_resized_without_inventing_colors(fake):
    result = run(fake, images(1, 33, 47), "segmentation")
    values = np.unique(result.images.numpy().round(6))
    source = np.unique(result.images.numpy())
    assert len(values) == len(source)


def test_several_asset_ids_for_one_image(fake):
    first = run(fake, images(1, 40, 40))
    second = run(fake, images(1, 40, 40, seed=5))
    ids = first.asset_ids + second.asset_ids
    result = run(fake, images(1, 30, 50), asset_ids=", ".join(ids))
    assert result.images.shape == (2, 30, 50, 3)
    bodies = [r.body["image"] for r in fake.requests_to("POST", "/generate/detect")[2:]]
    assert sorted(bodies) == sorted(ids)


def test_a_finished_job_in_the_detect_answer_is_not_polled(fake):
    fake.immediate_success = True
    result = run(fake)
    assert result.stats["polls"] == [0]
    assert fake.requests_to("GET", "/v1/jobs/") == []
    assert result.images.shape == (1, 48, 80, 3)


def test_poll_schedule_is_fast_first_then_slower_and_follows_progress():
    from itertools import islice

    from scenario_detect.nodes.scenario.jobs import PollSchedule

    schedule = PollSchedule()
    waits = list(islice(schedule.intervals(), 16))
    assert waits[:6] == [0.25] * 6  # the first 1.5 s: a short job is seen finished quickly
    assert waits[6] > 0.25 and waits[-1] == schedule.max_s
    assert all(b >= a for a, b in zip(waits, waits[1:], strict=False))
    # Half done after 0.5 s: it should end at 1.0 s, so at 0.6 s the next poll is 0.45 s away.
    assert schedule.next_wait(3.0, 0.5, 0.5, 0.6) == pytest.approx(0.45)
    assert schedule.next_wait(0.25, 0.5, 0.5, 0.6) == 0.25  # never later than planned
    assert schedule.next_wait(3.0, None, 0.0, 0.6) == 3.0  # no progress: the plan


def test_images_over_the_request_limit_as_png_are_sent_as_jpeg(fake):
    import cv2

    from scenario_detect.nodes.images import encode_png, rgb_u8

    batch = images(1, 200, 300)
    u8 = rgb_u8(batch[0].numpy())
    png = len(encode_png(u8))
    jpeg = len(cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, 95])[1])
    assert jpeg < png
    limit = (png + jpeg) // 2
    result = run(fake, batch, upload_max_bytes=limit)
    body = fake.requests_to("POST", "/generate/detect")[0].body
    assert body["image"].startswith("data:image/jpeg;base64,")
    assert any("sent as JPEG" in m for m in result.messages)
    assert result.images.shape == (1, 200, 300, 3)
    # Larger than the limit even as JPEG: a clear error before anything is sent.
    with pytest.raises(ScenarioRequestError, match="scale it down"):
        run(fake, batch, upload_max_bytes=jpeg // 2)
    assert len(fake.requests_to("POST", "/generate/detect")) == 1


# -- the steps of run_scenario, each on its own ----------------------------------------------------


def test_plan_jobs_checks_before_anything_is_sent():
    from scenario_detect.nodes.scenario.backend import plan_jobs

    plan = plan_jobs(images(2, 30, 40), "canny", {}, None, original_assets=True)
    assert plan.count == 2 and plan.size(1) == (30, 40) and plan.label(1) == "image 2"
    assert plan.query == {"originalAssets": "true"} and set(plan.fields) == {"lowThreshold", "highThreshold"}
    several = plan_jobs(images(1, 30, 40), "depth", {}, "asset_a asset_b", original_assets=False)
    assert several.count == 2 and several.size(1) == (30, 40) and several.label(0) == "asset asset_a (item 1)"
    with pytest.raises(ScenarioRequestError, match="unknown modality 'edges'"):
        plan_jobs(images(1), "edges", {}, None, False)
    with pytest.raises(ScenarioRequestError, match="low_threshold"):
        plan_jobs(images(1), "canny", {"low_threshold": 200, "high_threshold": 100}, None, False)


def test_assemble_maps_sizes_and_says_what_it_resized():
    from scenario_detect.nodes.scenario.backend import assemble_maps, plan_jobs
    from scenario_detect.nodes.scenario.jobs import JobOutcome

    plan = plan_jobs(images(2, 30, 40), "canny", {}, None, False)
    outcomes = [
        JobOutcome([f"asset_{i}"], b"", 1.0, decoded=np.full((h, w, 3), i / 2, np.float32))
        for i, (h, w) in enumerate([(64, 64), (64, 128)])
    ]
    maps, messages = assemble_maps(plan, outcomes, keep_api_size=False)
    assert maps.shape == (2, 30, 40, 3) and messages == []
    assert float(maps[1].mean()) == pytest.approx(0.5)
    maps, messages = assemble_maps(plan, outcomes, keep_api_size=True)
    assert maps.shape == (2, 64, 64, 3)
    assert messages == ["image 2 came back at 128x64; resized to 64x64 to fit one batch."]
