"""The Scenario endpoints the node calls, each answer parsed once into a record (``records``).

This is the edge: above it (``jobs``, ``backend``) there are only :class:`Job`, :class:`Asset` and
:class:`DetectAnswer`; below it (``client``) only HTTP. A malformed answer fails here, with one
clear error, before anything acts on it.
"""

from __future__ import annotations

from typing import Any

from .client import ScenarioClient
from .errors import ScenarioBadResponse
from .records import Asset, DetectAnswer, Job, parse_asset, parse_detect, parse_job
from .transport_errors import JOBS_PAGE
from .urls import api_path

DETECT = "/generate/detect"


async def post_detect(client: ScenarioClient, body: dict[str, Any], query: dict[str, str]) -> DetectAnswer:
    """``POST /generate/detect``: creates (and bills) a job; never repeated once it may have been sent."""
    what = "the detect request"
    response = await client.post(DETECT, body, query=query, what=what)
    try:
        return parse_detect(response.data, what)
    except ScenarioBadResponse as exc:
        failed = exc  # the request was carried out: a job may exist that we cannot name
    raise ScenarioBadResponse(
        f"{failed} The request may still have created (and billed) a job: check your jobs at {JOBS_PAGE}."
    ) from None


async def post_estimate(client: ScenarioClient, body: dict[str, Any], query: dict[str, str]) -> DetectAnswer:
    """The ``dryRun`` cost of one detect (HTTP 269, no job). A server that ignores ``dryRun``
    answers 200 with a job: the answer then holds it, for the caller to cancel."""
    what = "the detect cost estimate"
    response = await client.post(DETECT, body, query={**query, "dryRun": "true"}, what=what, ok=(269, 200))
    return parse_detect(response.data, what, estimate=response.status == 269)


async def get_job(client: ScenarioClient, job_id: str) -> Job:
    what = f"job {job_id}"
    return parse_job(await client.get(api_path("jobs", job_id), what=what), what)


async def post_cancel(client: ScenarioClient, job_id: str, timeout_s: float | None = None) -> Job:
    """``POST /jobs/{id}/action {"action": "cancel"}``: the job as Scenario shows it afterwards."""
    what = f"the cancel of job {job_id}"
    response = await client.post(
        api_path("jobs", job_id, "action"), {"action": "cancel"}, what=what, timeout_s=timeout_s
    )
    return parse_job(response.data, what)


async def get_asset(client: ScenarioClient, asset_id: str) -> Asset:
    what = f"asset {asset_id}"
    return parse_asset(await client.get(api_path("assets", asset_id), what=what), what)


async def post_upload(client: ScenarioClient, data_url: str, name: str) -> Asset:
    """``POST /assets`` for an input too large to send inline."""
    what = f"the upload of {name}"
    response = await client.post(
        "/assets", {"image": data_url, "name": name}, what=what, timeout_s=client.policy.upload_timeout_s
    )
    return parse_asset(response.data, what)
