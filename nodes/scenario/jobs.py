"""One detect job: POST -> poll adaptively -> asset -> download; plus upload, estimate and cancel.

Cancellation is plain asyncio task cancellation: whoever runs these coroutines cancels the task
(interrupt, batch failure) and each job cancels its remote counterpart on the way out, so a
stopped run does not keep spending the user's credits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .client import ContentExpired, ScenarioClient
from .errors import (
    ScenarioBadResponse,
    ScenarioError,
    ScenarioJobFailed,
    ScenarioTimeout,
    scrub,
)

log = logging.getLogger("scenario_detect.scenario")

TERMINAL = frozenset({"success", "failure", "canceled"})
CANCEL_TIMEOUT_S = 5.0


@dataclass
class PollSchedule:
    """When to poll a job: every ``first_s`` for the first ``steady_until_s`` seconds (a detect job
    often ends within a second or two, and a slow first poll adds that much to every run), then
    intervals growing by ``growth`` up to ``max_s``. The job's own progress may bring a poll forward
    (see :meth:`next_wait`)."""

    first_s: float = 0.25
    steady_until_s: float = 1.5
    growth: float = 1.5
    max_s: float = 3.0
    min_s: float = 0.1

    def intervals(self):
        waited = 0.0
        interval = self.first_s
        while True:
            yield interval
            waited += interval
            if waited >= self.steady_until_s:
                interval = min(self.max_s, interval * self.growth)

    def next_wait(self, planned: float, progress: float | None, seen_at: float, now: float) -> float:
        """The planned interval, shortened to when the job should end if its progress (``progress``
        observed ``seen_at`` seconds after the job started; ``now`` is the same clock) is linear."""
        if progress is not None and 0.05 <= progress < 1.0 and seen_at > 0:
            remaining = seen_at / progress - now + 0.05
            return max(self.min_s, min(planned, remaining))
        return planned


@dataclass
class JobOutcome:
    asset_ids: list[str]
    content: bytes  # the first result asset's bytes (a PNG in practice)
    cost: float | None = None
    job_id: str | None = None
    polls: int = 0
    seconds: float = 0.0
    decoded: Any = None  # what ``validate`` returned for the content (the decoded image)
    extra: dict[str, Any] = field(default_factory=dict)


def _job_of(data: dict[str, Any], what: str) -> dict[str, Any]:
    job = data.get("job")
    if not isinstance(job, dict) or not isinstance(job.get("jobId"), str):
        raise ScenarioBadResponse(f"Scenario's answer to {what} has no job in it.")
    return job


def _cost(data: dict[str, Any]) -> float | None:
    value = data.get("creativeUnitsCost")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    billing = (data.get("job") or {}).get("billing") if isinstance(data.get("job"), dict) else None
    if isinstance(billing, dict) and isinstance(billing.get("cuCost"), (int, float)):
        return float(billing["cuCost"])
    return None


def _failure_message(job: dict[str, Any]) -> str:
    meta = job.get("metadata") or {}
    status = job.get("status")
    if status == "canceled":
        return f"Scenario job {job['jobId']} was canceled on Scenario's side before it finished; run the node again."
    error = meta.get("error") or "no reason given"
    hint = meta.get("hint")
    text = f"Scenario job {job['jobId']} failed: {error}"
    if hint:
        text += f". Hint: {hint}"
    return scrub(text)


async def cancel_job(client: ScenarioClient, job_id: str) -> bool:
    """Best effort: ask Scenario to cancel a job. True when it accepted."""
    try:
        await asyncio.wait_for(
            client.post(
                f"/jobs/{job_id}/action",
                {"action": "cancel"},
                what=f"cancel of job {job_id}",
                timeout_s=CANCEL_TIMEOUT_S,
            ),
            CANCEL_TIMEOUT_S,
        )
        log.info("Scenario job %s canceled", job_id)
        return True
    except (ScenarioError, asyncio.TimeoutError) as exc:
        log.warning("could not cancel Scenario job %s: %s", job_id, scrub(exc))
        return False


async def upload_image(client: ScenarioClient, data_url: str, name: str) -> str:
    """``POST /assets`` for inputs too large to send inline; returns the new AssetId."""
    response = await client.post(
        "/assets", {"image": data_url, "name": name}, what=f"upload of {name}", timeout_s=client.policy.upload_timeout_s
    )
    asset = response.data.get("asset")
    if not isinstance(asset, dict) or not isinstance(asset.get("id"), str):
        raise ScenarioBadResponse(f"Scenario's answer to the upload of {name} has no asset id.")
    return asset["id"]


async def estimate(client: ScenarioClient, body: dict[str, Any], query: dict[str, str]) -> float:
    """Cost of one detect job in creative units, from ``dryRun`` (HTTP 269), without running it."""
    response = await client.post(
        "/generate/detect", body, query={**query, "dryRun": "true"}, what="the detect cost estimate", ok=(269, 200)
    )
    if response.status == 200 and isinstance(response.data.get("job"), dict):
        # The server ran the job instead of estimating: stop it so it costs nothing more.
        await cancel_job(client, response.data["job"]["jobId"])
        raise ScenarioBadResponse("Scenario started a job for a cost estimate (dryRun ignored); it was canceled.")
    cost = _cost(response.data)
    if cost is None:
        raise ScenarioBadResponse("Scenario's cost estimate has no creativeUnitsCost.")
    return cost


async def fetch_asset(client: ScenarioClient, asset_id: str, validate: Callable[[bytes], Any]) -> tuple[bytes, Any]:
    """Bytes of an asset. A 403 from the signed URL means it expired: get a fresh URL once.
    Content that ``validate`` rejects (truncated, not an image) is downloaded once more."""
    refreshed = retried_bad = False
    while True:
        data = await client.get(f"/assets/{asset_id}", what=f"asset {asset_id}")
        asset = data.get("asset")
        url = asset.get("url") if isinstance(asset, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ScenarioBadResponse(f"Scenario's asset {asset_id} has no download URL.")
        try:
            content = await client.download(url, what=f"asset {asset_id}")
        except ContentExpired:
            if refreshed:
                raise ScenarioBadResponse(
                    f"the download link of asset {asset_id} was refused twice (403), even freshly signed. "
                    "Check the machine's clock and any proxy, then run again."
                ) from None
            refreshed = True
            log.info("signed URL of asset %s expired; fetching the asset again", asset_id)
            continue
        try:
            decoded = await asyncio.to_thread(validate, content)
        except ValueError as exc:
            if retried_bad:
                raise ScenarioBadResponse(f"the result asset {asset_id} is not a usable image: {exc}") from None
            retried_bad = True
            client.stats["bad content retries"] += 1
            continue
        return content, decoded


async def run_job(
    client: ScenarioClient,
    body: dict[str, Any],
    query: dict[str, str],
    *,
    timeout_s: float,
    validate: Callable[[bytes], Any],
    on_progress: Callable[[float], None] | None = None,
    schedule: PollSchedule | None = None,
) -> JobOutcome:
    """Run one detect job to its result bytes. Cancelling the task cancels the remote job."""
    schedule = schedule or PollSchedule()
    started = time.monotonic()
    report = on_progress or (lambda fraction: None)
    job_id: str | None = None
    status = "pending"
    polls = 0
    # The POST runs as its own task so a cancel that arrives mid-request still learns the job id
    # (and cancels it) instead of leaving a billed orphan behind.
    post = asyncio.ensure_future(client.post("/generate/detect", body, query=query, what="the detect request"))
    try:
        try:
            response = await asyncio.shield(post)
        except asyncio.CancelledError:
            try:
                late = await asyncio.wait_for(asyncio.shield(post), 2.0)
                job = late.data.get("job") if isinstance(late.data, dict) else None
                if isinstance(job, dict) and job.get("jobId"):
                    await cancel_job(client, job["jobId"])
            except BaseException:  # noqa: BLE001 - the run is being cancelled; nothing else to do
                post.cancel()
            raise
        data = response.data
        job = _job_of(data, "the detect request")
        job_id = job["jobId"]
        polled_from = time.monotonic()  # the job's clock starts when the server created it
        cost = _cost(data)
        status = job.get("status", "pending")
        log.info("Scenario detect job %s created (%s)", job_id, body.get("modality"))
        asset = data.get("asset")
        if status == "success" and isinstance(asset, dict) and asset.get("id"):
            asset_ids = [asset["id"]]
        else:
            intervals = schedule.intervals()
            progress: float | None = None
            seen_at = 0.0
            while status not in TERMINAL:
                elapsed = time.monotonic() - started
                if elapsed >= timeout_s:
                    await cancel_job(client, job_id)
                    raise ScenarioTimeout(
                        f"Scenario job {job_id} did not finish within {timeout_s:g} s (last status: {status}); "
                        "it was canceled. Raise the timeout or try again later.",
                        job_id=job_id,
                    )
                wait = schedule.next_wait(next(intervals), progress, seen_at, time.monotonic() - polled_from)
                await asyncio.sleep(min(wait, max(0.05, timeout_s - elapsed)))
                polls += 1
                job = _job_of(await client.get(f"/jobs/{job_id}", what=f"job {job_id}"), f"job {job_id}")
                status = job.get("status", "pending")  # an unknown status counts as still running
                value = job.get("progress")
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    progress = min(1.0, max(0.0, float(value)))
                    seen_at = time.monotonic() - polled_from
                    report(0.9 * progress)
            if status != "success":
                raise ScenarioJobFailed(_failure_message(job), job_id=job_id)
            asset_ids = [a for a in (job.get("metadata") or {}).get("assetIds") or [] if isinstance(a, str)]
            if not asset_ids:
                raise ScenarioBadResponse(f"Scenario job {job_id} succeeded but produced no asset.", job_id=job_id)
            if cost is None:
                cost = _cost({"job": job})
        report(0.9)
        content, decoded = await fetch_asset(client, asset_ids[0], validate)
        report(1.0)
        return JobOutcome(asset_ids, content, cost, job_id, polls, time.monotonic() - started, decoded)
    except asyncio.CancelledError:
        if job_id and status not in TERMINAL:
            await cancel_job(client, job_id)
        raise
    except ScenarioError as exc:
        if job_id and status not in TERMINAL and not isinstance(exc, ScenarioTimeout):
            await cancel_job(client, job_id)  # we stop following it: do not let it run on unseen
        if exc.job_id is None:
            exc.job_id = job_id
        raise
