"""The Scenario API's answers as typed records, parsed once at the edge (see ``api``).

Every answer the node reads becomes a :class:`Job`, an :class:`Asset` or a :class:`DetectAnswer`
here, and only here: the job's life (``jobs``) and the batch (``backend``) never look inside a raw
dict. A field that is present with the wrong type, or a required field that is missing, is one
:class:`ScenarioBadResponse` naming the call and the field (never the value: it may be a signed
URL). Absent optional fields are None; an unknown job status is kept as given and counts as still
running (the API documents that new statuses may appear).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from .errors import ScenarioBadResponse, ScenarioJobFailed, scrub

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

    def text(self, name: str, required: bool = False) -> str | None:
        value = self.data.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            self.fail(f"{self.where}.{name} is {_kind(value)}, not a non-empty string")
        return value

    def number(self, name: str) -> float | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(f"{self.where}.{name} is {_kind(value)}, not a number")
        return float(value)

    def texts(self, name: str) -> tuple[str, ...]:
        value = self.data.get(name)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(f"{self.where}.{name} is {_kind(value)}, not a list of ids")
        return tuple(value)

    def child(self, name: str, required: bool = False) -> _Fields | None:
        value = self.data.get(name)
        if value is None and not required:
            return None
        return _Fields(value, self.what, f"{self.where}.{name}")


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
    """The answer to ``POST /generate/detect``: the job (None for a ``dryRun`` estimate), the
    result asset when it came back finished, and the cost (``creativeUnitsCost``, else the job's
    ``billing.cuCost``)."""

    job: Job | None
    asset: Asset | None
    cost: float | None

    def finished_asset(self) -> str | None:
        """The result asset id when the answer needs no polling (a finished job with its asset)."""
        if self.job is not None and self.job.status == "success" and self.asset is not None:
            return self.asset.id
        return None


def _job(fields: _Fields) -> Job:
    meta = fields.child("metadata")
    billing = fields.child("billing")
    progress = fields.number("progress")
    return Job(
        id=_required(fields, "jobId"),
        status=_required(fields, "status"),
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
    return Asset(_required(fields, "id"), fields.text("url"), fields.text("mimeType"))


def _required(fields: _Fields, name: str) -> str:
    value = fields.text(name, required=True)
    assert value is not None  # text() raised otherwise
    return value


def parse_job(data: Any, what: str) -> Job:
    """``{"job": {...}}`` (``GET /jobs/{id}``, a cancel's answer) as a Job."""
    job = _Fields(data, what, "the answer").child("job", required=True)
    assert job is not None
    return _job(job)


def parse_asset(data: Any, what: str) -> Asset:
    """``{"asset": {...}}`` (``GET /assets/{id}``, ``POST /assets``) as an Asset."""
    asset = _Fields(data, what, "the answer").child("asset", required=True)
    assert asset is not None
    return _asset(asset)


def parse_detect(data: Any, what: str, estimate: bool = False) -> DetectAnswer:
    """A detect answer. For an estimate (HTTP 269) the job is absent and the cost required; a
    real run has a job."""
    fields = _Fields(data, what, "the answer")
    job_fields = fields.child("job", required=not estimate)
    asset_fields = fields.child("asset")
    job = _job(job_fields) if job_fields else None
    cost = fields.number("creativeUnitsCost")
    if cost is None and job is not None:
        cost = job.cost
    if estimate and job is None and cost is None:
        fields.fail("the answer.creativeUnitsCost is missing")
    return DetectAnswer(job, _asset(asset_fields) if asset_fields else None, cost)
