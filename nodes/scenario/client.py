"""httpx transport to the Scenario API: Basic auth, retry policy, typed secret-free errors.

Policy (why): a POST to ``/generate/detect`` creates a billed job, so a POST that may have reached
the server is never retried: the error says so and the person decides. Which httpx errors mean
what (:func:`never_sent`):

- *nothing was sent*, so nothing was created: ``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``
  (retried, for POSTs too), and ``ProxyError``, ``UnsupportedProtocol``, ``InvalidURL``,
  ``LocalProtocolError`` (our side or the configuration is wrong: not retried, the error says what
  to fix). A redirect answer is never followed by the API client (it would carry the key).
- *may have reached the server*: every other error: ``ReadTimeout``, ``WriteTimeout``,
  ``ReadError``, ``WriteError``, ``CloseError``, ``RemoteProtocolError``, ``DecodingError`` (an answer
  came but could not be decoded), 5xx answers, and anything unknown. A POST failing this way raises
  :class:`ScenarioMaybeSent` and is never repeated.

POSTs are otherwise retried only on 429, after the wait the server asks for (``Retry-After`` or
``remainingSeconds``, capped). GETs (job, asset, content) are retried with exponential backoff and
jitter on 408/429/5xx and on transient transport errors (timeouts, broken connections, broken
HTTP or encoding); configuration errors fail at once.

Result downloads (:meth:`ScenarioClient.download`) go through a second client that never carries
the Authorization header, accept ``https://`` only (plain ``http://`` for loopback hosts only),
follow at most ``RetryPolicy.max_redirects`` redirects (each hop checked again), refuse bodies over
``RetryPolicy.max_download_bytes`` and content that is not an image type. Server-supplied ids go
into paths through :func:`api_path`, which escapes each segment, and every API path is checked to
stay under the API root.

Test guard: when ``SCENARIO_DETECT_TEST_GUARD`` names a file (the test harness sets it), both
clients refuse any request to a host that is not loopback, before connecting, and append a line
to that file; the harness fails the test that did it. Outside tests the variable is not set.

httpx is imported inside the functions: the pack must load without paying for it.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from .credentials import Credentials, check_base_url, is_loopback_host
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
GUARD_ENV = "SCENARIO_DETECT_TEST_GUARD"
JOBS_PAGE = "https://app.scenario.com"
# Content types a result download may have; anything else (an HTML login page, a JSON or XML
# error) is refused with a clear error instead of being handed to the image decoder.
IMAGE_CONTENT_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")
ERROR_BODY_BYTES = 64 * 1024  # how much of a non-200 download answer is read for its message


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


class ContentExpired(ScenarioError):
    """The signed content URL answered 403: the caller fetches the asset again for a fresh URL."""


class TestGuardBlocked(ScenarioUnreachable):
    """The test harness's guard refused a request to a non-loopback host (nothing was sent)."""

    __test__ = False  # not a pytest test class, whatever its name


@dataclass
class ApiResponse:
    status: int
    data: dict[str, Any]


# -- paths -----------------------------------------------------------------------------------------


def api_path(*segments: str) -> str:
    """``/jobs/<id>/action`` from its segments, each percent-escaped as one path segment, so a
    server-supplied id such as ``../x``, ``a/action`` or ``a?b`` stays one segment under the API
    root. An id that is only dots cannot be made safe that way (servers may decode and resolve
    ``%2E%2E``) and is refused. Use it for every path that holds an id::

        await client.get(api_path("jobs", job_id), what=f"job {job_id}")
    """
    out = []
    for segment in segments:
        text = str(segment)
        if not text or set(text) == {"."}:
            raise ScenarioBadResponse(
                f"Scenario returned an id ({_shown(text)}) that cannot be used in a request path; "
                "its answer looks damaged or was altered on the way."
            )
        out.append(quote(text, safe=""))
    return "/" + "/".join(out)


def _shown(value: str) -> str:
    return repr(scrub(value)[:80])


def _check_api_path(path: str) -> str:
    """``path`` relative to the API root, or a ScenarioBadResponse when it would leave the root or
    smuggle a query (an unescaped server id): such a request is never sent with the key."""
    relative = path.lstrip("/")
    segments = [unquote(s) for s in relative.split("/")]
    if "?" in relative or "#" in relative or any(s in (".", "..") for s in segments) or "\\" in relative:
        raise ScenarioBadResponse(
            f"refusing to send {_shown(path)}: a server-supplied id would leave the API root or add a query. "
            "Scenario's answer looks damaged or was altered on the way."
        )
    return relative


def check_download_url(url: str, what: str, api_is_loopback: bool = False) -> str:
    """``url`` when a result may be downloaded from it: https, or plain http to a loopback host
    when the API address itself is loopback (a local test server); no user name or password in
    it. Otherwise a ScenarioBadResponse (nothing is requested)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    where = f"{parts.scheme}://{host}" if parts is not None and host else "an unusable address"
    if parts is None or not host or parts.scheme not in ("http", "https"):
        problem = "is not an http(s) address"
    elif parts.username is not None or parts.password is not None:
        problem = "carries a user name or password"
    elif parts.scheme == "http" and not (api_is_loopback and is_loopback_host(host)):
        problem = "uses plain http:// (only https is accepted; plain http only to this machine, from an API on it)"
    else:
        return url
    raise ScenarioBadResponse(
        f"the download link Scenario gave for {what} ({where}) {problem}; it was not fetched. "
        "If a proxy rewrites Scenario's answers, bypass it for api.cloud.scenario.com."
    )


# -- transport errors ------------------------------------------------------------------------------


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Every exception a request can raise that is not our own: httpx's, and OS/TLS errors."""
    import httpx

    return (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, httpx.CookieConflict, OSError)


def never_sent(exc: BaseException) -> bool:
    """True when ``exc`` proves no request reached the server (so nothing was created or billed)."""
    import httpx

    return isinstance(
        exc,
        (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.PoolTimeout,
            httpx.ProxyError,
            httpx.UnsupportedProtocol,
            httpx.InvalidURL,
            httpx.LocalProtocolError,
        ),
    )


def _retryable(exc: BaseException) -> bool:
    """Transient: the same request may well work a moment later."""
    import httpx

    return isinstance(
        exc,
        (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.DecodingError, OSError),
    )


def _explain(exc: BaseException, timeout_s: float | None) -> tuple[str, str]:
    """(what went wrong, what to do) in words, for one transport exception."""
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


def _cause(exc: BaseException) -> str:
    """``Name: detail`` of an exception, scrubbed and short (httpx details may hold a signed URL)."""
    detail = scrub(exc).strip()
    detail = detail[:200] + ("..." if len(detail) > 200 else "")
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def transport_error(
    exc: BaseException, what: str, *, target: str, method: str, timeout_s: float | None = None
) -> ScenarioError:
    """The pack's error for a transport exception of a request to ``target`` (an origin or API
    address). POSTs that may have reached the server become :class:`ScenarioMaybeSent`."""
    cause, advice = _explain(exc, timeout_s)
    if never_sent(exc):
        return ScenarioUnreachable(
            f"cannot reach {target} for {what}: {cause} ({_cause(exc)}). Nothing was sent, so nothing was "
            f"created or billed. {advice}"
        )
    if method == "POST":
        return ScenarioMaybeSent(
            f"{what} was sent to Scenario but {cause} ({type(exc).__name__}). It was NOT retried "
            "automatically, so that a job is never created (and billed) twice: check your jobs at "
            f"{JOBS_PAGE} before running again."
        )
    if isinstance(exc, OSError) or _retryable(exc):
        return ScenarioServerError(f"{what} failed at {target}: {cause} ({_cause(exc)}). {advice}")
    return ScenarioBadResponse(f"{what} failed at {target}: {cause} ({_cause(exc)}). {advice}")


def _origin(url: Any) -> str:
    try:
        return f"{url.scheme}://{url.netloc.decode('ascii')}"
    except (AttributeError, UnicodeDecodeError):
        return "the download host"


# -- responses ------------------------------------------------------------------------------------


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
            if isinstance(body.get(key), (int, float)) and not isinstance(body.get(key), bool):
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


async def _test_guard(request: Any) -> None:
    """httpx request hook: under the test harness, refuse (and record) a non-loopback host."""
    record = os.environ.get(GUARD_ENV)
    if not record or is_loopback_host(request.url.host):
        return
    line = f"{request.method} {request.url.scheme}://{request.url.host}{request.url.path}"
    try:
        with open(record, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {line}\n")
    except OSError:
        pass  # the refusal below still stops the request
    raise TestGuardBlocked(
        f"test guard: refused {request.method} to {request.url.host}, which is not this machine; tests must "
        f"never reach the real Scenario API ({GUARD_ENV} is set)."
    )


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
        hooks = {"request": [_test_guard]}
        self._api = httpx.AsyncClient(
            base_url=self.credentials.base_url + "/",
            auth=httpx.BasicAuth(self.credentials.api_key, self.credentials.api_secret),
            timeout=timeout,
            limits=limits,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,  # a redirect would carry the Authorization header elsewhere
            trust_env=True,  # proxies and CA bundles from the environment (httpx 0.28 reads no netrc)
            event_hooks=hooks,
        )
        # No auth, no shared cookies; redirects followed by hand so that each hop is checked.
        self._content = httpx.AsyncClient(
            timeout=timeout,
            limits=limits,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept": "image/*"},
            event_hooks=hooks,
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

    def _redirect_error(self, response: Any, what: str) -> ScenarioError:
        location = response.headers.get("location", "")
        try:
            to = f" to {_origin(response.url.join(location))}" if location else ""
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
        """POST without duplicates: see the module docstring for the policy. ``path`` is relative to
        the API root; build it with :func:`api_path` when it holds a server-supplied id."""
        import httpx

        relative = _check_api_path(path)
        errors = _transport_errors()
        connect_failures = 0
        attempt = 0
        read_timeout = self.policy.read_timeout_s if timeout_s is None else timeout_s
        while True:
            self.stats[f"POST {relative.split('/')[0]}"] += 1
            failed: ScenarioError | None = None
            try:
                extra = (
                    {}
                    if timeout_s is None
                    else {"timeout": httpx.Timeout(timeout_s, connect=self.policy.connect_timeout_s)}
                )
                response = await self._api.post(relative, json=body, params=query, **extra)
            except errors as exc:
                response = None
                retry = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
                connect_failures += 1
                if not (retry and connect_failures < self.policy.post_connect_attempts):
                    failed = transport_error(
                        exc, what, target=f"the Scenario API at {self.credentials.base_url}", method="POST",
                        timeout_s=self._timeout_of(exc, read_timeout),
                    )
            if failed is not None:
                raise failed  # outside the except: httpx's exception holds the Authorization header
            if response is None:
                # Nothing left this machine: safe to try again.
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

    async def get(self, path: str, *, what: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        """GET a JSON object from the API, retried as the module docstring says. ``path`` is relative
        to the API root; build it with :func:`api_path` when it holds a server-supplied id."""
        relative = _check_api_path(path)
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
        """Bytes behind a signed URL, without credentials (see the module docstring for the checks).
        Raises ContentExpired on 403 (the caller re-fetches the asset for a fresh URL)."""
        response = await self._get_with_retries(
            lambda: self._fetch_content(url, what), what, kind="GET content", target="the download host"
        )
        if response.status_code == 403:
            raise ContentExpired(f"the download link of {what} expired (403)", status=403)
        if response.status_code != 200:
            raise ScenarioRequestError(
                f"downloading {what} failed with HTTP {response.status_code}.", status=response.status_code
            )
        return response.content

    async def _fetch_content(self, url: str, what: str) -> Any:
        """One download attempt: redirects followed by hand (each hop checked), the body read up to
        the cap. Returns a complete ``httpx.Response`` (non-200 answers keep a short body)."""

        current = url
        api_is_loopback = is_loopback_host(urlsplit(self.credentials.base_url).hostname)
        for _hop in range(self.policy.max_redirects + 1):
            check_download_url(current, what, api_is_loopback)
            request = self._content.build_request("GET", current)
            response = await self._content.send(request, stream=True)
            try:
                if response.is_redirect and response.headers.get("location"):
                    current = str(response.url.join(response.headers["location"]))
                    continue
                if response.status_code != 200:
                    body = await _read_capped(response, ERROR_BODY_BYTES, allow_truncation=True)
                    return _whole(response, body)
                self._check_image_type(response, what)
                cap = self.policy.max_download_bytes
                announced = response.headers.get("content-length", "")
                if announced.isdigit() and int(announced) > cap:
                    raise self._too_large(what, int(announced))
                body = await _read_capped(response, cap)
                if body is None:
                    raise self._too_large(what, None)
                return _whole(response, body)
            finally:
                await response.aclose()
        raise ScenarioBadResponse(
            f"the download of {what} was redirected more than {self.policy.max_redirects} times; it was "
            "abandoned. A proxy or the storage service is misbehaving: try again later."
        )

    def _check_image_type(self, response: Any, what: str) -> None:
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and not ctype.startswith(IMAGE_CONTENT_TYPES):
            raise ScenarioBadResponse(
                f"the download of {what} answered {ctype} instead of an image (from {_origin(response.url)}). "
                "A proxy, captive portal or firewall may be in the way: check the connection and run again."
            )

    def _too_large(self, what: str, size: int | None) -> ScenarioBadResponse:
        cap_mb = self.policy.max_download_bytes / (1024 * 1024)
        said = f" ({size / (1024 * 1024):.3g} MB announced)" if size is not None else ""
        return ScenarioBadResponse(
            f"the download of {what} is larger than the {cap_mb:.3g} MB this node accepts{said}; it was "
            "abandoned. A control map is far smaller: the download link or a proxy is serving something else."
        )

    def _timeout_of(self, exc: BaseException, read_timeout_s: float | None = None) -> float:
        """The limit that ``exc`` (a timeout) ran into, for the message."""
        import httpx

        if isinstance(exc, httpx.ConnectTimeout):
            return self.policy.connect_timeout_s
        return self.policy.read_timeout_s if read_timeout_s is None else read_timeout_s

    async def _get_with_retries(
        self, send: Callable[[], Awaitable[Any]], what: str, *, kind: str, target: str
    ) -> Any:
        errors = _transport_errors()
        last = ""
        rate_attempt = 0
        attempt = 0
        while True:
            self.stats[kind] += 1
            failed: ScenarioError | None = None
            try:
                response = await send()
            except errors as exc:
                if not _retryable(exc) or (never_sent(exc) and attempt + 1 >= self.policy.get_attempts):
                    timeout_s = self._timeout_of(exc)
                    failed = transport_error(exc, what, target=target, method="GET", timeout_s=timeout_s)
                last = _cause(exc)
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


def _whole(streamed: Any, body: bytes) -> Any:
    """A complete response holding ``body`` (already decoded) in place of a streamed one."""
    import httpx

    # The body is decoded and may be cut short: headers describing the wire form no longer apply.
    wire = {"content-encoding", "content-length", "transfer-encoding"}
    headers = [(k, v) for k, v in streamed.headers.multi_items() if k.lower() not in wire]
    return httpx.Response(streamed.status_code, headers=headers, content=body, request=streamed.request)


async def _read_capped(response: Any, cap: int, allow_truncation: bool = False) -> bytes | None:
    """The decoded body, at most ``cap`` bytes: None when it is longer (or its first ``cap`` bytes
    when ``allow_truncation``). Counting decoded bytes also stops a compression bomb."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > cap:
            if allow_truncation:
                chunks.append(chunk[: cap - (size - len(chunk))])
                break
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _with(reason: str) -> str:
    return f" ({reason})" if reason else ""
