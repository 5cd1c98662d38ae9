"""What a failed HTTP request means, in the pack's errors: sent or not, retry or not, what to do.

Which httpx errors mean what (:func:`never_sent`):

- *nothing was sent*, so nothing was created: ``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``
  (retried, for POSTs too), and ``ProxyError``, ``UnsupportedProtocol``, ``InvalidURL``,
  ``LocalProtocolError`` (our side or the configuration is wrong: not retried, the error says what
  to fix).
- *may have reached the server*: every other error: ``ReadTimeout``, ``WriteTimeout``,
  ``ReadError``, ``WriteError``, ``CloseError``, ``RemoteProtocolError``, ``DecodingError`` (an answer
  came but could not be decoded), and anything unknown. A POST failing this way raises
  :class:`ScenarioMaybeSent` and is never repeated.

The pack's error is built from scrubbed words only, and callers raise it outside their ``except``
block: httpx's exception holds the request (its Authorization header, a signed URL) and must not
stay reachable as ``__context__``. httpx is imported inside the functions.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    ScenarioBadResponse,
    ScenarioError,
    ScenarioMaybeSent,
    ScenarioServerError,
    ScenarioUnreachable,
    scrub,
)

JOBS_PAGE = "https://app.scenario.com"


def transport_errors() -> tuple[type[BaseException], ...]:
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


def retryable(exc: BaseException) -> bool:
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


def cause_of(exc: BaseException) -> str:
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


def origin_of(url: Any) -> str:
    try:
        return f"{url.scheme}://{url.netloc.decode('ascii')}"
    except (AttributeError, UnicodeDecodeError):
        return "the download host"
