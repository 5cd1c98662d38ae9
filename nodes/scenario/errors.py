"""Errors of the Scenario backend: each says what happened and what to do, never a secret
(:func:`scrub` removes URL queries, ``Basic``/``Bearer`` credentials and registered secrets)."""

from __future__ import annotations

import re
import threading

# Scrubbing twice must change nothing: a query already removed is left as it is.
_URL_QUERY = re.compile(r"(https?://[^\s?#\"'<>]+)\?[^\s\"'<>]+", re.IGNORECASE)
_AUTH = re.compile(r"\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{6,}", re.IGNORECASE)
_SIGNED = re.compile(r"(X-Amz-[A-Za-z-]+|Signature|Key-Pair-Id|Policy|Expires)=[^\s&\"'<>]+", re.IGNORECASE)

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(*values: str) -> None:
    """Remember strings that :func:`scrub` must blank out (the API key and secret)."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= 4)


def scrub(text: object) -> str:
    """``text`` without URL queries, auth headers' credentials or registered secrets."""
    out = str(text)
    out = _URL_QUERY.sub(r"\1?<query removed>", out)
    out = _AUTH.sub("<credentials redacted>", out)
    out = _SIGNED.sub(r"\1=<redacted>", out)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        out = out.replace(secret, "<redacted>")
    return out


class ScenarioError(Exception):
    """Base class; ``str()`` is a complete, secret-free message for the person at the screen."""

    def __init__(self, message: str, job_id: str | None = None, status: int | None = None):
        super().__init__(scrub(message))
        self.job_id = job_id
        self.status = status

    def extend_message(self, text: str) -> None:
        """Add ``text`` (scrubbed) to the message, e.g. what the run cost before it failed."""
        self.args = (scrub(f"{self.args[0] if self.args else ''}{text}"),)


class ScenarioAuthError(ScenarioError):
    """Missing, wrong or insufficient credentials (no key found, 401, 403)."""


class ScenarioConfigError(ScenarioAuthError):
    """The credentials file or the API address is unusable (unreadable, not JSON, plain http...)."""


class ScenarioRequestError(ScenarioError):
    """The API refused the request's content (400, 404, 413, 422): fix the input, then retry."""


class ScenarioRateLimited(ScenarioError):
    """429 that outlasted our waiting budget."""


class ScenarioUnreachable(ScenarioError):
    """No connection to the API (DNS, refused, TLS, proxy, unsupported address): nothing reached the
    server, so nothing was created or billed."""


class ScenarioMaybeSent(ScenarioError):
    """A POST that may have reached the server failed (5xx, timeout after sending): never retried."""


class ScenarioServerError(ScenarioError):
    """A GET kept failing with 5xx or timeouts after all retries."""


class ScenarioBadResponse(ScenarioError):
    """The server answered something that is not the API (HTML page, broken JSON, not an image)."""


class ScenarioJobFailed(ScenarioError):
    """The remote job ended in failure (``metadata.error`` / ``metadata.hint``) or was canceled."""


class ScenarioTimeout(ScenarioError):
    """The job did not finish within the user's timeout; the message says whether Scenario confirmed its cancel."""


class ScenarioBatchError(ScenarioError):
    """Images of a batch failed; the message names each with its reason, what was kept and spent
    (``index``: the first failed image, 0-based; ``cause``: its error)."""

    def __init__(self, message: str, index: int = 0, cause: ScenarioError | None = None):
        super().__init__(message, job_id=getattr(cause, "job_id", None), status=getattr(cause, "status", None))
        self.index = index
        self.cause = cause
