"""httpx transport to the Scenario API: Basic auth, retry policy, typed secret-free errors.

Policy (why): a POST to ``/generate/detect`` creates a billed job, so a POST that may have reached
the server (5xx, a timeout or a dropped connection after sending) is never retried: the error says
so and the person decides. POSTs are retried only when nothing was sent (connection refused, connect
timeout) and on 429, after the wait the server asks for (``Retry-After`` or ``remainingSeconds``,
capped). GETs (job, asset, content) are retried with exponential backoff and jitter on
408/429/5xx, timeouts and connection errors. The signed content URL is fetched by a second client
without the Authorization header (it must not travel to the storage host).

httpx is imported inside the functions: the pack must load without paying for it.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .credentials import Credentials
from .errors import (
    ScenarioAuthError,
    ScenarioBadResponse,
    ScenarioError,
    ScenarioMaybeSent,
    ScenarioRateLimited,
    ScenarioRequestError,
    ScenarioServerError,
    ScenarioUnreachable,
    register_secret,
    scrub,
)

log = logging.getLogger("scenario_detect.scenario")

USER_AGENT = "comfyui-scenario-detect/0.1 (+httpx)"


@dataclass
class RetryPolicy:
    get_attempts: int = 5  # total tries of one GET
    post_connect_attempts: int = 3  # tries of a POST while nothing could be sent
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    rate_limit_cap_s: float = 60.0  # longest 429 wait we accept; longer asks fail with the wait time
    rate_limit_attempts: int = 6
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    upload_timeout_s: float = 300.0

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff: spreads retries of a batch so they do not stampede."""
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * (2**attempt)))


class ContentExpired(ScenarioError):
    """The signed content URL answered 403: the caller fetches the asset again for a fresh URL."""


@dataclass
class ApiResponse:
    status: int
    data: dict[str, Any]


def _reason(response: Any) -> str:
    """The API's own explanation (``reason``, ``message``, ``error``, ``details``), short and scrubbed."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(body, dict):
        return ""
    parts = []
    for key in ("reason", "message", "error", "hint", "details"):
        value = body.get(key)
        if value:
            parts.append(value if isinstance(value, str) else json.dumps(value)[:200])
    if body.get("remainingSeconds") is not None:
        parts.append(f"retry in {body['remainingSeconds']} s")
    return scrub("; ".join(parts))[:400]


def retry_after_s(response: Any) -> float | None:
    """Seconds the server asks us to wait: ``Retry-After`` (seconds or HTTP date), else the body's
    ``remainingSeconds``; None when it does not say."""
    header = response.headers.get("retry-after")
    if header:
        header = header.strip()
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(header)
            except (TypeError, ValueError, IndexError):
                parsed = None  # unreadable: fall back to the body, then to backoff
            if parsed is not None and parsed.tzinfo is not None:
                return max(0.0, parsed.timestamp() - time.time())
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(body, dict):
        for key in ("remainingSeconds", "retryAfter"):
            if isinstance(body.get(key), (int, float)):
                return max(0.0, float(body[key]))
    return None


class _ScrubFilter(logging.Filter):
    """httpx logs every request URL at INFO: a signed content URL would land in ComfyUI's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_SCRUB_FILTER = _ScrubFilter()


def install_log_scrubber() -> None:
    """Attach the scrubbing filter to httpx's loggers (idempotent)."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _SCRUB_FILTER not in logger.filters:
            logger.addFilter(_SCRUB_FILTER)


class ScenarioClient:
    """One session with the API. Use as ``async with ScenarioClient(creds) as client:``."""

    def __init__(
        self,
        credentials: Credentials,
        policy: RetryPolicy | None = None,
        *,
        max_connections: int = 16,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.credentials = credentials
        self.policy = policy or RetryPolicy()
        self.stats: Counter[str] = Counter()  # requests per kind, for the benchmark and the logs
        self._sleep = sleep
        self._max_connections = max_connections
        self._api: Any = None
        self._content: Any = None
        register_secret(*credentials.secrets())
        install_log_scrubber()

    async def __aenter__(self) -> ScenarioClient:
        import httpx

        p = self.policy
        timeout = httpx.Timeout(p.read_timeout_s, connect=p.connect_timeout_s)
        limits = httpx.Limits(max_connections=self._max_connections, max_keepalive_connections=self._max_connections)
        self._api = httpx.AsyncClient(
            base_url=self.credentials.base_url + "/",
            auth=httpx.BasicAuth(self.credentials.api_key, self.credentials.api_secret),
            timeout=timeout,
            limits=limits,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,  # a redirect would carry the Authorization header elsewhere
            trust_env=True,
        )
        self._content = httpx.AsyncClient(
            timeout=timeout, limits=limits, follow_redirects=True, headers={"User-Agent": USER_AGENT}
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for c in (self._api, self._content):
            if c is not None:
                await c.aclose()

    # -- responses ---------------------------------------------------------------------------

    def _json(self, response: Any, what: str) -> dict[str, Any]:
        ctype = response.headers.get("content-type", "")
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            kind = "an HTML page" if "html" in ctype or response.text.lstrip()[:1] == "<" else "non-JSON content"
            raise ScenarioBadResponse(
                f"Scenario answered {what} with {kind} (HTTP {response.status_code}, "
                f"{ctype or 'no content type'}) instead of JSON. Check that the API address "
                f"{self.credentials.base_url} is right (SCENARIO_BASE_URL) and that no proxy rewrites it.",
                status=response.status_code,
            )
        return data

    def _client_error(self, response: Any, what: str) -> ScenarioError:
        """A 4xx other than 429 as an actionable error."""
        status = response.status_code
        reason = _reason(response)
        said = f": {reason}" if reason else ""
        source = self.credentials.source or "the environment"
        if status == 401:
            return ScenarioAuthError(
                f"Scenario rejected the API key for {what} (401 Unauthorized{said}). The key and secret "
                f"were read from {source}; check that both are right and the key is not revoked.",
                status=status,
            )
        if status == 403:
            return ScenarioAuthError(
                f"Scenario refused {what} (403 Forbidden{said}). The key read from {source} is valid but "
                "has no access to this resource: check the key's team/project and its permissions.",
                status=status,
            )
        if status == 413:
            return ScenarioRequestError(
                f"Scenario refused {what}: the request is too large (413{said}). Send a smaller image.",
                status=status,
            )
        if status == 404:
            return ScenarioRequestError(f"Scenario found nothing for {what} (404{said}).", status=status)
        return ScenarioRequestError(f"Scenario refused {what} (HTTP {status}){said}.", status=status)

    async def _wait_rate_limit(self, response: Any, what: str, attempt: int) -> None:
        wait = retry_after_s(response)
        if wait is None:
            wait = self.policy.backoff(attempt) + 1.0
        if wait > self.policy.rate_limit_cap_s:
            raise ScenarioRateLimited(
                f"Scenario is rate-limiting {what} and asks to wait {wait:.0f} s, longer than the "
                f"{self.policy.rate_limit_cap_s:.0f} s this node waits. Try again later{_with(_reason(response))}.",
                status=429,
            )
        if attempt + 1 >= self.policy.rate_limit_attempts:
            raise ScenarioRateLimited(
                f"Scenario kept rate-limiting {what} after {attempt + 1} tries{_with(_reason(response))}. "
                "Lower the concurrency or try again later.",
                status=429,
            )
        log.info("Scenario rate limit on %s: waiting %.1f s", what, wait)
        self.stats["429 waits"] += 1
        await self._sleep(wait)

    # -- requests ----------------------------------------------------------------------------

    async def post(
        self,
        path: str,
        body: dict[str, Any],
        *,
        query: dict[str, str] | None = None,
        what: str,
        ok: tuple[int, ...] = (200, 201),
        timeout_s: float | None = None,
    ) -> ApiResponse:
        """POST without duplicates: see the module docstring for the policy."""
        import httpx

        connect_failures = 0
        attempt = 0
        while True:
            self.stats[f"POST {path.split('/')[1] if '/' in path else path}"] += 1
            try:
                extra = (
                    {}
                    if timeout_s is None
                    else {"timeout": httpx.Timeout(timeout_s, connect=self.policy.connect_timeout_s)}
                )
                response = await self._api.post(path.lstrip("/"), json=body, params=query, **extra)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing left this machine: safe to try again.
                connect_failures += 1
                if connect_failures >= self.policy.post_connect_attempts:
                    raise self._unreachable(exc, what) from None
                await self._sleep(self.policy.backoff(connect_failures))
                continue
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                raise ScenarioMaybeSent(
                    f"{what} was sent to Scenario but no answer came back ({type(exc).__name__}). It was NOT "
                    "retried automatically, so that a job is never created (and billed) twice: check your "
                    "jobs at https://app.scenario.com before running again."
                ) from None
            status = response.status_code
            if status in ok:
                return ApiResponse(status, self._json(response, what))
            if status == 429:
                await self._wait_rate_limit(response, what, attempt)
                attempt += 1
                continue
            if status >= 500:
                raise ScenarioMaybeSent(
                    f"Scenario answered {what} with HTTP {status}{_with(_reason(response))}. The request may "
                    "still have been carried out (a detect creates a billed job), so it was NOT retried "
                    "automatically: check your jobs at https://app.scenario.com, then run again.",
                    status=status,
                )
            if 200 <= status < 300:
                # An unexpected success code (e.g. 269 without dryRun): do not guess, say what came.
                raise ScenarioBadResponse(f"Scenario answered {what} with unexpected HTTP {status}.", status=status)
            raise self._client_error(response, what)

    async def get(self, path: str, *, what: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        response = await self._get_with_retries(
            self._api, path.lstrip("/"), what, query=query, kind="GET " + path.split("/")[1]
        )
        if response.status_code != 200:
            raise self._client_error(response, what)
        return self._json(response, what)

    async def download(self, url: str, *, what: str) -> bytes:
        """Bytes behind a signed URL. Raises ContentExpired on 403 (the caller re-fetches the asset)."""
        response = await self._get_with_retries(self._content, url, what, kind="GET content")
        if response.status_code == 403:
            raise ContentExpired(f"the download link of {what} expired (403)", status=403)
        if response.status_code != 200:
            raise ScenarioRequestError(
                f"downloading {what} failed with HTTP {response.status_code}.", status=response.status_code
            )
        return response.content

    async def _get_with_retries(
        self, client: Any, url: str, what: str, *, kind: str, query: dict[str, str] | None = None
    ) -> Any:
        import httpx

        last = ""
        rate_attempt = 0
        attempt = 0
        while True:
            self.stats[kind] += 1
            try:
                response = await client.get(url, params=query)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                last = type(exc).__name__
                if isinstance(exc, (httpx.ConnectError,)) and attempt + 1 >= self.policy.get_attempts:
                    raise self._unreachable(exc, what) from None
            else:
                status = response.status_code
                if status == 429:
                    await self._wait_rate_limit(response, what, rate_attempt)
                    rate_attempt += 1
                    continue
                if status != 408 and status < 500:
                    return response
                last = f"HTTP {status}{_with(_reason(response))}"
            attempt += 1
            if attempt >= self.policy.get_attempts:
                raise ScenarioServerError(
                    f"Scenario kept failing on {what} after {attempt} tries (last: {last}). The service may be "
                    "degraded: try again in a few minutes."
                )
            self.stats["GET retries"] += 1
            log.debug("retrying %s after %s", what, last)
            await self._sleep(self.policy.backoff(attempt))

    def _unreachable(self, exc: Exception, what: str) -> ScenarioUnreachable:
        return ScenarioUnreachable(
            f"cannot reach the Scenario API at {self.credentials.base_url} for {what} "
            f"({type(exc).__name__}: {scrub(exc)}). Check the network, a proxy, or SCENARIO_BASE_URL."
        )


def _with(reason: str) -> str:
    return f" ({reason})" if reason else ""
