"""The fake Scenario server speaks the real API: its JSON is checked by the official SDK's models in
strict mode (``_strict_response_validation=True``), over real HTTP. scenario-sdk is test-only."""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image
from scenario_support import fake_fixture

scenario_sdk = pytest.importorskip("scenario_sdk")


def _png(w: int = 40, h: int = 30) -> bytes:
    rng = np.random.default_rng(0)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


fake = fake_fixture(0.3)


@pytest.fixture()
def sdk(fake):
    client = scenario_sdk.Scenario(
        api_key=fake.key,
        api_secret=fake.secret,
        base_url=fake.base_url,
        _strict_response_validation=True,
        max_retries=0,
    )
    yield client
    client.close()


def test_job_lifecycle_and_assets_validate_strictly(fake, sdk):
    fake.job_seconds = 1.0  # wide status windows: a loaded machine's slow poll still sees each stage
    created = sdk.generate.detect(image=_data_url(_png()), modality="canny", low_threshold=50, high_threshold=150)
    assert created.job.status == "pending" and created.creative_units_cost == fake.cost_per_job
    seen = {created.job.status}
    deadline = time.time() + 5
    while time.time() < deadline:
        job = sdk.jobs.retrieve(created.job.job_id).job
        seen.add(job.status)
        if job.status == "success":
            break
        time.sleep(0.02)
    assert job.status == "success"
    assert {"pending", "in-progress", "success"} <= seen, seen
    assert job.billing is not None and job.billing.cu_cost == fake.cost_per_job
    asset = sdk.assets.retrieve(job.metadata.asset_ids[0]).asset
    assert asset.kind == "image" and asset.properties.width == 64 and "X-Amz-Signature=" in asset.url
    upload = sdk.assets.upload(name="in.png", image=_data_url(_png()))
    assert upload.asset.source == "uploaded"
    sent = fake.requests_to("POST", "/generate/detect")[0]
    assert sent.body["lowThreshold"] == 50 and sent.headers["Authorization"].startswith("Basic ")


def test_failure_cancel_and_immediate_success_validate_strictly(fake, sdk):
    fake.job_seconds = 0.05
    fake.queue_outcome("failure", "Image is too small", "Use an image of at least 64 px")
    failed = sdk.generate.detect(image=_data_url(_png()), modality="pose", keypoint_threshold=0.4)
    time.sleep(0.15)
    job = sdk.jobs.retrieve(failed.job.job_id).job
    assert job.status == "failure" and job.metadata.error == "Image is too small"
    assert job.metadata.hint == "Use an image of at least 64 px"

    fake.job_seconds = 30
    running = sdk.generate.detect(image=_data_url(_png()), modality="depth")
    canceled = sdk.jobs.trigger_action(running.job.job_id, action="cancel")
    assert canceled.job.status == "canceled"

    fake.immediate_success = True
    done = sdk.generate.detect(image=_data_url(_png()), modality="normal")
    assert done.job.status == "success" and done.asset is not None and done.asset.source == "detection"


def test_dry_run_is_http_269_with_cost_and_creates_no_job(fake, sdk):
    raw = sdk.generate.with_raw_response.detect(image=_data_url(_png()), modality="canny", dry_run="true")
    assert raw.status_code == 269
    body = raw.http_response.json()
    from scenario_sdk.types.generate_detect_response import CostDetails

    CostDetails.model_validate(body["costDetails"], strict=True)
    assert body["creativeUnitsCost"] == fake.cost_per_job
    assert fake.billed_jobs == []


def test_errors_have_the_api_shapes(fake):
    bad = scenario_sdk.Scenario(api_key=fake.key, api_secret="wrong", base_url=fake.base_url, max_retries=0)
    with pytest.raises(scenario_sdk.AuthenticationError):
        bad.jobs.retrieve("job_x")
    bad.close()
    good = scenario_sdk.Scenario(api_key=fake.key, api_secret=fake.secret, base_url=fake.base_url, max_retries=0)
    with pytest.raises(scenario_sdk.BadRequestError) as info:
        good.generate.detect(image="asset_missing", modality="canny")
    assert "not found" in info.value.body["reason"]
    fake.add_fault("POST", "/generate/detect", 429, body={"reason": "cooldown", "remainingSeconds": 3})
    with pytest.raises(scenario_sdk.RateLimitError) as info:
        good.generate.detect(image=_data_url(_png()), modality="canny")
    assert info.value.body["remainingSeconds"] == 3
    good.close()


def test_signed_url_expires_and_a_fresh_asset_fetch_works(fake, sdk):
    import httpx

    fake.immediate_success = True
    done = sdk.generate.detect(image=_data_url(_png()), modality="canny")
    url = done.asset.url
    assert httpx.get(url).status_code == 200
    fake.expire_urls()
    assert httpx.get(url).status_code == 403
    fresh = sdk.assets.retrieve(done.asset.id).asset.url
    assert httpx.get(fresh).status_code == 200


def test_a_delayed_detect_that_creates_its_job_creates_one(fake, sdk):
    """action="delay" with create_job: the job exists while the answer is late, and the late answer
    is that same job (before, the request was routed again after the delay: two jobs, one POST)."""
    fake.add_fault("POST", "/generate/detect", action="delay", delay_s=0.3, create_job=True)
    created = sdk.generate.detect(image=_data_url(_png()), modality="canny")
    [job] = fake.billed_jobs
    assert created.job.job_id == job.id and len(fake.requests_to("POST", "/generate/detect")) == 1
