"""The one entry of the Scenario backend, used by the Detect node and the CLI.

``run_scenario`` turns an IMAGE batch into control maps through ``POST /v1/generate/detect``: one
job per image, run concurrently (bounded), results in input order, resized back to each input's
size. It knows nothing about ComfyUI's graph: progress and interrupt come in as callables.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import host
from ..modalities import MODALITIES, api_fields, validation_errors
from .cache import ResultCache, cache_enabled, cache_key
from .client import RetryPolicy, ScenarioClient
from .credentials import Credentials, load_credentials
from .errors import ScenarioBatchError, ScenarioError, ScenarioRequestError
from .jobs import JobOutcome, PollSchedule, estimate, run_job, upload_image

log = logging.getLogger("scenario_detect.scenario")

# The gateway refuses bodies over about 10 MB; base64 adds a third. Up to this many PNG bytes the
# image goes inline as a data URL (about 4.7 MB of JSON), above it it is uploaded first.
INLINE_MAX_BYTES = int(3.5 * 1024 * 1024)
# POST /assets goes through the same gateway: above this the JSON body would near its cap, so the
# image is sent as a high-quality JPEG instead (detectors do not see the difference; the UI says so).
UPLOAD_MAX_BYTES = 6 * 1024 * 1024
JPEG_QUALITY = 95
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 16
DEFAULT_TIMEOUT_S = 300.0
INTERRUPT_POLL_S = 0.2


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


def _format_cost(cost: float | None) -> str:
    return "unknown" if cost is None else f"{cost:g} CU"


def _resize(frame, height: int, width: int, modality: str):
    from ..images import resize_to

    # Segmentation keeps the palette's exact class colors (no blended, meaningless colors at borders).
    return resize_to(frame, height, width, nearest=modality == "segmentation")


async def _watch_interrupt(check_interrupt: Callable[[], bool]) -> None:
    while not check_interrupt():
        await asyncio.sleep(INTERRUPT_POLL_S)


async def _gather_in_order(
    coros: list[Any], check_interrupt: Callable[[], bool] | None, labels: list[str]
) -> list[Any]:
    """Run tasks; results in input order. First failure or an interrupt cancels the rest (their
    remote jobs are cancelled by the tasks themselves) and is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    watcher = asyncio.ensure_future(_watch_interrupt(check_interrupt)) if check_interrupt else None
    pending = set(tasks)
    failure: tuple[int, BaseException] | None = None
    interrupted = False
    try:
        while pending:
            waiting = pending | ({watcher} if watcher else set())
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if watcher is not None and watcher in done:
                interrupted = True
                break
            for task in done:
                pending.discard(task)
                if task.exception() is not None and failure is None:
                    failure = (tasks.index(task), task.exception())
            if failure:
                break
    finally:
        if watcher is not None:
            watcher.cancel()
        for task in pending:
            task.cancel()
        if pending:
            # Let each task cancel its remote job; bounded so Cancel never hangs.
            await asyncio.wait(pending, timeout=10)
    if interrupted:
        raise host.Interrupted("Scenario detect interrupted; the remote jobs were canceled")
    if failure:
        index, exc = failure
        if len(tasks) == 1:
            raise exc
        message = f"Scenario detect failed on {labels[index]} of {len(tasks)}: {exc}"
        if isinstance(exc, ScenarioError):
            raise ScenarioBatchError(message, index=index, cause=exc) from None
        raise exc
    return [t.result() for t in tasks]


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

    ``asset_ids``: existing Scenario assets to process instead of uploading ``images`` (one per
    image, or any number when the batch has one image; outputs take the images' sizes).
    ``on_progress(done)`` receives the absolute progress in images (0..number of jobs).
    ``check_interrupt()`` is polled every 0.2 s; when it turns true the remote jobs are cancelled
    and :class:`host.Interrupted` is raised.
    """
    import numpy as np
    import torch

    from ..images import data_url, decode_image, encode_image, encode_png, rgb_u8, to_batch

    if modality not in MODALITIES:
        raise ScenarioRequestError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    problems = validation_errors(modality, params)
    if problems:
        raise ScenarioRequestError("; ".join(problems))
    fields = api_fields(modality, params)
    creds = credentials or load_credentials()
    batch = to_batch(images)
    frames = batch.numpy()
    count = frames.shape[0]
    ids = parse_asset_ids(asset_ids)
    if ids and count not in (1, len(ids)):
        raise ScenarioRequestError(
            f"asset_id lists {len(ids)} assets but the image batch has {count} images: give one asset id "
            "per image, or a single image."
        )
    n_jobs = len(ids) if ids else count
    sizes = [(frames[min(i, count - 1)].shape[0], frames[min(i, count - 1)].shape[1]) for i in range(n_jobs)]
    labels = [f"asset {ids[i]} (item {i + 1})" if ids else f"image {i + 1}" for i in range(n_jobs)]
    query = {"originalAssets": "true"} if original_assets else {}
    concurrency = max(1, min(MAX_CONCURRENCY, concurrency or default_concurrency()))
    if use_cache is None:
        use_cache = cache_enabled()
    store = (cache or ResultCache()) if use_cache and not dry_run else None

    u8_frames: dict[int, Any] = {}

    def pixels(i: int):
        if i not in u8_frames:
            frame = frames[i]
            u8_frames[i] = frame if frame.dtype == np.uint8 else rgb_u8(frame)
        return u8_frames[i]

    def key_of(i: int) -> str:
        if ids:
            return cache_key(modality=modality, fields=fields, original_assets=original_assets, asset_id=ids[i])
        u8 = pixels(i)
        return cache_key(
            modality=modality,
            fields=fields,
            original_assets=original_assets,
            pixels=u8.tobytes(),
            shape=tuple(u8.shape),
        )

    progress = [0.0] * n_jobs
    lock = threading.Lock()

    def report(i: int, fraction: float) -> None:
        with lock:
            progress[i] = max(progress[i], fraction)
            total = sum(progress)
        if on_progress is not None:
            on_progress(total)

    outcomes: list[JobOutcome | None] = [None] * n_jobs
    keys: list[str | None] = [None] * n_jobs
    messages: list[str] = []
    hits = 0

    def lookup(i: int) -> JobOutcome | None:
        assert store is not None
        keys[i] = key_of(i)
        cached = store.get(keys[i])
        if cached is None:
            return None
        try:
            decoded = decode_image(cached.content)
        except ValueError:
            return None  # a damaged entry: run the job again and overwrite it
        return JobOutcome(cached.asset_ids, cached.content, 0.0, None, 0, 0.0, decoded, {"cached": True})

    if store is not None:
        for i in range(n_jobs):
            outcomes[i] = await asyncio.to_thread(lookup, i)
            if outcomes[i] is not None:
                hits += 1
                report(i, 1.0)

    async def image_ref(client: ScenarioClient, i: int) -> str:
        if ids:
            return ids[i]
        data = await asyncio.to_thread(encode_png, pixels(i))
        mime, ext = "image/png", "png"
        if len(data) > upload_max_bytes:
            jpeg = await asyncio.to_thread(encode_image, pixels(i), ".jpg", JPEG_QUALITY)
            if len(jpeg) > upload_max_bytes:
                h, w = pixels(i).shape[:2]
                raise ScenarioRequestError(
                    f"{labels[i]} ({w}x{h}) is too large for Scenario's API even as JPEG "
                    f"({len(jpeg) / 1e6:.1f} MB; the request limit is about 10 MB): scale it down first."
                )
            messages.append(
                f"{labels[i]} is {len(data) / 1e6:.1f} MB as PNG, over the API's request limit: sent as "
                f"JPEG (quality {JPEG_QUALITY}, {len(jpeg) / 1e6:.1f} MB)."
            )
            data, mime, ext = jpeg, "image/jpeg", "jpg"
        url = data_url(data, mime)
        if len(data) <= inline_max_bytes:
            return url
        log.info("%s is %.1f MB: uploading it first", labels[i], len(data) / 1e6)
        return await upload_image(client, url, f"detect-input-{i + 1}.{ext}")

    semaphore = asyncio.Semaphore(concurrency)

    async def one(client: ScenarioClient, i: int) -> JobOutcome:
        async with semaphore:
            body = {"image": await image_ref(client, i), "modality": modality, **fields}
            outcome = await run_job(
                client,
                body,
                query,
                timeout_s=timeout_s,
                validate=decode_image,
                on_progress=lambda f: report(i, f),
                schedule=poll_schedule,
            )
        if store is not None and keys[i]:
            await asyncio.to_thread(store.put, keys[i], outcome.content, outcome.asset_ids, outcome.cost)
        return outcome

    todo = [i for i in range(n_jobs) if outcomes[i] is None]
    client_stats: dict[str, int] = {}
    if dry_run:
        async with ScenarioClient(creds, policy) as client:
            body = {"image": await image_ref(client, 0), "modality": modality, **fields}
            each = await estimate(client, body, query)
            client_stats = dict(client.stats)
        total = each * n_jobs
        messages.append(
            f"Estimate (dry run, nothing was run): {modality} on {n_jobs} image(s) would cost "
            f"{each:g} CU each, {total:g} CU in all."
        )
        log.info("Scenario detect estimate: %s x %d = %s CU", each, n_jobs, total)
        empty = torch.zeros((count, frames.shape[1], frames.shape[2], 3), dtype=torch.float32)
        return ScenarioResult(empty, [], total, messages, {"requests": client_stats})
    if todo:
        async with ScenarioClient(creds, policy, max_connections=concurrency * 2 + 2) as client:
            try:
                done = await _gather_in_order(
                    [one(client, i) for i in todo], check_interrupt, [labels[i] for i in todo]
                )
            finally:
                client_stats = dict(client.stats)
        for i, outcome in zip(todo, done, strict=False):
            outcomes[i] = outcome

    maps = []
    out_h, out_w = sizes[0]
    for i, outcome in enumerate(outcomes):
        assert outcome is not None
        frame = outcome.decoded
        if keep_api_size:
            if i == 0:
                out_h, out_w = frame.shape[0], frame.shape[1]
            elif frame.shape[:2] != (out_h, out_w):
                messages.append(
                    f"{labels[i]} came back at {frame.shape[1]}x{frame.shape[0]}; resized to "
                    f"{out_w}x{out_h} to fit one batch."
                )
                frame = _resize(frame, out_h, out_w, modality)
        else:
            frame = _resize(frame, sizes[i][0], sizes[i][1], modality)
        maps.append(np.ascontiguousarray(frame, dtype=np.float32))
    if not keep_api_size and len({m.shape for m in maps}) > 1:
        # Only possible with several asset ids on one image: all take that image's size.
        maps = [_resize(m, sizes[0][0], sizes[0][1], modality) for m in maps]
    tensor = torch.from_numpy(np.stack(maps))

    costs = [o.cost for o in outcomes if o is not None and not o.extra.get("cached")]
    known = [c for c in costs if c is not None]
    cost = sum(known) if known or not costs else None
    produced = [a for o in outcomes if o is not None for a in o.asset_ids]
    ran = len(todo)
    text = f"Scenario {modality}: {n_jobs} image(s)"
    if hits:
        text += f", {hits} from cache (free)"
    text += f", cost {_format_cost(cost)}"
    messages.insert(0, text)
    polls = [o.polls for o in outcomes if o is not None and not o.extra.get("cached")]
    job_ids = [o.job_id for o in outcomes if o is not None and o.job_id]
    log.info(
        "Scenario detect %s: %d job(s) run, %d cached, cost %s, jobs %s",
        modality,
        ran,
        hits,
        _format_cost(cost),
        ", ".join(job_ids) or "-",
    )
    stats = {
        "jobs_run": ran,
        "cache_hits": hits,
        "polls": polls,
        "job_ids": job_ids,
        "job_seconds": [o.seconds for o in outcomes if o is not None and not o.extra.get("cached")],
        "requests": client_stats,
    }
    return ScenarioResult(tensor, produced, cost, messages, stats)


def run_scenario_sync(*args: Any, **kwargs: Any) -> ScenarioResult:
    """Blocking form for the CLI and scripts (runs its own event loop, in a thread if one runs here)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_scenario(*args, **kwargs))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(run_scenario(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="scenario-detect")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
