"""httpx transport to the Scenario API: Basic auth, the retry policy, typed secret-free errors.

Policy (why): a POST to ``/generate/detect`` creates a billed job, so a POST that may have reached
the server is never retried (the error says so). POSTs are retried only on 429 (after the wait the
server asks for, capped) and on connection errors before anything was sent (:func:`never_sent`).
GETs are retried with jittered backoff on 408/429/5xx and transient transport errors. The API
client never follows a redirect (it would carry the key). Errors are built from scrubbed words and
raised outside ``except`` blocks: httpx's exception holds the Authorization header and must not
stay reachable as ``__context__``. httpx is imported inside functions (the pack loads without it).
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
from .downloads import DownloadLimits, content_of, fetch_content, origin_of
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
from .guard import refuse_remote_hosts
from .urls import api_is_loopback, check_api_path, check_base_url

log = logging.getLogger("scenario_detect.scenario")

USER_AGENT = "comfyui-scenario-detect/0.1 (+httpx)"
JOBS_PAGE = "https://app.scenario.com"


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
    max_redirects: int = 5  # hops a result download may take (each one checked again)
    max_download_bytes: int = 256 * 1024 * 1024  # a result bigger than this is refused, not buffered

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff: spreads retries of a batch so they do not stampede."""
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * (2**attempt)))


@dataclass
class ApiResponse:
    status: int
    data: dict[str, Any]


# -- what a failed request means -------------------------------------------------------------------


def transport_errors() -> tuple[type[BaseException], ...]:
    """Every exception a request can raise that is not ours: httpx's, and OS/TLS errors."""
    import httpx

    return (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, httpx.CookieConflict, OSError)


def never_sent(exc: BaseException) -> bool:
    """True when ``exc`` proves no request reached the server (so nothing was created or billed);
    every other error (read/write timeouts and errors, broken HTTP, anything unknown) may have."""
    import httpx

    connect = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)  # retried, for POSTs too
    misconfigured = (httpx.ProxyError, httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError)
    return isinstance(exc, (*connect, *misconfigured))


def retryable(exc: BaseException) -> bool:
    """Transient: the same request may well work a moment later."""
    import httpx

    return isinstance(
        exc,
        (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.DecodingError, OSError),
    )


def _explain(exc: BaseException, timeout_s: float | None) -> tuple[str, str]:
    """(what went wrong, what to do) for one transport exception."""
    import httpx

    after = f" within {timeout_s:g} s" if timeout_s else ""
    network = "Check the network connection, a firewall or proxy, and SCENARIO_BASE_URL."
    table: list[tuple[type[BaseException], str, str]] = [
        (httpx.ProxyError, "the proxy refused the connection",
         "Check the proxy set in HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, or unset it."),
        (httpx.UnsupportedProtocol, "the address is not an http(s) URL", "Check SCENARIO_BASE_URL."),
        (httpx.InvalidURL, "the address is not a valid URL", "Check SCENARIO_BASE_URL."),
        (httpx.LocalProtocolError, "this machine built an invalid HTTP request",
         "Check HTTP-related environment variables (proxies); if it persists, report it as a bug."),
        (httpx.ConnectTimeout, f"no connection could be opened{after}", network),
        (httpx.PoolTimeout, f"no free connection came{after}", "Lower max_parallel_jobs, or try again."),
        (httpx.ConnectError, "the connection could not be opened (name lookup, refused, or TLS)", network),
        (httpx.ReadTimeout, f"no answer came{after}", "Scenario may be slow right now: try again later."),
        (httpx.WriteTimeout, f"sending the request did not finish{after}",
         "The upload is slow: check the connection, or send a smaller image."),
        (httpx.TimeoutException, f"the request timed out{after}", network),
        (httpx.NetworkError, "the connection broke", network),
        (httpx.RemoteProtocolError, "the server closed the connection or answered with broken HTTP",
         "A proxy or the service may be failing: try again later."),
        (httpx.DecodingError, "the answer could not be decoded (broken compression or text encoding)",
         "A proxy may be altering the answers: try again, or bypass the proxy."),
        (httpx.TooManyRedirects, "the answer redirected too many times", "Check SCENARIO_BASE_URL and any proxy."),
        (httpx.StreamError, "the HTTP client misused a response stream", "Please report this as a bug."),
        (OSError, "a network error occurred", network),
    ]
    for kind, what, advice in table:
        if isinstance(exc, kind):
            return what, advice
    return "the request failed", "Try again; if it persists, report it."


def cause_of(exc: BaseException) -> str:
    """``Name: detail`` of an exception, scrubbed and short (httpx details may hold a signed URL)."""
    detail = scrub(exc).strip()
    detail = detail[:200] + ("..." if len(detail) > 200 else "")
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def transport_error(
    exc: BaseException, what: str, *, target: str, method: str, timeout_s: float | None = None
) -> ScenarioError:
    """The pack's error for a transport exception; a POST that may have been sent: ScenarioMaybeSent."""
    cause, advice = _explain(exc, timeout_s)
    if never_sent(exc):
        return ScenarioUnreachable(
            f"cannot reach {target} for {what}: {cause} ({cause_of(exc)}). Nothing was sent, so nothing was "
            f"created or billed. {advice}"
        )
    if method == "POST":
        return ScenarioMaybeSent(
            f"{what} was sent to Scenario but {cause} ({type(exc).__name__}). It was NOT retried "
            "automatically, so that a job is never created (and billed) twice: check your jobs at "
            f"{JOBS_PAGE} before running again."
        )
    if isinstance(exc, OSError) or retryable(exc):
        return ScenarioServerError(f"{what} failed at {target}: {cause} ({cause_of(exc)}). {advice}")
    return ScenarioBadResponse(f"{what} failed at {target}: {cause} ({cause_of(exc)}). {advice}")


# -- responses ------------------------------------------------------------------------------------


def _body(response: Any) -> dict[str, Any]:
    """The answer's JSON object, or {} when it is not one."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _reason(response: Any) -> str:
    """The API's own explanation (``reason``, ``message``, ``error``, ``details``), short and scrubbed."""
    body = _body(response)
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
    body = _body(response)
    for key in ("remainingSeconds", "retryAfter"):
        if isinstance(body.get(key), (int, float)) and not isinstance(body.get(key), bool):
            return max(0.0, float(body[key]))
    return None


def _scrub_record(record: logging.LogRecord) -> bool:
    """httpx logs every request URL at INFO: a signed content URL would land in ComfyUI's log."""
    message = record.getMessage()
    cleaned = scrub(message)
    if cleaned != message:
        record.msg, record.args = cleaned, ()
    return True


def install_log_scrubber() -> None:
    """Attach the scrubbing filter to httpx's loggers (idempotent)."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _scrub_record not in logger.filters:
            logger.addFilter(_scrub_record)


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

        # Credentials built in code bypass load_credentials: the key must not go out over plain http.
        check_base_url(self.credentials.base_url, self.credentials.source or "the credentials")
        p = self.policy
        timeout = httpx.Timeout(p.read_timeout_s, connect=p.connect_timeout_s)
        limits = httpx.Limits(max_connections=self._max_connections, max_keepalive_connections=self._max_connections)
        # Never follow a redirect: the API's would carry the Authorization header elsewhere, and each
        # download hop is checked by hand. Proxies and CA bundles come from the environment (trust_env).
        common = {"timeout": timeout, "limits": limits, "follow_redirects": False, "trust_env": True,
                  "event_hooks": {"request": [refuse_remote_hosts]}}
        self._api = httpx.AsyncClient(
            base_url=self.credentials.base_url + "/",
            auth=httpx.BasicAuth(self.credentials.api_key, self.credentials.api_secret),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            **common,
        )
        # No auth, no shared cookies.
        self._content = httpx.AsyncClient(headers={"User-Agent": USER_AGENT, "Accept": "image/*"}, **common)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for c in (self._api, self._content):
            if c is not None:
                await c.aclose()

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

    def _redirect_error(self, response: Any, what: str) -> ScenarioError:
        location = response.headers.get("location", "")
        try:
            to = f" to {origin_of(response.url.join(location))}" if location else ""
        except Exception:  # noqa: BLE001 - an unparsable Location is still a redirect we refuse
            to = ""
        return ScenarioBadResponse(
            f"Scenario answered {what} with a redirect (HTTP {response.status_code}){to}. It was not followed, "
            f"because the request carries your API key. The API address {self.credentials.base_url} looks wrong: "
            "if the redirect target is Scenario's API, set SCENARIO_BASE_URL to it.",
            status=response.status_code,
        )

    def _client_error(self, response: Any, what: str) -> ScenarioError:
        """A 3xx or 4xx other than 429 as an actionable error."""
        status = response.status_code
        if 300 <= status < 400:
            return self._redirect_error(response, what)
        reason = _reason(response)
        said = f": {reason}" if reason else ""
        source = self.credentials.source or "the environment"
        known: dict[int, tuple[type[ScenarioError], str]] = {
            401: (ScenarioAuthError, f"Scenario rejected the API key for {what} (401 Unauthorized{said}). The key "
                  f"and secret were read from {source}; check that both are right and the key is not revoked."),
            403: (ScenarioAuthError, f"Scenario refused {what} (403 Forbidden{said}). The key read from {source} is "
                  "valid but has no access to this resource: check the key's team/project and its permissions."),
            413: (ScenarioRequestError,
                  f"Scenario refused {what}: the request is too large (413{said}). Send a smaller image."),
            404: (ScenarioRequestError, f"Scenario found nothing for {what} (404{said})."),
        }
        kind, message = known.get(status, (ScenarioRequestError, f"Scenario refused {what} (HTTP {status}){said}."))
        return kind(message, status=status)

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
        """POST without duplicates (see the module docstring). ``path``: relative to the API root,
        built with ``urls.api_path`` when it holds a server-supplied id."""
        relative = check_api_path(path)
        connect_failures = 0
        attempt = 0
        while True:
            self.stats[f"POST {relative.split('/')[0]}"] += 1
            response = await self._post_once(relative, body, query, what, timeout_s, connect_failures + 1)
            if response is None:
                connect_failures += 1  # nothing left this machine: safe to try again
                await self._sleep(self.policy.backoff(connect_failures))
                continue
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
                    f"automatically: check your jobs at {JOBS_PAGE}, then run again.",
                    status=status,
                )
            if 200 <= status < 300:
                # An unexpected success code (e.g. 269 without dryRun): do not guess, say what came.
                raise ScenarioBadResponse(f"Scenario answered {what} with unexpected HTTP {status}.", status=status)
            raise self._client_error(response, what)

    async def _post_once(
        self, relative: str, body: Any, query: Any, what: str, timeout_s: float | None, try_number: int
    ) -> Any:
        """One POST: the response; None when the connection failed before sending and another try
        is allowed; otherwise the pack's error (raised outside the ``except``)."""
        import httpx

        limit = None if timeout_s is None else httpx.Timeout(timeout_s, connect=self.policy.connect_timeout_s)
        extra = {} if limit is None else {"timeout": limit}
        try:
            return await self._api.post(relative, json=body, params=query, **extra)
        except transport_errors() as exc:
            connect = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
            if connect and try_number < self.policy.post_connect_attempts:
                return None
            target, limit_s = f"the Scenario API at {self.credentials.base_url}", self._timeout_of(exc, timeout_s)
            failed = transport_error(exc, what, target=target, method="POST", timeout_s=limit_s)
        raise failed

    async def get(self, path: str, *, what: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        """GET a JSON object from the API, retried (see the module docstring); ``path`` as for post."""
        relative = check_api_path(path)
        response = await self._get_with_retries(
            lambda: self._api.get(relative, params=query),
            what,
            kind="GET " + relative.split("/")[0],
            target=f"the Scenario API at {self.credentials.base_url}",
        )
        if response.status_code != 200:
            raise self._client_error(response, what)
        return self._json(response, what)

    async def download(self, url: str, *, what: str) -> bytes:
        """Bytes behind a signed URL, without credentials (see ``downloads``), retried like a GET.
        Raises ContentExpired on 403 (the caller re-fetches the asset for a fresh URL)."""
        limits = DownloadLimits(
            self.policy.max_redirects, self.policy.max_download_bytes, api_is_loopback(self.credentials.base_url)
        )
        response = await self._get_with_retries(
            lambda: fetch_content(self._content, url, what, limits),
            what,
            kind="GET content",
            target="the download host",
        )
        return content_of(response, what)

    def _timeout_of(self, exc: BaseException, read_timeout_s: float | None = None) -> float:
        """The limit that ``exc`` (a timeout) ran into, for the message."""
        import httpx

        if isinstance(exc, httpx.ConnectTimeout):
            return self.policy.connect_timeout_s
        return self.policy.read_timeout_s if read_timeout_s is None else read_timeout_s

    async def _get_with_retries(
        self, send: Callable[[], Awaitable[Any]], what: str, *, kind: str, target: str
    ) -> Any:
        errors = transport_errors()
        last = ""
        rate_attempt = 0
        attempt = 0
        while True:
            self.stats[kind] += 1
            failed: ScenarioError | None = None
            try:
                response = await send()
            except errors as exc:
                if not retryable(exc) or (never_sent(exc) and attempt + 1 >= self.policy.get_attempts):
                    failed = transport_error(exc, what, target=target, method="GET", timeout_s=self._timeout_of(exc))
                last = cause_of(exc)
            else:
                status = response.status_code
                if status == 429:
                    await self._wait_rate_limit(response, what, rate_attempt)
                    rate_attempt += 1
                    continue
                if status != 408 and status < 500:
                    return response
                last = f"HTTP {status}{_with(_reason(response))}"
            if failed is not None:
                raise failed  # outside the except: httpx's exception holds the request (key, signed URL)
            attempt += 1
            if attempt >= self.policy.get_attempts:
                raise ScenarioServerError(
                    f"Scenario kept failing on {what} after {attempt} tries (last: {last}). The service may be "
                    "degraded: try again in a few minutes."
                )
            self.stats["GET retries"] += 1
            log.debug("retrying %s after %s", what, last)
            await self._sleep(self.policy.backoff(attempt))


def _with(reason: str) -> str:
    return f" ({reason})" if reason else ""
