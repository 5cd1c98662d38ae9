"""A faithful fake of the Scenario API parts the Detect node uses, over real HTTP on 127.0.0.1.

- Basic auth (``key:secret``) on every ``/v1`` route; 401 ``{"message": ...}`` otherwise.
- ``POST /v1/generate/detect`` (``dryRun`` -> HTTP 269 ``{creativeUnitsCost, costDetails}``,
  ``originalAssets``), ``GET /v1/jobs/{id}``, ``POST /v1/jobs/{id}/action {"action": "cancel"}``,
  ``GET /v1/assets/{id}``, ``POST /v1/assets`` (upload). Bodies over 10 MB answer 413.
- Jobs go pending -> queued -> warming-up -> in-progress -> finalizing -> success over
  ``job_seconds``; outcomes can be forced to failure (with error and hint), canceled or stuck.
- Result assets carry signed content URLs (``X-Amz-Signature``...) served by the same server; a
  URL can be made to expire. The result is the input's luma at the "API size" (sides rounded to a
  multiple of 64), so tests can tell which input produced which output.
- Faults: :meth:`FakeScenario.add_fault` answers a matching request with a status/body/headers, an
  HTML page, a dropped connection, a delay, a truncated or non-image content body.
- Every request is recorded in :attr:`FakeScenario.requests` (headers included, for the tests),
  with the time it arrived (``time.monotonic()``, the test process's clock).
- Moments, without sleeps: :meth:`FakeScenario.hold` keeps the answers to matching requests until
  the test releases them (the request is processed, a detect creates its job, only the answer
  waits); :meth:`FakeScenario.wait_until` blocks until a condition on the recorded state holds.
  :meth:`FakeScenario.queue_outcome` ``("stuck", stage="queued")`` keeps a job in one stage.
- Hostile result URLs: :attr:`FakeScenario.content_url` ``"other_host"`` (``localhost`` instead
  of 127.0.0.1), ``"http_remote"`` (plain http to a non-loopback host), ``"redirect_loop"``,
  ``"oversized"`` (a body far over any sane cap), ``"stall"`` (headers, half the body, then
  nothing until released or the client gives up), ``"ftp"``, ``"dead_host"`` (a closed port).

The JSON shapes are checked against the official ``scenario-sdk`` models in strict mode by
``tests/test_scenario_fake.py``.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

MODALITIES = (
    "canny",
    "depth",
    "grayscale",
    "lineart_anime",
    "mlsd",
    "normal",
    "pose",
    "scribble",
    "segmentation",
    "sketch",
)
FIELDS = {
    "lowThreshold",
    "highThreshold",
    "factor",
    "minThreshold",
    "maxThreshold",
    "removeBackground",
    "keypointThreshold",
}
BODY_CAP = 10 * 1024 * 1024
STAGES = (("pending", 0.05), ("queued", 0.15), ("warming-up", 0.3), ("in-progress", 0.85), ("finalizing", 1.0))


def _now_iso(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t, timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0
    at: float = 0.0  # time.monotonic() when it arrived
    answered: threading.Event = field(default_factory=threading.Event, repr=False)


@dataclass
class Fault:
    method: str
    path: re.Pattern
    times: int
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # status | html | drop | reset | bad_encoding | delay | truncate | short_body | not_image
    action: str = "status"
    delay_s: float = 0.0
    create_job: bool = False  # for detect: create (and bill) the job, then answer the fault
    hits: int = 0


@dataclass
class Hold:
    method: str
    path: re.Pattern
    times: int
    reached: threading.Event = field(default_factory=threading.Event)  # a held answer is waiting
    released: threading.Event = field(default_factory=threading.Event)
    held: int = 0

    def release(self) -> None:
        self.released.set()

    def wait_reached(self, timeout: float = 30.0) -> None:
        assert self.reached.wait(timeout), f"no {self.method} {self.path.pattern} came within {timeout} s"


@dataclass
class Job:
    id: str
    modality: str
    created: float
    duration: float
    outcome: str  # success | failure | canceled | stuck
    fields: dict[str, Any]
    input_asset: str
    error: str = "Detection failed"
    hint: str = ""
    stuck_stage: str = "in-progress"  # where a "stuck" job stays
    canceled_at: float | None = None
    result_asset: str | None = None
    cost: float | None = 0.0
    making: threading.Lock = field(default_factory=threading.Lock, repr=False)
    gate: threading.Event | None = field(default=None, repr=False)  # in progress until set

    def held(self) -> bool:
        return self.gate is not None and not self.gate.is_set()

    def state(self, now: float | None = None) -> tuple[str, float]:
        now = time.time() if now is None else now
        if self.canceled_at is not None:
            return "canceled", self.fraction(self.canceled_at)
        f = self.fraction(now)
        if self.held():  # a test keeps it running
            return "in-progress", min(f, 0.5)
        if self.outcome == "stuck":
            upto = dict(STAGES)[self.stuck_stage]
            return self.stuck_stage, min(f, upto - 0.01)
        if f >= 1.0:
            return ("success" if self.outcome == "success" else self.outcome), 1.0
        for name, upto in STAGES:
            if f < upto:
                return name, f
        return "finalizing", f

    def fraction(self, t: float) -> float:
        return 1.0 if self.duration <= 0 else min(1.0, (t - self.created) / self.duration)


@dataclass
class Asset:
    id: str
    content: bytes
    width: int
    height: int
    source: str  # detection | uploaded
    created: float
    tokens: dict[str, float] = field(default_factory=dict)  # signature -> expiry time


class FakeScenario:
    def __init__(
        self,
        key: str = "fake-key-0123456789",
        secret: str = "fake-secret-abcdefghij",
        *,
        job_seconds: float = 0.3,
        cost_per_job: float = 2.0,
        url_ttl_s: float = 600.0,
    ):
        self.key, self.secret = key, secret
        self.job_seconds = job_seconds
        self.cost_per_job = cost_per_job
        self.url_ttl_s = url_ttl_s
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.jobs: dict[str, Job] = {}
        self.assets: dict[str, Asset] = {}
        self.next_outcomes: list[tuple[str, str, str, str]] = []  # (outcome, error, hint, stage), next jobs
        self.immediate_success = False  # answer detect with a finished job and its asset
        self.content_url = "normal"  # or a hostile form: see the module docstring
        self.next_costs: list[float | None] = []  # costs of the next jobs (None: the API does not say)
        self.oversized_bytes = 512 * 1024 * 1024
        self.holds: list[Hold] = []
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)  # notified when a request arrives or is answered
        # Test hooks: jobs created while ``job_gate`` is an unset Event stay in progress until it is
        # set; ``result_png`` (when set) is every job's result instead of the luma map.
        self.job_gate: threading.Event | None = None
        self.result_png: bytes | None = None
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> FakeScenario:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # a batch opens many connections at once; 5 would refuse some

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # faults break connections on purpose: no tracebacks in the test output

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-scenario", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeScenario:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def dead_port(self) -> int:
        """A loopback port nothing listens on (bound once, never listened to)."""
        if not hasattr(self, "_dead"):
            import socket

            self._dead = socket.socket()
            self._dead.bind(("127.0.0.1", 0))
        return self._dead.getsockname()[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin + "/v1"

    def env(self) -> dict[str, str]:
        """Environment for a process (ComfyUI, the CLI) that should talk to this fake."""
        return {"SCENARIO_API_KEY": self.key, "SCENARIO_API_SECRET": self.secret, "SCENARIO_BASE_URL": self.base_url}

    # -- test controls -----------------------------------------------------------------------
    def add_fault(
        self,
        method: str,
        path: str,
        status: int = 500,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        action: str = "status",
        delay_s: float = 0.0,
        create_job: bool = False,
    ) -> Fault:
        """Answer the next ``times`` requests whose path matches the regex ``path`` with a fault."""
        fault = Fault(method.upper(), re.compile(path), times, status, body, headers or {}, action, delay_s, create_job)
        with self.lock:
            self.faults.append(fault)
        return fault

    def queue_outcome(
        self, outcome: str, error: str = "Detection failed", hint: str = "", stage: str = "in-progress"
    ) -> None:
        """The next job created ends this way (success, failure, canceled, stuck in ``stage``)."""
        with self.lock:
            self.next_outcomes.append((outcome, error, hint, stage))

    def expire_urls(self) -> None:
        """Every content URL handed out so far stops working (403), as a signed URL past its life."""
        with self.lock:
            for asset in self.assets.values():
                asset.tokens = {k: 0.0 for k in asset.tokens}

    def reset(self) -> None:
        with self.lock:
            for hold in self.holds:
                hold.release()
            self.holds.clear()
            self.requests.clear()
            self.faults.clear()
            self.jobs.clear()
            self.assets.clear()
            self.next_outcomes.clear()
            self.next_costs.clear()
            self.immediate_success = False
            self.content_url = "normal"
            self.job_gate = None
            self.result_png = None

    def hold(self, method: str, path: str, times: int = 1) -> Hold:
        """Keep the answers to the next ``times`` requests matching ``path`` (a regex) until
        :meth:`Hold.release`. The request itself is processed (a detect creates its job)."""
        hold = Hold(method.upper(), re.compile(path), times)
        with self.lock:
            self.holds.append(hold)
        return hold

    def wait_until(self, condition: Any, timeout: float = 30.0, what: str = "") -> None:
        """Block until ``condition()`` (called under the fake's lock) is true; AssertionError after
        ``timeout`` (a bound against hangs, not a timing assertion)."""
        with self.changed:
            if not self.changed.wait_for(condition, timeout):
                raise AssertionError(f"the fake never saw {what or condition}")

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def wait_for_requests(self, method: str, pattern: str, count: int, timeout: float) -> list[Request]:
        """Block until ``count`` requests matching (method, regex ``pattern``) arrived, or ``timeout``
        passed; returns the matching requests seen by then (fewer than ``count`` on timeout)."""
        rx = re.compile(pattern)

        def matching() -> list[Request]:
            return [r for r in self.requests if r.method == method and rx.search(r.path)]

        with self.changed:
            self.changed.wait_for(lambda: len(matching()) >= count, timeout)
            return matching()

    def requests_to(self, method: str, pattern: str) -> list[Request]:
        rx = re.compile(pattern)
        with self.lock:
            return [r for r in self.requests if r.method == method and rx.search(r.path)]

    @property
    def billed_jobs(self) -> list[Job]:
        with self.lock:
            return list(self.jobs.values())

    def canceled_jobs(self) -> list[str]:
        with self.lock:
            return [j.id for j in self.jobs.values() if j.canceled_at is not None]

    # -- JSON shapes (validated against scenario-sdk in strict mode by the tests) -------------
    def job_json(self, job: Job) -> dict[str, Any]:
        status, progress = job.state()
        history = [{"status": "pending", "date": _now_iso(job.created)}]
        if status != "pending":
            history.append({"status": status, "date": _now_iso()})
        metadata: dict[str, Any] = {"input": {"modality": job.modality, **job.fields}}
        if status == "success":
            metadata["assetIds"] = [self._result_asset(job)]
        if status == "failure":
            metadata["error"] = job.error
            if job.hint:
                metadata["hint"] = job.hint
        return {
            "jobId": job.id,
            "jobType": "detection",
            "status": status,
            "progress": round(progress, 4),
            "createdAt": _now_iso(job.created),
            "updatedAt": _now_iso(),
            "metadata": metadata,
            "statusHistory": history,
            "authorId": "user_fake",
            "ownerId": "team_fake",
            **({"billing": {"cuCost": job.cost, "cuDiscount": 0}} if job.cost is not None else {}),
        }

    def asset_json(self, asset: Asset) -> dict[str, Any]:
        token = secrets.token_hex(16)
        with self.lock:
            asset.tokens[token] = time.time() + self.url_ttl_s
        signed = (
            f"{asset.id}.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential=FAKE%2F20260101&X-Amz-Expires={int(self.url_ttl_s)}&X-Amz-Signature={token}"
        )
        url = {
            "normal": f"{self.origin}/content/{signed}",
            "other_host": f"http://localhost:{self.port}/content/{signed}",
            "http_remote": f"http://storage.example.com/content/{signed}",
            "redirect_loop": f"{self.origin}/redirect/50/{signed}",
            "oversized": f"{self.origin}/oversized/{signed}",
            "stall": f"{self.origin}/stall/{signed}",
            "ftp": f"ftp://127.0.0.1:{self.port}/content/{signed}",
            "dead_host": f"http://127.0.0.1:{self.dead_port}/content/{signed}",
        }[self.content_url]
        kind = "detection" if asset.source == "detection" else "uploaded"
        return {
            "id": asset.id,
            "authorId": "user_fake",
            "ownerId": "team_fake",
            "collectionIds": [],
            "createdAt": _now_iso(asset.created),
            "updatedAt": _now_iso(asset.created),
            "editCapabilities": ["DETECTION"],
            "kind": "image",
            "metadata": {"kind": "image", "type": kind, "width": asset.width, "height": asset.height},
            "mimeType": "image/png",
            "privacy": "private",
            "properties": {"size": len(asset.content), "width": asset.width, "height": asset.height},
            "source": kind,
            "status": "success",
            "tags": [],
            "url": url,
        }

    # -- behaviour ---------------------------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):04d}{secrets.token_hex(6)}"

    def _store_asset(self, content: bytes, source: str) -> Asset:
        with Image.open(io.BytesIO(content)) as im:
            width, height = im.size
        asset = Asset(self._new_id("asset"), content, width, height, source, time.time())
        with self.lock:
            self.assets[asset.id] = asset
        return asset

    def _result_asset(self, job: Job) -> str:
        # A per-job lock, not the server's: image work must not stall every other request.
        with job.making:
            if job.result_asset is None:
                with self.lock:
                    source = self.assets[job.input_asset]
                content = self.result_png if self.result_png is not None else _fake_map(source.content, job.modality)
                job.result_asset = self._store_asset(content, "detection").id
            return job.result_asset

    def create_job(self, modality: str, fields: dict[str, Any], input_asset: str) -> Job:
        with self.lock:
            outcome, error, hint, stage = self.next_outcomes.pop(0) if self.next_outcomes else ("success", "", "", "")
            job = Job(
                self._new_id("job"),
                modality,
                time.time(),
                self.job_seconds,
                outcome,
                fields,
                input_asset,
                error or "Detection failed",
                hint,
                stuck_stage=stage or "in-progress",
                cost=self.next_costs.pop(0) if self.next_costs else self.cost_per_job,
                gate=self.job_gate,
            )
            self.jobs[job.id] = job
        # The "worker": makes the result while the job runs, as the real service does elsewhere,
        # so that the poll which sees success is not slowed by image work in the request handler.
        threading.Thread(target=self._result_asset, args=(job,), daemon=True).start()
        return job


def _fake_map(png: bytes, modality: str) -> bytes:
    """Luma of the input at the "API size" (each side rounded to a multiple of 64).

    OpenCV releases the GIL, so concurrent jobs of the fake do not queue behind each other."""
    import cv2

    gray = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise OSError("not an image")
    h, w = gray.shape
    size = (max(64, round(w / 64) * 64), max(64, round(h / 64) * 64))
    gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if size[0] < w else cv2.INTER_LINEAR)
    ok, out = cv2.imencode(".png", cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    assert ok
    return out.tobytes()


def _png_from_data_url(value: str) -> bytes | None:
    m = re.match(r"data:image/[a-z+.-]+;base64,(.*)$", value, re.DOTALL)
    if not m:
        return None
    try:
        return base64.b64decode(m.group(1), validate=True)
    except ValueError:
        return None


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeScenario
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    # -- plumbing ----------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        payload: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        ctype: str = "application/json",
    ) -> None:
        data = raw if raw is not None else json.dumps(payload if payload is not None else {}).encode()
        self._wait_for_release()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self._record.status = status
        self._answered()

    def _wait_for_release(self) -> None:
        hold = getattr(self, "_hold", None)
        if hold is not None:
            self._hold = None
            hold.held += 1
            hold.reached.set()
            self.server_fake.notify()
            hold.released.wait(120)

    def _answered(self) -> None:
        self._record.answered.set()
        self.server_fake.notify()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass
        self._record.status = -1
        self._answered()

    def _reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0): the client sees the connection broken, not closed."""
        import socket
        import struct

        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self._record.status = -2
        self._answered()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        fake = self.server_fake
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        if length > BODY_CAP:
            self._record = Request(method, path, query, dict(self.headers), None, at=time.monotonic())
            self._hold = None
            with fake.lock:
                fake.requests.append(self._record)
                fake.changed.notify_all()
            # Drain then refuse, as the gateway does.
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            return self._send(413, {"message": "Request Entity Too Large"})
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        self._record = Request(method, path, query, dict(self.headers), body, at=time.monotonic())
        with fake.lock:
            fake.requests.append(self._record)
            fake.changed.notify_all()
            self._hold = next(
                (h for h in fake.holds if h.times > 0 and h.method == method and h.path.search(path)), None
            )
            if self._hold is not None:
                self._hold.times -= 1
            fault = next((f for f in fake.faults if f.times > 0 and f.method == method and f.path.search(path)), None)
            if fault is not None:
                fault.times -= 1
                fault.hits += 1
        if fault is not None and fault.action == "delay":
            # The request is carried out at once (a detect creates its job when create_job is set),
            # and only its answer comes late: one POST, one job.
            created = self._created_before_answer(body, query, fault)
            time.sleep(fault.delay_s)
            if created is not None:
                return self._send(200, self._detect_answer(created))
        elif fault is not None and fault.action in ("status", "html", "drop", "reset", "bad_encoding"):
            if fault.create_job and path == "/v1/generate/detect" and isinstance(body, dict):
                self._detect(body, query, respond=False)
            if fault.action == "drop":
                return self._drop()
            elif fault.action == "reset":
                return self._reset()
            elif fault.action == "bad_encoding":
                # A 200 that says gzip and is not: the client cannot decode the answer.
                ctype = "image/png" if path.startswith("/content/") else "application/json"
                return self._send(200, raw=b"not gzip" * 8, headers={"Content-Encoding": "gzip"}, ctype=ctype)
            elif fault.action == "html":
                return self._send(
                    fault.status if fault.status != 500 else 200,
                    raw=b"<!DOCTYPE html><html><body><h1>Bad gateway</h1></body></html>",
                    ctype="text/html; charset=utf-8",
                    headers=fault.headers,
                )
            else:
                return self._send(
                    fault.status, fault.body if fault.body is not None else {"reason": "fault"}, headers=fault.headers
                )
        try:
            self._route(method, path, query, body, fault)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _authorized(self) -> bool:
        fake = self.server_fake
        expected = "Basic " + base64.b64encode(f"{fake.key}:{fake.secret}".encode()).decode()
        return self.headers.get("Authorization") == expected

    # -- routes ------------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, str], body: Any, fault: Fault | None) -> None:
        fake = self.server_fake
        if path.startswith("/content/") and method == "GET":
            return self._content(path, query, fault)
        m = re.fullmatch(r"/redirect/(\d+)/(.+)", path)
        if m and method == "GET":
            hops = int(m.group(1))
            rest = m.group(2) + ("?" + urlsplit(self.path).query if urlsplit(self.path).query else "")
            target = f"/redirect/{hops - 1}/{rest}" if hops > 1 else f"/content/{rest}"
            return self._send(302, raw=b"", headers={"Location": fake.origin + target}, ctype="text/plain")
        if path.startswith("/oversized/") and method == "GET":
            return self._oversized()
        if path.startswith("/stall/") and method == "GET":
            return self._stall(path.replace("/stall/", "/content/", 1), query)
        if not path.startswith("/v1/"):
            return self._send(404, {"message": "Not Found"})
        if not self._authorized():
            return self._send(401, {"message": "Unauthorized"})
        if method == "POST" and path == "/v1/generate/detect":
            return self._detect(body, query)
        if method == "POST" and path == "/v1/assets":
            if not isinstance(body, dict) or not isinstance(body.get("image"), str) or not body.get("name"):
                return self._send(400, {"reason": "image and name are required", "trace_id": "t-up"})
            png = _png_from_data_url(body["image"])
            if png is None:
                return self._send(400, {"reason": "image must be a base64 data URL", "trace_id": "t-up"})
            asset = fake._store_asset(png, "uploaded")
            return self._send(200, {"asset": fake.asset_json(asset)})
        m = re.fullmatch(r"/v1/jobs/([\w-]+)", path)
        if method == "GET" and m:
            job = fake.jobs.get(m.group(1))
            if job is None:
                return self._send(404, {"reason": "Job not found", "trace_id": "t-job"})
            return self._send(200, {"job": fake.job_json(job)})
        m = re.fullmatch(r"/v1/jobs/([\w-]+)/action", path)
        if method == "POST" and m:
            job = fake.jobs.get(m.group(1))
            if job is None:
                return self._send(404, {"reason": "Job not found", "trace_id": "t-job"})
            if not isinstance(body, dict) or body.get("action") != "cancel":
                return self._send(400, {"reason": "action must be cancel", "trace_id": "t-act"})
            with fake.lock:
                if job.state()[0] not in ("success", "failure", "canceled"):
                    job.canceled_at = time.time()
            return self._send(200, {"job": fake.job_json(job)})
        m = re.fullmatch(r"/v1/assets/([\w-]+)", path)
        if method == "GET" and m:
            asset = fake.assets.get(m.group(1))
            if asset is None:
                return self._send(404, {"reason": "Asset not found", "trace_id": "t-asset"})
            return self._send(200, {"asset": fake.asset_json(asset)})
        return self._send(404, {"message": "Not Found"})

    def _detect(self, body: Any, query: dict[str, str], respond: bool = True) -> None:
        fake = self.server_fake
        if not isinstance(body, dict):
            return self._send(400, {"reason": "body must be JSON", "trace_id": "t-det"}) if respond else None
        modality = body.get("modality")
        if modality not in MODALITIES:
            return (
                self._send(400, {"reason": f"modality must be one of {', '.join(MODALITIES)}", "trace_id": "t-det"})
                if respond
                else None
            )
        extra = set(body) - FIELDS - {"image", "modality"}
        if extra:
            return (
                self._send(400, {"reason": f"unknown fields: {sorted(extra)}", "trace_id": "t-det"})
                if respond
                else None
            )
        kp = body.get("keypointThreshold")
        if kp is not None and not (0 <= kp <= 1):
            return (
                self._send(400, {"reason": "keypointThreshold must be between 0 and 1", "trace_id": "t-det"})
                if respond
                else None
            )
        image = body.get("image")
        if not isinstance(image, str):
            return self._send(400, {"reason": "image is required", "trace_id": "t-det"}) if respond else None
        if image.startswith("data:"):
            png = _png_from_data_url(image)
            if png is None:
                return (
                    self._send(400, {"reason": "image is not a valid data URL", "trace_id": "t-det"})
                    if respond
                    else None
                )
            try:
                input_asset = fake._store_asset(png, "uploaded").id
            except OSError:
                return self._send(400, {"reason": "image cannot be decoded", "trace_id": "t-det"}) if respond else None
        elif image in fake.assets:
            input_asset = image
        else:
            return self._send(400, {"reason": f"Asset {image} not found", "trace_id": "t-det"}) if respond else None
        if query.get("dryRun") in ("true", "api"):
            return (
                self._send(
                    269, {"creativeUnitsCost": fake.cost_per_job, "costDetails": {"detection": fake.cost_per_job}}
                )
                if respond
                else None
            )
        fields = {k: v for k, v in body.items() if k in FIELDS}
        job = fake.create_job(modality, fields, input_asset)
        self._created = job
        if not respond:
            return None
        return self._send(200, self._detect_answer(job))

    def _detect_answer(self, job: Job) -> dict[str, Any]:
        fake = self.server_fake
        payload: dict[str, Any] = {"creativeUnitsDiscount": 0}
        if job.cost is not None:
            payload["creativeUnitsCost"] = job.cost
        if fake.immediate_success:
            job.duration = 0.0
            payload["asset"] = fake.asset_json(fake.assets[fake._result_asset(job)])
        payload["job"] = fake.job_json(job)
        return payload

    def _created_before_answer(self, body: Any, query: dict[str, str], fault: Fault) -> Job | None:
        """For a delayed detect with ``create_job``: the job it created (None if it was refused)."""
        if not (fault.create_job and self._record.path == "/v1/generate/detect" and isinstance(body, dict)):
            return None
        if not self._authorized():
            return None
        self._created = None
        self._detect(body, query, respond=False)
        return self._created

    def _content(self, path: str, query: dict[str, str], fault: Fault | None) -> None:
        fake = self.server_fake
        m = re.fullmatch(r"/content/([\w-]+)\.png", path)
        asset = fake.assets.get(m.group(1)) if m else None
        if asset is None:
            return self._send(404, raw=b"<Error><Code>NoSuchKey</Code></Error>", ctype="application/xml")
        token = query.get("X-Amz-Signature", "")
        expiry = asset.tokens.get(token)
        if expiry is None or expiry < time.time():
            return self._send(
                403,
                raw=b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                ctype="application/xml",
            )
        data = asset.content
        if fault is not None and fault.action == "truncate":
            return self._send(200, raw=data[: len(data) // 2], ctype="image/png")
        if fault is not None and fault.action == "not_image":
            return self._send(200, raw=b"this is not an image at all", ctype="image/png")
        if fault is not None and fault.action == "short_body":
            self._send_half(data)  # then hang up: a connection cut mid-download
            return self._drop()
        return self._send(200, raw=data, ctype="image/png")

    def _send_half(self, data: bytes) -> None:
        """Headers announcing all of ``data``, then only its first half."""
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()

    def _oversized(self) -> None:
        """Announces and streams a huge body until the client hangs up."""
        size = self.server_fake.oversized_bytes
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self._record.status = 200
        self._answered()
        chunk = b"\0" * (1 << 20)
        try:
            for _ in range(size // len(chunk)):
                self.wfile.write(chunk)
        except OSError:
            pass
        self.close_connection = True

    def _stall(self, path: str, query: dict[str, str]) -> None:
        """Headers and half the result, then nothing until released (or the client gives up)."""
        fake = self.server_fake
        m = re.fullmatch(r"/content/([\w-]+)\.png", path)
        asset = fake.assets.get(m.group(1)) if m else None
        self._send_half(asset.content if asset is not None else b"")
        self._record.status = 200
        self._answered()
        if self._hold is None:  # stalls until the test resets the fake
            self._hold = Hold("GET", re.compile("stall"), 0)
            with fake.lock:
                fake.holds.append(self._hold)
        self._wait_for_release()
        self.close_connection = True


def main() -> None:
    """Run the fake as its own process (benchmarks, manual tries): prints one JSON line with the
    environment a client needs, then serves until stdin closes or the process is stopped."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="fake Scenario API on 127.0.0.1")
    parser.add_argument("--job-seconds", type=float, default=1.0)
    args = parser.parse_args()
    with FakeScenario(job_seconds=args.job_seconds) as fake:
        print(json.dumps(fake.env()), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
