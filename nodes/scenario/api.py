"""The edge: each Scenario endpoint the node calls, its answer parsed once into a typed record.

Above this module (``jobs``, ``backend``) there are only :class:`Job`, :class:`Asset` and
:class:`DetectAnswer`; below it (``client``) only HTTP. A wrong-typed or missing required field is
one :class:`ScenarioBadResponse` naming the call and the field (never the value: it may be a signed
URL). An unknown job status is kept and counts as still running (the API may add statuses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from .client import JOBS_PAGE, ScenarioClient
from .errors import ScenarioBadResponse, ScenarioJobFailed, scrub
from .urls import api_path

DETECT = "/generate/detect"
TERMINAL = frozenset({"success", "failure", "canceled"})


class _Fields:
    """Typed reads from one JSON object of an answer; each mistake raises the same clear error."""

    def __init__(self, data: Any, what: str, where: str):
        self.what, self.where = what, where
        if not isinstance(data, dict):
            self.fail(f"{where} is {_kind(data)}, not an object")
        self.data: dict[str, Any] = data

    def fail(self, problem: str) -> NoReturn:
        raise ScenarioBadResponse(
            f"Scenario's answer to {self.what} is not what the API documents ({problem}); it was not used. "
            "A proxy may be rewriting the answers, or SCENARIO_BASE_URL points at another service."
        )

    def _get(self, name: str, ok: Any, expected: str) -> Any:
        value = self.data.get(name)
        if value is not None and not ok(value):
            self.fail(f"{self.where}.{name} is {_kind(value)}, not {expected}")
        return value

    def text(self, name: str) -> str | None:
        return self._get(name, lambda v: isinstance(v, str) and v, "a non-empty string")

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            self.fail(f"{self.where}.{name} is missing, not a non-empty string")
        return value

    def number(self, name: str) -> float | None:
        value = self._get(name, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number")
        return None if value is None else float(value)

    def texts(self, name: str) -> tuple[str, ...]:
        ok = lambda v: isinstance(v, list) and all(isinstance(s, str) and s for s in v)  # noqa: E731
        return tuple(self._get(name, ok, "a list of ids") or ())

    def child(self, name: str, required: bool = False) -> _Fields | None:
        value = self.data.get(name)
        return None if value is None and not required else _Fields(value, self.what, f"{self.where}.{name}")


def _kind(value: Any) -> str:
    return "missing" if value is None else f"a JSON {type(value).__name__}"


@dataclass(frozen=True)
class Job:
    """``job`` of an answer: id, status, progress (0..1), what it cost, its results or its error."""

    id: str
    status: str
    progress: float | None = None
    cost: float | None = None  # billing.cuCost, in creative units
    asset_ids: tuple[str, ...] = ()  # metadata.assetIds: the results, on success
    error: str | None = None  # metadata.error, on failure
    hint: str | None = None  # metadata.hint, on failure

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def results(self) -> list[str]:
        """The result asset ids of a terminal job, or the error that says why there are none."""
        if self.status == "canceled":
            raise ScenarioJobFailed(
                f"Scenario job {self.id} was canceled on Scenario's side before it finished; run the node again.",
                job_id=self.id,
            )
        if self.status != "success":
            text = f"Scenario job {self.id} failed: {self.error or 'no reason given'}"
            raise ScenarioJobFailed(scrub(text + (f". Hint: {self.hint}" if self.hint else "")), job_id=self.id)
        if not self.asset_ids:
            raise ScenarioBadResponse(f"Scenario job {self.id} succeeded but produced no asset.", job_id=self.id)
        return list(self.asset_ids)


@dataclass(frozen=True)
class Asset:
    """``asset`` of an answer: its id, the signed download URL (a secret: never logged) and type."""

    id: str
    url: str | None = None
    mime_type: str | None = None

    def __repr__(self) -> str:  # the URL is signed: keep it out of logs and tracebacks
        return f"Asset(id={self.id!r}, mime_type={self.mime_type!r})"


@dataclass(frozen=True)
class DetectAnswer:
    """A detect answer: the job (None for a ``dryRun`` estimate), the result asset when it came
    back finished, and the cost (``creativeUnitsCost``, else the job's ``billing.cuCost``)."""

    job: Job | None
    asset: Asset | None
    cost: float | None

    def finished_asset(self) -> str | None:
        """The result asset id when the answer needs no polling (a finished job with its asset)."""
        if self.job is not None and self.job.status == "success" and self.asset is not None:
            return self.asset.id
        return None


def _job(fields: _Fields) -> Job:
    meta, billing = fields.child("metadata"), fields.child("billing")
    progress = fields.number("progress")
    return Job(
        id=fields.required("jobId"),
        status=fields.required("status"),
        progress=None if progress is None else min(1.0, max(0.0, progress)),
        cost=billing.number("cuCost") if billing else None,
        asset_ids=meta.texts("assetIds") if meta else (),
        error=_message(meta, "error"),
        hint=_message(meta, "hint"),
    )


def _message(meta: _Fields | None, name: str) -> str | None:
    """A failure's error or hint: text, or anything else shown as JSON (never a reason to fail)."""
    value = meta.data.get(name) if meta else None
    return None if value is None or value == "" else value if isinstance(value, str) else scrub(repr(value))[:300]


def _asset(fields: _Fields) -> Asset:
    return Asset(fields.required("id"), fields.text("url"), fields.text("mimeType"))


def _answer(data: Any, what: str, name: str) -> _Fields:
    child = _Fields(data, what, "the answer").child(name, required=True)
    assert child is not None  # required: child() raised otherwise
    return child


def parse_job(data: Any, what: str) -> Job:
    """``{"job": {...}}`` (``GET /jobs/{id}``, a cancel's answer) as a Job."""
    return _job(_answer(data, what, "job"))


def parse_asset(data: Any, what: str) -> Asset:
    """``{"asset": {...}}`` (``GET /assets/{id}``, ``POST /assets``) as an Asset."""
    return _asset(_answer(data, what, "asset"))


def parse_detect(data: Any, what: str, estimate: bool = False) -> DetectAnswer:
    """A detect answer: an estimate (HTTP 269) has no job but a cost; a real run has a job."""
    fields = _Fields(data, what, "the answer")
    job_fields, asset_fields = fields.child("job", required=not estimate), fields.child("asset")
    job = _job(job_fields) if job_fields else None
    cost = fields.number("creativeUnitsCost")
    if cost is None and job is not None:
        cost = job.cost
    if estimate and job is None and cost is None:
        fields.fail("the answer.creativeUnitsCost is missing")
    return DetectAnswer(job, _asset(asset_fields) if asset_fields else None, cost)


# -- the endpoints ----------------------------------------------------------------------------------


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
