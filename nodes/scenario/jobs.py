"""One detect job's life: POST -> poll adaptively -> asset -> download; plus upload, estimate and a
cancel that is retried and confirmed. :class:`RemoteJob` owns a job from its POST until it is
terminal: whatever ends the code following it (Cancel, a batch failure, ComfyUI's interrupt raised by
a progress update, ``timeout_s``, a bug), the remote job is cancelled on the way out.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import api, network_loop
from .api import TERMINAL, DetectAnswer, Job
from .client import JOBS_PAGE, ScenarioClient
from .downloads import ContentExpired
from .errors import (
    ScenarioBadResponse,
    ScenarioError,
    ScenarioMaybeSent,
    ScenarioRateLimited,
    ScenarioServerError,
    ScenarioTimeout,
    ScenarioUnreachable,
    scrub,
)

log = logging.getLogger("scenario_detect.scenario")

CANCEL_TIMEOUT_S = 5.0  # one cancel request
CANCEL_RETRY_S = 30.0  # how long a cancel is retried and re-read before it is reported unconfirmed


@dataclass
class PollSchedule:
    """When to poll: every ``first_s`` for ``steady_until_s`` (a detect job often ends within a second
    or two), then intervals growing by ``growth`` up to ``max_s``; progress may bring a poll forward."""

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
        """The planned interval, shortened to when the job should end if its progress (seen
        ``seen_at`` s after the job started; ``now`` on the same clock) is linear."""
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
    cached: bool = False  # read from the result cache: nothing was run or spent


@dataclass
class CancelResult:
    """What a cancel achieved: ``confirmed`` only when Scenario showed the job terminal afterwards."""

    job_id: str
    confirmed: bool
    status: str = "unknown"  # the last status Scenario gave for the job
    detail: str = ""  # why it is not confirmed, for the message

    @property
    def canceled(self) -> bool:
        return self.status == "canceled"

    def said(self) -> str:
        """The outcome in words, true to what Scenario confirmed."""
        if self.canceled:
            return f"job {self.job_id} was canceled (confirmed by Scenario)"
        if self.confirmed:
            return f"job {self.job_id} had already ended ({self.status}) when the cancel came"
        return (
            f"job {self.job_id} MAY STILL BE RUNNING: its cancel was not confirmed ({self.detail}); "
            f"cancel it by hand at {JOBS_PAGE} if it is"
        )


# Answers after which asking again may work; a 400/401/403/404 says the same every time.
_CANCEL_RETRYABLE = (
    ScenarioMaybeSent,
    ScenarioUnreachable,
    ScenarioServerError,
    ScenarioRateLimited,
    ScenarioBadResponse,
)


async def cancel_job(client: ScenarioClient, job_id: str, within_s: float | None = None) -> CancelResult:
    """Cancel a job and confirm it by its status. A cancel is idempotent, so unlike the detect POST
    it is retried through 5xx, 429 and transport errors for up to ``within_s``, the status re-read
    after each try; only a terminal status confirms it. Never raises: the result says what is known."""
    deadline = time.monotonic() + (CANCEL_RETRY_S if within_s is None else within_s)
    attempt = 0
    while True:
        attempt += 1
        status, retry, detail = await _try_cancel(client, job_id, deadline)
        if status in TERMINAL:
            log.info("Scenario job %s: %s after a cancel (confirmed)", job_id, status)
            return CancelResult(job_id, True, status)
        wait = client.policy.backoff(attempt) + 0.05
        if not retry or time.monotonic() + wait >= deadline:
            log.warning("could not confirm the cancel of Scenario job %s after %d tries: %s", job_id, attempt, detail)
            return CancelResult(job_id, False, status or "unknown", detail)
        client.stats["cancel retries"] += 1
        await asyncio.sleep(wait)


async def _try_cancel(client: ScenarioClient, job_id: str, deadline: float) -> tuple[str | None, bool, str]:
    """One cancel request, then one status read: (status or None, worth retrying, what went wrong)."""
    retry = True
    try:
        answer = await asyncio.wait_for(
            api.post_cancel(client, job_id, CANCEL_TIMEOUT_S),
            max(0.01, deadline - time.monotonic()),  # each request has its own timeout; 429 waits count here
        )
        if answer.terminal:
            return answer.status, False, ""
        detail = "Scenario accepted the cancel but still shows the job running"
    except asyncio.TimeoutError:
        detail = "the cancel request got no answer in time"
    except ScenarioError as exc:
        retry = isinstance(exc, _CANCEL_RETRYABLE)
        # The first sentence says what came back; the rest is the detect POST's advice, not for a cancel.
        detail = str(exc) if not retry else str(exc).split(". ")[0].rstrip(".")
    status = await _read_status(client, job_id, deadline)  # the cancel may have worked despite its answer
    return status, retry, detail


async def _read_status(client: ScenarioClient, job_id: str, deadline: float) -> str | None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    try:
        job = await asyncio.wait_for(api.get_job(client, job_id), remaining)
    except (ScenarioError, asyncio.TimeoutError):
        return None
    return job.status


async def upload_image(client: ScenarioClient, data_url: str, name: str) -> str:
    """``POST /assets`` for inputs too large to send inline; returns the new AssetId."""
    return (await api.post_upload(client, data_url, name)).id


async def estimate(client: ScenarioClient, body: dict[str, Any], query: dict[str, str]) -> float:
    """Cost of one detect job in creative units, from ``dryRun`` (HTTP 269), without running it."""
    answer = await api.post_estimate(client, body, query)
    if answer.job is not None:
        # The server ran the job instead of estimating: stop it so it costs nothing more.
        stopped = await cancel_job(client, answer.job.id)
        raise ScenarioBadResponse(f"Scenario started a job for a cost estimate (dryRun ignored); {stopped.said()}.")
    if answer.cost is None:
        raise ScenarioBadResponse("Scenario's cost estimate has no creativeUnitsCost.")
    return answer.cost


async def fetch_asset(client: ScenarioClient, asset_id: str, validate: Callable[[bytes], Any]) -> tuple[bytes, Any]:
    """Bytes of an asset; an expired signed URL (403) is refreshed once, content that ``validate``
    rejects is downloaded once more."""
    refreshed = retried_bad = False
    while True:
        url = (await api.get_asset(client, asset_id)).url
        if not url:
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


@dataclass
class _PostState:
    """Where a detect POST is: between attempts (a 429 wait, a refused connection) nothing is in
    flight, so nothing can be created; once abandoned it must not try again."""

    waiting: bool = False
    abandoned: bool = False


_post_state: contextvars.ContextVar[_PostState | None] = contextvars.ContextVar("scenario_post_state", default=None)


async def retry_sleep(seconds: float) -> None:
    """The client's wait between attempts (``ScenarioClient(sleep=...)``): marks the detect POST as
    not in flight, and ends it instead of retrying once its run was abandoned."""
    state = _post_state.get()
    if state is None:
        await asyncio.sleep(seconds)
        return
    if state.abandoned:
        raise asyncio.CancelledError("abandoned: not retried")
    state.waiting = True
    try:
        await asyncio.sleep(seconds)
    finally:
        state.waiting = False
    if state.abandoned:
        raise asyncio.CancelledError("abandoned: not retried")


class Session:
    """One run's API client, the requests that must outlive a step of it (remote cancels, a detect
    request abandoned in flight; the client closes in the background after them) and its ledger."""

    def __init__(self, client: ScenarioClient):
        self.client = client
        self._tasks: set[asyncio.Task[Any]] = set()
        self.created: dict[str, float | None] = {}  # job id -> cost Scenario quoted when it created it
        self.cancels: dict[str, CancelResult] = {}  # job id -> what its cancel achieved
        self.finished: list[str] = []  # ids of the jobs whose result was downloaded
        self.ended: set[str] = set()  # ids of the jobs seen terminal (nothing left to cancel)

    async def __aenter__(self) -> Session:
        await self.client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        pending = {t for t in self._tasks if not t.done()}
        if not pending:
            await self.client.__aexit__(None, None, None)
            return

        async def close_after() -> None:
            await asyncio.wait(pending)
            await self.client.__aexit__(None, None, None)

        network_loop.follow_up(close_after(), "closing the connection after a cancel")

    def keep(self, coro: Any, context: contextvars.Context | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` as a task this session's client stays open for."""
        task = network_loop.create_task(coro, context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel(self, job_id: str) -> CancelResult:
        """Cancel a job of this run (retried, confirmed) and remember how that went."""
        result = await cancel_job(self.client, job_id)
        self.cancels[job_id] = result
        return result


class RemoteJob:
    """Owns one detect job from its POST to a terminal state: ``async with RemoteJob(session, label)
    as job:`` then ``await job.create(body, query)``, each status seen through :meth:`observe`.
    Leaving the block for ANY reason while the job is not known terminal cancels it; a POST still in
    flight is followed to its answer in the background (bounded) and its job cancelled there."""

    def __init__(self, session: Session, label: str):
        self.session = session
        self.label = label
        self.id: str | None = None
        self.status = "not created"
        self.cost: float | None = None
        self._post: asyncio.Task[DetectAnswer] | None = None
        self._post_state = _PostState()
        self.stop_reason = "the run finished without it"  # for the log, when the block ends without an exception

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    async def create(self, body: dict[str, Any], query: dict[str, str]) -> DetectAnswer:
        """``POST /generate/detect`` as its own task: leaving while it is in flight does not drop its job."""
        client = self.session.client
        context = contextvars.copy_context()
        context.run(_post_state.set, self._post_state)
        self._post = self.session.keep(api.post_detect(client, body, query), context)
        self.status = "requested"
        answer = await asyncio.shield(self._post)
        assert answer.job is not None  # parse_detect requires it of a real run
        self.id = answer.job.id
        self.cost = answer.cost
        self.session.created[self.id] = self.cost
        self.observe(answer.job)
        log.info("Scenario detect job %s created (%s, %s)", self.id, body.get("modality"), self.label)
        return answer

    def observe(self, job: Job) -> None:
        self.status = job.status  # an unknown status counts as still running (not in TERMINAL)
        if self.id is not None and self.terminal:
            self.session.ended.add(self.id)

    async def __aenter__(self) -> RemoteJob:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self.terminal or self.status == "not created":
            return
        reason = self.stop_reason if kind is None else f"{kind.__name__}: {scrub(exc) or 'no message'}"
        if self.id is None:
            assert self._post is not None
            self._post_state.abandoned = True  # no new attempt from now on
            if not self._post.done() and self._post_state.waiting:
                self._post.cancel()
                log.info("Scenario detect request for %s stopped between tries (%s): no job exists", self.label, reason)
                return
            if not self._post.done():
                log.warning("Scenario detect request for %s abandoned in flight (%s): following it in the "
                            "background to cancel the job it creates", self.label, reason)
                self.session.keep(self._cancel_when_created(self._post))
                return
            if self._post.cancelled() or self._post.exception() is not None:
                return  # the POST failed: its error says whether a job may exist (ScenarioMaybeSent)
            answered = self._post.result()
            if answered.job is None:
                return
            self.id = answered.job.id
            self.session.created[self.id] = answered.cost
        log.warning("Scenario job %s (%s) left while %s (%s): canceling it", self.id, self.label, self.status, reason)
        await asyncio.shield(self.session.keep(self.session.cancel(self.id)))

    async def _cancel_when_created(self, post: asyncio.Task[DetectAnswer]) -> None:
        wait = self.session.client.policy.connect_timeout_s + self.session.client.policy.read_timeout_s
        try:
            answer = await asyncio.wait_for(asyncio.shield(post), wait)
        except asyncio.TimeoutError:
            post.cancel()
            log.warning("the abandoned detect request for %s got no answer within %.0f s; if it created a job, "
                        "that job was not canceled: check your jobs at %s", self.label, wait, JOBS_PAGE)
            return
        except BaseException as exc:  # noqa: BLE001 - the request failed: no job id to cancel
            if post.cancelled():
                log.info("the abandoned detect request for %s was not tried again: no job exists", self.label)
            else:
                log.info("the abandoned detect request for %s failed (%s): no job to cancel", self.label, scrub(exc))
            return
        if answer.job is None or answer.job.terminal:
            return
        job_id = answer.job.id
        log.warning("Scenario job %s (%s) was created after the run stopped: canceling it", job_id, self.label)
        self.session.created[job_id] = answer.cost
        await self.session.cancel(job_id)


async def poll_until_terminal(
    client: ScenarioClient,
    job: RemoteJob,
    schedule: PollSchedule,
    report: Callable[[float], None],
) -> tuple[Job, int]:
    """Poll ``GET /jobs/{id}`` (adaptively) until the job is terminal; (the last job seen, polls)."""
    assert job.id is not None
    created_at = time.monotonic()  # the job's clock starts when the server answered the POST
    intervals = schedule.intervals()
    progress: float | None = None
    seen_at = 0.0
    polls = 0
    seen: Job | None = None
    while seen is None or not seen.terminal:
        await asyncio.sleep(schedule.next_wait(next(intervals), progress, seen_at, time.monotonic() - created_at))
        polls += 1
        seen = await api.get_job(client, job.id)
        job.observe(seen)
        if seen.progress is not None:
            progress = seen.progress
            seen_at = time.monotonic() - created_at
            report(0.9 * progress)  # in ComfyUI this may raise the host's interrupt exception
    return seen, polls


async def run_job(
    session: Session,
    body: dict[str, Any] | Awaitable[dict[str, Any]],
    query: dict[str, str],
    *,
    timeout_s: float,
    validate: Callable[[bytes], Any],
    on_progress: Callable[[float], None] | None = None,
    schedule: PollSchedule | None = None,
    label: str = "image 1",
) -> JobOutcome:
    """One detect job to its result bytes within ``timeout_s`` (upload, POST, polls, waits, retries,
    download); whatever ends it early, its :class:`RemoteJob` cancels the remote job."""
    report = on_progress or (lambda fraction: None)
    started = time.monotonic()
    async with RemoteJob(session, label) as job:
        steps = _job_steps(job, body, query, validate, report, schedule or PollSchedule())
        try:
            asset_ids, content, decoded, polls = await asyncio.wait_for(steps, timeout_s)
        except asyncio.TimeoutError:
            job.stop_reason = f"timeout_s ({timeout_s:g} s) passed"
            asset_ids = []  # leaving the block cancels the job; the error below says how that went
        except ScenarioError as exc:
            if exc.job_id is None:
                exc.job_id = job.id
            raise
    if not asset_ids:
        raise ScenarioTimeout(_timeout_message(job, timeout_s), job_id=job.id)
    if job.id is not None:
        session.finished.append(job.id)
    report(1.0)
    return JobOutcome(asset_ids, content, job.cost, job.id, polls, time.monotonic() - started, decoded)


async def _job_steps(
    job: RemoteJob,
    body: dict[str, Any] | Awaitable[dict[str, Any]],
    query: dict[str, str],
    validate: Callable[[bytes], Any],
    report: Callable[[float], None],
    schedule: PollSchedule,
) -> tuple[list[str], bytes, Any, int]:
    """(result asset ids, the first one's bytes, its decoded image, polls)."""
    client = job.session.client
    polls = 0
    if not isinstance(body, dict):
        body = await body  # the image's upload, when it is too large to send inline
    finished = (await job.create(body, query)).finished_asset()
    if finished is not None:
        asset_ids = [finished]  # answered finished: nothing to poll
    else:
        final, polls = await poll_until_terminal(client, job, schedule, report)
        asset_ids = final.results()
        if job.cost is None:
            job.cost = final.cost
    report(0.9)
    content, decoded = await fetch_asset(client, asset_ids[0], validate)
    return asset_ids, content, decoded, polls


def _timeout_message(job: RemoteJob, timeout_s: float) -> str:
    if job.status == "not created":
        return (
            f"{job.label} was not uploaded to Scenario within timeout_s ({timeout_s:g} s); no job was "
            "created. Raise timeout_s, send a smaller image or check the network."
        )
    if job.id is None:
        return (
            f"Scenario did not answer the detect request for {job.label} within timeout_s ({timeout_s:g} s); "
            "if it still creates the job, that job is sent a cancel as soon as its id arrives (the log says "
            f"whether it was canceled; {JOBS_PAGE} lists your jobs). Raise timeout_s or try again later."
        )
    if job.terminal:
        return (
            f"the result of Scenario job {job.id} was not downloaded within timeout_s ({timeout_s:g} s). "
            "Raise timeout_s or check the network."
        )
    cancel = job.session.cancels.get(job.id)
    outcome = cancel.said() if cancel else f"job {job.id} was sent a cancel"
    return (
        f"Scenario job {job.id} did not finish within timeout_s ({timeout_s:g} s; last status: {job.status}); "
        f"{outcome}. Raise timeout_s or try again later."
    )
