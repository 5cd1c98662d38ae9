"""The Scenario backend's one entry (node and CLI): ``run_scenario`` turns an IMAGE batch into
control maps through ``POST /v1/generate/detect``, one job per image, concurrently (bounded), results
in input order at each input's size. ComfyUI's progress and interrupt come in as callables. Steps:
:func:`plan_jobs`, :class:`Inputs`, :func:`cached_outcomes`, :func:`run_jobs`, :func:`assemble_maps`,
:func:`cost_line`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .. import host
from ..modalities import MODALITIES, api_fields, validation_errors
from . import network_loop
from .cache import ResultCache, cache_enabled, cache_key
from .client import JOBS_PAGE, RetryPolicy, ScenarioClient
from .credentials import Credentials, load_credentials
from .errors import ScenarioBatchError, ScenarioError, ScenarioRequestError, ScenarioTimeout
from .jobs import JobOutcome, PollSchedule, Session, estimate, retry_sleep, run_job, upload_image

log = logging.getLogger("scenario_detect.scenario")

# The gateway refuses bodies over about 10 MB and base64 adds a third: up to this many PNG bytes go
# inline as a data URL, more are uploaded first; over the upload cap the image goes as a JPEG.
INLINE_MAX_BYTES = int(3.5 * 1024 * 1024)
UPLOAD_MAX_BYTES = 6 * 1024 * 1024
JPEG_QUALITY = 95
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 16
DEFAULT_TIMEOUT_S = 300.0
INTERRUPT_POLL_S = 0.05  # how often the Cancel flag is read: most of the delay before the cancel request
STOP_WAIT_S = 10.0  # how long a stopped batch waits for its jobs' cancel requests
RUN_DEADLINE_MARGIN_S = 60.0  # a run's hand-off ends this long after its jobs' timeouts at most


@dataclass
class ScenarioResult:
    images: Any  # torch.Tensor [B, H, W, 3] float32 0..1
    asset_ids: list[str]
    cost_units: float | None  # creative units spent (or estimated, for a dry run); None if unknown
    messages: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)  # polls per job, cache hits, request counts


def default_concurrency() -> int:
    try:
        value = int(os.environ.get("SCENARIO_DETECT_CONCURRENCY", DEFAULT_CONCURRENCY))
    except ValueError:
        value = DEFAULT_CONCURRENCY
    return max(1, min(MAX_CONCURRENCY, value))


def parse_asset_ids(text: str | list[str] | None) -> list[str]:
    """Asset ids from a widget string: separated by commas, spaces or new lines."""
    if not text:
        return []
    if isinstance(text, str):
        text = text.replace(",", " ").split()
    return [t.strip() for t in text if t and t.strip()]


# -- step 1: what to run ---------------------------------------------------------------------------


@dataclass
class JobPlan:
    """The validated request: one job per image (or per asset id), with its label and output size."""

    modality: str
    fields: dict[str, Any]  # the API fields of the modality's parameters
    query: dict[str, str]
    frames: Any  # numpy [B, H, W, C] of the input batch
    asset_ids: list[str]  # existing assets to process instead of uploading the frames
    original_assets: bool

    @property
    def count(self) -> int:
        return len(self.asset_ids) if self.asset_ids else self.frames.shape[0]

    def size(self, i: int) -> tuple[int, int]:
        frame = self.frames[min(i, self.frames.shape[0] - 1)]
        return frame.shape[0], frame.shape[1]

    def label(self, i: int) -> str:
        return f"asset {self.asset_ids[i]} (item {i + 1})" if self.asset_ids else f"image {i + 1}"


def plan_jobs(
    images: Any, modality: str, params: dict[str, Any], asset_ids: list[str] | str | None, original_assets: bool
) -> JobPlan:
    """Check the request before anything is sent; raises ScenarioRequestError saying what to fix."""
    from ..images import to_batch

    if modality not in MODALITIES:
        raise ScenarioRequestError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    problems = validation_errors(modality, params)
    if problems:
        raise ScenarioRequestError("; ".join(problems))
    frames = to_batch(images).numpy()
    ids = parse_asset_ids(asset_ids)
    if ids and frames.shape[0] not in (1, len(ids)):
        raise ScenarioRequestError(
            f"asset_id lists {len(ids)} assets but the image batch has {frames.shape[0]} images: give one asset id "
            "per image, or a single image."
        )
    query = {"originalAssets": "true"} if original_assets else {}
    return JobPlan(modality, api_fields(modality, params), query, frames, ids, original_assets)


# -- step 2: the image each job sends --------------------------------------------------------------


class Inputs:
    """Each job's image reference: an asset id, an inline data URL, or an upload (large images),
    as PNG or, over the request limit, as JPEG (said in ``messages``)."""

    def __init__(self, plan: JobPlan, inline_max_bytes: int, upload_max_bytes: int):
        self.plan = plan
        self.inline_max_bytes = inline_max_bytes
        self.upload_max_bytes = upload_max_bytes
        self.messages: list[str] = []
        self._u8: dict[int, Any] = {}

    def pixels(self, i: int) -> Any:
        """The i-th frame as uint8 RGB (converted once)."""
        import numpy as np

        from ..images import rgb_u8

        if i not in self._u8:
            frame = self.plan.frames[i]
            self._u8[i] = frame if frame.dtype == np.uint8 else rgb_u8(frame)
        return self._u8[i]

    def cache_key(self, i: int, credentials: Credentials) -> str:
        plan = self.plan
        # The API address and account are in the key: results are not shared across them.
        common = {"credentials": credentials, "modality": plan.modality, "fields": plan.fields,
                  "original_assets": plan.original_assets}
        if plan.asset_ids:
            return cache_key(**common, asset_id=plan.asset_ids[i])
        u8 = self.pixels(i)
        return cache_key(**common, pixels=u8.tobytes(), shape=tuple(u8.shape))

    async def encoded(self, i: int) -> tuple[bytes, str, str]:
        """(bytes, mime type, extension): PNG, or JPEG when the PNG is over the upload limit."""
        from ..images import encode_image, encode_png

        data = await asyncio.to_thread(encode_png, self.pixels(i))
        if len(data) <= self.upload_max_bytes:
            return data, "image/png", "png"
        jpeg = await asyncio.to_thread(encode_image, self.pixels(i), ".jpg", JPEG_QUALITY)
        label = self.plan.label(i)
        if len(jpeg) > self.upload_max_bytes:
            h, w = self.pixels(i).shape[:2]
            raise ScenarioRequestError(
                f"{label} ({w}x{h}) is too large for Scenario's API even as JPEG "
                f"({len(jpeg) / 1e6:.1f} MB; the request limit is about 10 MB): scale it down first."
            )
        self.messages.append(
            f"{label} is {len(data) / 1e6:.1f} MB as PNG, over the API's request limit: sent as "
            f"JPEG (quality {JPEG_QUALITY}, {len(jpeg) / 1e6:.1f} MB)."
        )
        return jpeg, "image/jpeg", "jpg"

    async def reference(self, client: ScenarioClient, i: int) -> str:
        """What goes in the detect body's ``image``: asset id, data URL, or the id of an upload."""
        from ..images import data_url

        if self.plan.asset_ids:
            return self.plan.asset_ids[i]
        data, mime, ext = await self.encoded(i)
        url = data_url(data, mime)
        if len(data) <= self.inline_max_bytes:
            return url
        log.info("%s is %.1f MB: uploading it first", self.plan.label(i), len(data) / 1e6)
        return await upload_image(client, url, f"detect-input-{i + 1}.{ext}")

    async def body(self, client: ScenarioClient, i: int) -> dict[str, Any]:
        return {"image": await self.reference(client, i), "modality": self.plan.modality, **self.plan.fields}


# -- step 3: results already paid for --------------------------------------------------------------


async def cached_outcomes(
    store: ResultCache, inputs: Inputs, credentials: Credentials
) -> tuple[list[JobOutcome | None], list[str]]:
    """(outcome or None per job, cache key per job). A damaged entry counts as a miss."""
    from ..images import decode_image

    def lookup(i: int) -> tuple[JobOutcome | None, str]:
        key = inputs.cache_key(i, credentials)
        cached = store.get(key)
        if cached is None:
            return None, key
        try:
            decoded = decode_image(cached.content)
        except ValueError:
            return None, key  # run the job again; its result overwrites the entry
        return JobOutcome(cached.asset_ids, cached.content, 0.0, None, 0, 0.0, decoded, cached=True), key

    found = [await asyncio.to_thread(lookup, i) for i in range(inputs.plan.count)]
    return [o for o, _ in found], [k for _, k in found]


# -- step 4: the jobs, concurrently ----------------------------------------------------------------


class Progress:
    """Per-job fractions summed into the absolute progress ``on_progress`` receives (0..jobs)."""

    def __init__(self, count: int, on_progress: Callable[[float], None] | None):
        self.fractions = [0.0] * count
        self.on_progress = on_progress
        self._lock = threading.Lock()

    def report(self, i: int, fraction: float) -> None:
        with self._lock:
            self.fractions[i] = max(self.fractions[i], fraction)
            total = sum(self.fractions)
        if self.on_progress is not None:
            self.on_progress(total)  # ComfyUI's hook raises its interrupt exception here after Cancel

    def of(self, i: int) -> Callable[[float], None]:
        return lambda fraction: self.report(i, fraction)


def interrupt_poll_s() -> float:
    """``SCENARIO_DETECT_INTERRUPT_POLL_S`` or 0.05 s (tests set it large to leave Cancel to the host's hook)."""
    try:
        return max(0.01, float(os.environ.get("SCENARIO_DETECT_INTERRUPT_POLL_S", INTERRUPT_POLL_S)))
    except ValueError:
        return INTERRUPT_POLL_S


async def _watch_interrupt(check_interrupt: Callable[[], bool]) -> None:
    every = interrupt_poll_s()
    while not check_interrupt():
        await asyncio.sleep(every)


async def watch_tasks(coros: list[Any], check_interrupt: Callable[[], bool] | None) -> list[Any]:
    """Run the coroutines as tasks to their results. An exception escaping one (a bug, the host's
    interrupt raised by a progress update) or the interrupt flag cancels the others (each RemoteJob
    then cancels its remote job) and is raised (``host.Interrupted`` for the flag)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    watcher = asyncio.ensure_future(_watch_interrupt(check_interrupt)) if check_interrupt else None
    pending = set(tasks)
    failure: BaseException | None = None
    interrupted = False
    try:
        while pending and failure is None and not interrupted:
            done, _ = await asyncio.wait(pending | ({watcher} if watcher else set()), return_when="FIRST_COMPLETED")
            interrupted = watcher in done
            for task in sorted(done - {watcher}, key=tasks.index):
                pending.discard(task)
                if failure is None and not task.cancelled() and task.exception() is not None:
                    failure = task.exception()
    finally:
        if watcher is not None:
            watcher.cancel()
        for task in pending:
            task.cancel()
        if pending:
            # Let each task cancel its remote job; bounded (longer cancels go on in the background).
            await asyncio.wait(pending, timeout=STOP_WAIT_S)
        for task in tasks:  # the first failure is raised; later ones are consequences, not news
            if task.done() and not task.cancelled():
                task.exception()
    if interrupted:
        raise host.Interrupted("Scenario detect interrupted")
    if failure is not None:
        raise failure
    return [task.result() for task in tasks]


@dataclass
class BatchOutcome:
    """What a batch's jobs came to, by index into the plan."""

    done: dict[int, JobOutcome] = field(default_factory=dict)
    failed: dict[int, ScenarioError] = field(default_factory=dict)
    not_started: list[int] = field(default_factory=list)  # an earlier image failed first


@dataclass
class RunSettings:
    concurrency: int
    timeout_s: float
    check_interrupt: Callable[[], bool] | None
    poll_schedule: PollSchedule | None
    policy: RetryPolicy | None


async def run_jobs(
    session: Session,
    inputs: Inputs,
    todo: list[int],
    settings: RunSettings,
    progress: Progress,
    on_done: Callable[[int, JobOutcome], Awaitable[None]],
) -> BatchOutcome:
    """The jobs of ``todo``, at most ``concurrency`` at a time; each result goes to ``on_done`` the
    moment its job succeeds. After a failure, running jobs go on (they are paid for) and the others
    are not started; failures are returned, not raised."""
    from ..images import decode_image

    semaphore = asyncio.Semaphore(settings.concurrency)
    plan = inputs.plan
    batch = BatchOutcome()

    async def one(i: int) -> None:
        async with semaphore:
            if batch.failed:
                batch.not_started.append(i)
                return
            try:
                outcome = await run_job(
                    session,
                    inputs.body(session.client, i),  # awaited inside the job's timeout
                    plan.query,
                    timeout_s=settings.timeout_s,
                    validate=decode_image,
                    on_progress=progress.of(i),
                    schedule=settings.poll_schedule,
                    label=plan.label(i),
                )
            except ScenarioError as exc:
                batch.failed[i] = exc
                return
            batch.done[i] = outcome
            await on_done(i, outcome)

    await watch_tasks([one(i) for i in todo], settings.check_interrupt)
    return batch


# -- step 5: the output batch ----------------------------------------------------------------------


def assemble_maps(plan: JobPlan, outcomes: list[JobOutcome], keep_api_size: bool) -> tuple[Any, list[str]]:
    """One [B, H, W, 3] tensor: each map at its input's size, or all at the first result's size
    (``keep_api_size``); plus a message per map that had to be resized to fit the batch."""
    import numpy as np
    import torch

    from ..images import resize_to

    messages: list[str] = []
    if keep_api_size:
        height, width = outcomes[0].decoded.shape[:2]
    maps = []
    for i, outcome in enumerate(outcomes):
        frame = outcome.decoded
        if not keep_api_size:
            # Several asset ids on one image: all take that image's size.
            height, width = plan.size(i)
        elif frame.shape[:2] != (height, width):
            messages.append(
                f"{plan.label(i)} came back at {frame.shape[1]}x{frame.shape[0]}; resized to "
                f"{width}x{height} to fit one batch."
            )
        if frame.shape[:2] != (height, width):
            # Segmentation keeps the palette's exact class colors (nearest: no blended colors at borders).
            frame = resize_to(frame, height, width, nearest=plan.modality == "segmentation")
        maps.append(np.ascontiguousarray(frame, dtype=np.float32))
    return torch.from_numpy(np.stack(maps)), messages


# -- step 6: what it cost --------------------------------------------------------------------------


def cost_line(costs: list[float | None]) -> tuple[float | None, str]:
    """(total, text) for the jobs run: a partial sum is never shown as the total.
    ``[2, 2, None]`` -> ``(4.0, "at least 4 CU; 1 job's cost unknown")``."""
    known = [c for c in costs if c is not None]
    unknown = len(costs) - len(known)
    if not unknown:
        return float(sum(known)), f"{sum(known):g} CU"
    if not known:
        return None, "unknown"
    jobs = "1 job's" if unknown == 1 else f"{unknown} jobs'"
    return None, f"at least {sum(known):g} CU; {jobs} cost unknown"


# -- the entry -------------------------------------------------------------------------------------


async def run_scenario(
    images: Any,
    modality: str,
    params: dict[str, Any],
    *,
    asset_ids: list[str] | str | None = None,
    original_assets: bool = False,
    keep_api_size: bool = False,
    dry_run: bool = False,
    concurrency: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_progress: Callable[[float], None] | None = None,
    check_interrupt: Callable[[], bool] | None = None,
    credentials: Credentials | None = None,
    use_cache: bool | None = None,
    cache: ResultCache | None = None,
    policy: RetryPolicy | None = None,
    poll_schedule: PollSchedule | None = None,
    inline_max_bytes: int = INLINE_MAX_BYTES,
    upload_max_bytes: int = UPLOAD_MAX_BYTES,
) -> ScenarioResult:
    """Control maps for ``images`` ([B, H, W, C] float 0..1) computed by Scenario.

    ``asset_ids``: existing assets to process instead of uploading (one per image, or any number
    for one image). ``timeout_s`` bounds each job from its start. ``on_progress(done)`` gets the
    progress in images; when ``check_interrupt()`` turns true the remote jobs are cancelled and
    :class:`host.Interrupted` is raised. Requests run on the pack's ``network_loop``. ``policy``,
    ``poll_schedule``, ``cache`` and the byte limits are for tests and benchmarks."""
    plan = plan_jobs(images, modality, params, asset_ids, original_assets)
    creds = credentials or load_credentials()
    inputs = Inputs(plan, inline_max_bytes, upload_max_bytes)
    if dry_run:
        return await estimate_batch(plan, inputs, creds, policy, timeout_s, check_interrupt)
    store = (cache or ResultCache()) if (cache_enabled() if use_cache is None else use_cache) else None
    progress = Progress(plan.count, on_progress)
    outcomes: list[JobOutcome | None] = [None] * plan.count
    keys: list[str] = []
    if store is not None:
        outcomes, keys = await cached_outcomes(store, inputs, creds)
        for i, outcome in enumerate(outcomes):
            if outcome is not None:
                progress.report(i, 1.0)
    todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
    requests: dict[str, int] = {}
    if todo:
        concurrency = max(1, min(MAX_CONCURRENCY, concurrency or default_concurrency()))
        settings = RunSettings(concurrency, timeout_s, check_interrupt, poll_schedule, policy)
        batch, requests = await run_remote(inputs, creds, todo, keys, store, progress, settings)
        for i, outcome in batch.done.items():
            outcomes[i] = outcome
    return summarize(plan, [o for o in outcomes if o is not None], keep_api_size, len(todo), inputs.messages, requests)


async def run_remote(
    inputs: Inputs,
    creds: Credentials,
    todo: list[int],
    keys: list[str],
    store: ResultCache | None,
    progress: Progress,
    settings: RunSettings,
) -> tuple[BatchOutcome, dict[str, int]]:
    """The jobs of ``todo`` on the network loop (with a deadline), each result cached as it comes.
    A failure, Cancel or stop raises, saying what was kept and spent."""
    client = ScenarioClient(creds, settings.policy, max_connections=settings.concurrency * 2 + 2, sleep=retry_sleep)
    session = Session(client)

    async def keep(i: int, outcome: JobOutcome) -> None:
        if store is not None:  # the moment it succeeded: a later failure of the batch cannot lose it
            await asyncio.to_thread(store.put, keys[i], outcome.content, outcome.asset_ids, outcome.cost)

    async def remote() -> BatchOutcome:
        async with session:
            return await run_jobs(session, inputs, todo, settings, progress, on_done=keep)

    waves = -(-len(todo) // settings.concurrency)
    try:
        batch = await network_loop.run_here(remote(), deadline_s=settings.timeout_s * waves + RUN_DEADLINE_MARGIN_S)
    except BaseException as exc:  # Cancel, the host's interrupt, the deadline: say what it cost
        how = "interrupted" if isinstance(exc, host.Interrupted) else f"stopped ({type(exc).__name__})"
        message = stopped_message(session, store is not None, how)
        log.warning("%s", message)
        if isinstance(exc, host.Interrupted):
            raise host.Interrupted(message) from None
        raise
    if batch.failed:
        raise failed_batch_error(inputs.plan, batch, session, store is not None)
    return batch, dict(client.stats)


def spent_so_far(session: Session, finished: list[str]) -> str:
    """What a stopped or failed run cost: finished jobs' costs, and what Scenario quoted for the
    unfinished ones (it may or may not bill those)."""
    created = list(session.created.items())  # a copy: the network loop may still be adding to it
    if not created:
        return "Nothing was spent: no job was created."
    done = [cost for job_id, cost in created if job_id in finished]
    other = [cost for job_id, cost in created if job_id not in finished]
    text = f"Spent so far: {cost_line(done)[1]} for {len(done)} finished job(s)" if done else "Spent so far: "
    if other:
        text += "; " if done else ""
        text += f"{len(other)} unfinished job(s) quoted {cost_line(other)[1]} (Scenario may bill them)"
    return text + "."


def _kept_text(count: int, cached: bool) -> str:
    if not count:
        return "No map finished."
    if cached:
        return (
            f"{count} finished map(s) were kept in the result cache: running again only sends the images "
            "that did not finish."
        )
    return f"{count} map(s) finished but were not kept (the result cache is off: SCENARIO_DETECT_CACHE=0)."


def _cancels_text(session: Session) -> str:
    """Each job's cancel, true to what Scenario confirmed."""
    cancels = dict(session.cancels)
    lines = [result.said() for result in cancels.values()]
    ended = set(session.ended)
    pending = [j for j in list(session.created) if j not in cancels and j not in ended]
    if pending:
        lines.append(
            f"job(s) {', '.join(pending)}: cancel still being tried in the background; they MAY STILL BE RUNNING "
            f"(check {JOBS_PAGE})"
        )
    return "; ".join(lines)


def stopped_message(session: Session, cached: bool, how: str = "interrupted") -> str:
    """What a stopped run did: each job's cancel as confirmed, what was kept and spent."""
    cancels = _cancels_text(session)
    text = f"Scenario detect {how}" + (f": {cancels}." if cancels else ".")
    return f"{text} {_kept_text(len(session.finished), cached)} {spent_so_far(session, session.finished)}"


def failed_batch_error(plan: JobPlan, batch: BatchOutcome, session: Session, cached: bool) -> ScenarioError:
    """One image: its own error; several: which failed and why, what was kept, what it cost."""
    index, first = min(batch.failed.items())
    tail = f" {spent_so_far(session, session.finished)}"
    if plan.count == 1:
        first.extend_message(tail)
        return first
    reasons = "; ".join(f"{plan.label(i)} of {plan.count}: {exc}" for i, exc in sorted(batch.failed.items()))
    skipped = f" {len(batch.not_started)} image(s) were not started after the failure." if batch.not_started else ""
    message = (
        f"Scenario detect failed on {len(batch.failed)} of {plan.count} image(s): {reasons}.{skipped} "
        f"{_kept_text(len(batch.done), cached)}{tail}"
    )
    return ScenarioBatchError(message, index=index, cause=first)


def summarize(
    plan: JobPlan,
    outcomes: list[JobOutcome],
    keep_api_size: bool,
    ran: int,
    messages: list[str],
    requests: dict[str, int],
) -> ScenarioResult:
    """The result: maps, asset ids, cost (see :func:`cost_line`), the node's text and stats."""
    tensor, resized = assemble_maps(plan, outcomes, keep_api_size)
    fresh = [o for o in outcomes if not o.cached]
    cost, cost_text = cost_line([o.cost for o in fresh])
    hits = len(outcomes) - len(fresh)
    text = f"Scenario {plan.modality}: {plan.count} image(s)"
    if hits:
        text += f", {hits} from cache (free)"
    text += f", cost {cost_text}"
    job_ids = [o.job_id for o in fresh if o.job_id]
    jobs = ", ".join(job_ids) or "-"
    log.info("Scenario detect %s: %d job(s) run, %d cached, cost %s, jobs %s",
             plan.modality, ran, hits, cost_text, jobs)
    stats = {"jobs_run": ran, "cache_hits": hits, "polls": [o.polls for o in fresh], "job_ids": job_ids,
             "job_seconds": [o.seconds for o in fresh], "requests": requests}
    produced = [a for o in outcomes for a in o.asset_ids]
    return ScenarioResult(tensor, produced, cost, [text, *messages, *resized], stats)


async def estimate_batch(
    plan: JobPlan,
    inputs: Inputs,
    creds: Credentials,
    policy: RetryPolicy | None,
    timeout_s: float,
    check_interrupt: Callable[[], bool] | None,
) -> ScenarioResult:
    """A dry run: the ``dryRun`` cost of one job times the number of jobs; nothing runs. Bounded
    by ``timeout_s`` and stopped by the interrupt like a run."""
    import torch

    async def ask() -> tuple[float, dict[str, int]]:
        async with ScenarioClient(creds, policy) as client:
            try:
                return await estimate(client, await inputs.body(client, 0), plan.query), dict(client.stats)
            except asyncio.CancelledError:
                log.info("Scenario cost estimate stopped (nothing is created by an estimate)")
                raise

    async def bounded() -> tuple[float, dict[str, int]]:
        try:
            return (await asyncio.wait_for(watch_tasks([ask()], check_interrupt), timeout_s))[0]
        except asyncio.TimeoutError:
            raise ScenarioTimeout(
                f"Scenario's cost estimate did not come within timeout_s ({timeout_s:g} s); nothing was run. "
                "Raise timeout_s or try again later."
            ) from None

    each, requests = await network_loop.run_here(bounded(), deadline_s=timeout_s + RUN_DEADLINE_MARGIN_S)
    total = each * plan.count
    said = f"{plan.modality} on {plan.count} image(s) would cost {each:g} CU each, {total:g} CU in all."
    inputs.messages.insert(0, f"Estimate (dry run, nothing was run): {said}")
    log.info("Scenario detect estimate: %s x %d = %s CU", each, plan.count, total)
    empty = torch.zeros((*plan.frames.shape[:3], 3), dtype=torch.float32)
    return ScenarioResult(empty, [], total, inputs.messages, {"requests": requests})


def run_scenario_sync(*args: Any, **kwargs: Any) -> ScenarioResult:
    """Blocking form for the CLI and scripts (its own event loop, in a thread if one runs here)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_scenario(*args, **kwargs))
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="scenario-detect") as pool:
        return pool.submit(lambda: asyncio.run(run_scenario(*args, **kwargs))).result()
