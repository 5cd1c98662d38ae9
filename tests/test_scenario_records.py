"""Every API answer is parsed once, at the edge, into typed records: the fake's real answers parse
into the fields the job's life needs, and a malformed or unknown answer is one clear error there,
before anything acts on it (no second POST, no KeyError deep in a job)."""

from __future__ import annotations

import asyncio

import pytest
from fake_scenario import FakeScenario
from scenario_support import FAST_POLICY, creds, run, secret_free_logs_fixture

from scenario_detect.nodes.scenario import api
from scenario_detect.nodes.scenario.api import Job, parse_asset, parse_detect, parse_job
from scenario_detect.nodes.scenario.client import RetryPolicy, ScenarioClient
from scenario_detect.nodes.scenario.errors import ScenarioBadResponse, ScenarioJobFailed

pytestmark = pytest.mark.timeout(60)

DETECT = "/generate/detect"


@pytest.fixture()
def fake():
    with FakeScenario(job_seconds=0.15) as server:
        yield server


_logs = secret_free_logs_fixture()


def _with_client(fake: FakeScenario, action):
    async def go():
        async with ScenarioClient(creds(fake), RetryPolicy(**FAST_POLICY)) as client:
            return await action(client)

    return asyncio.run(go())


def test_the_fakes_answers_parse_into_records(fake):
    """Over real HTTP: detect -> job (polled to success) -> asset, each a typed record."""
    fake.queue_outcome("success")
    body = {"image": _data_url(), "modality": "canny"}

    async def steps(client):
        created = await api.post_detect(client, body, {})
        job = created.job
        while not job.terminal:
            await asyncio.sleep(0.05)
            job = await api.get_job(client, job.id)
        asset = await api.get_asset(client, job.results()[0])
        return created, job, asset

    created, job, asset = _with_client(fake, steps)
    assert created.job is not None and not created.job.terminal and created.cost == fake.cost_per_job
    assert isinstance(job, Job) and job.status == "success" and job.progress == 1.0
    assert job.cost == fake.cost_per_job and len(job.asset_ids) == 1 and job.error is None
    assert asset.id == job.asset_ids[0] and asset.url and asset.mime_type == "image/png"
    assert "X-Amz" not in repr(asset)  # the signed URL stays out of logs and tracebacks


def _data_url() -> str:
    import numpy as np

    from scenario_detect.nodes.images import data_url, encode_png

    return data_url(encode_png(np.full((32, 48, 3), 128, np.uint8)), "image/png")


def test_a_failed_job_says_its_error_and_hint():
    job = parse_job({"job": {"jobId": "j1", "status": "failure", "metadata": {"error": "bad input", "hint": "bigger"}}},
                    "job j1")
    with pytest.raises(ScenarioJobFailed, match="job j1 failed: bad input. Hint: bigger"):
        job.results()
    unknown = parse_job({"job": {"jobId": "j2", "status": "rendering", "progress": 7}}, "job j2")
    assert not unknown.terminal and unknown.progress == 1.0  # unknown status: still running; progress clamped


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ([1, 2], "the answer is a JSON list, not an object"),
        ({}, "the answer.job is missing"),
        ({"job": "j1"}, "the answer.job is a JSON str, not an object"),
        ({"job": {"status": "pending"}}, "the answer.job.jobId is missing"),
        ({"job": {"jobId": 5, "status": "pending"}}, "the answer.job.jobId is a JSON int"),
        ({"job": {"jobId": "j", "status": None}}, "the answer.job.status is missing"),
        ({"job": {"jobId": "j", "status": "x", "progress": "half"}}, "the answer.job.progress is a JSON str"),
        ({"job": {"jobId": "j", "status": "x", "progress": True}}, "the answer.job.progress is a JSON bool"),
        ({"job": {"jobId": "j", "status": "x", "billing": {"cuCost": "2"}}}, "the answer.job.billing.cuCost"),
        ({"job": {"jobId": "j", "status": "x", "metadata": {"assetIds": "a1"}}}, "metadata.assetIds is a JSON str"),
        ({"job": {"jobId": "j", "status": "x", "metadata": {"assetIds": [""]}}}, "not a list of ids"),
    ],
)
def test_a_malformed_job_answer_is_one_clear_error(answer, problem):
    with pytest.raises(ScenarioBadResponse) as info:
        parse_job(answer, "job j")
    text = str(info.value)
    assert text.startswith("Scenario's answer to job j is not what the API documents (") and problem in text, text
    assert "SCENARIO_BASE_URL" in text


def test_malformed_asset_and_estimate_answers():
    with pytest.raises(ScenarioBadResponse, match=r"answer.asset.url is a JSON int"):
        parse_asset({"asset": {"id": "a", "url": 5}}, "asset a")
    with pytest.raises(ScenarioBadResponse, match=r"answer.asset.id is missing"):
        parse_asset({"asset": {"url": "https://x/a.png?X-Amz-Signature=s"}}, "asset a")
    with pytest.raises(ScenarioBadResponse, match=r"creativeUnitsCost is missing"):
        parse_detect({"costDetails": {}}, "the estimate", estimate=True)
    assert parse_detect({"creativeUnitsCost": 3}, "the estimate", estimate=True).cost == 3.0
    answer = parse_detect({"job": {"jobId": "j", "status": "pending", "billing": {"cuCost": 2}}}, "the detect")
    assert answer.cost == 2.0 and answer.finished_asset() is None


def test_a_malformed_detect_answer_fails_once_at_the_edge_and_says_a_job_may_exist(fake):
    """Over real HTTP through run_scenario: one POST, no poll, an error naming the field and the jobs page."""
    fake.add_fault("POST", DETECT, 200, body={"job": {"jobId": 12345, "status": "pending"}})
    with pytest.raises(ScenarioBadResponse) as info:
        run(fake)
    text = str(info.value)
    assert "answer.job.jobId is a JSON int" in text and "check your jobs at https://app.scenario.com" in text
    assert len(fake.requests_to("POST", DETECT)) == 1 and fake.requests_to("GET", "/jobs/") == []


def test_a_malformed_poll_answer_stops_the_job_and_cancels_it(fake):
    """A job answer that cannot be read ends the run with that error; the job it was following is
    cancelled on the way out (RemoteJob), not left running."""
    fake.add_fault("GET", "/jobs/", 200, body={"job": {"jobId": "x", "status": "in-progress", "progress": "50%"}})
    with pytest.raises(ScenarioBadResponse, match="answer.job.progress is a JSON str"):
        run(fake)
    assert len(fake.billed_jobs) == 1
    fake.wait_until(lambda: len(fake.canceled_jobs()) == 1, what="the job's cancel")


def test_an_unknown_status_counts_as_running(fake):
    fake.add_fault("GET", "/jobs/", 200, body={"job": {"jobId": "x", "status": "rendering"}}, times=2)
    result = run(fake)
    assert result.images.shape[0] == 1 and len(fake.requests_to("GET", "/jobs/")) >= 3
