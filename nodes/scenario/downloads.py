"""Result downloads: the bytes behind a signed URL, fetched without credentials (the content client
carries no Authorization header). Redirects are followed by hand, each hop checked against the URL
policy; bodies over ``max_bytes`` (counted decoded: a compression bomb stops too) and non-image
types are refused. Retries are ``ScenarioClient.download``'s; a 403 is :class:`ContentExpired`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ScenarioBadResponse, ScenarioError, ScenarioRequestError
from .urls import check_download_url

# Anything else (an HTML login page, a JSON error) is refused instead of reaching the image decoder.
IMAGE_CONTENT_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")
ERROR_BODY_BYTES = 64 * 1024  # how much of a non-200 download answer is read for its message


class ContentExpired(ScenarioError):
    """The signed content URL answered 403: the caller fetches the asset again for a fresh URL."""


@dataclass(frozen=True)
class DownloadLimits:
    max_redirects: int
    max_bytes: int
    api_is_loopback: bool  # plain http is accepted only to a loopback host from a loopback API


async def fetch_content(content_client: Any, url: str, what: str, limits: DownloadLimits) -> Any:
    """One download attempt: a complete ``httpx.Response`` (non-200 answers keep a short body)."""
    current = url
    for _hop in range(limits.max_redirects + 1):
        check_download_url(current, what, limits.api_is_loopback)
        request = content_client.build_request("GET", current)
        response = await content_client.send(request, stream=True)
        try:
            if response.is_redirect and response.headers.get("location"):
                current = str(response.url.join(response.headers["location"]))
                continue
            return await _whole_answer(response, what, limits.max_bytes)
        finally:
            await response.aclose()
    raise ScenarioBadResponse(
        f"the download of {what} was redirected more than {limits.max_redirects} times; it was "
        "abandoned. A proxy or the storage service is misbehaving: try again later."
    )


async def _whole_answer(response: Any, what: str, cap: int) -> Any:
    """A streamed, non-redirect answer read whole: an error's first bytes, or the checked image."""
    if response.status_code != 200:
        body = await _read_capped(response, ERROR_BODY_BYTES, allow_truncation=True)
        return _whole(response, body or b"")
    _check_image_type(response, what)
    announced = response.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > cap:
        raise _too_large(what, cap, int(announced))
    body = await _read_capped(response, cap)
    if body is None:
        raise _too_large(what, cap, None)
    return _whole(response, body)


def content_of(response: Any, what: str) -> bytes:
    """The bytes of a final download answer, or the error it means."""
    if response.status_code == 403:
        raise ContentExpired(f"the download link of {what} expired (403)", status=403)
    if response.status_code != 200:
        raise ScenarioRequestError(
            f"downloading {what} failed with HTTP {response.status_code}.", status=response.status_code
        )
    return response.content


def _check_image_type(response: Any, what: str) -> None:
    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype and not ctype.startswith(IMAGE_CONTENT_TYPES):
        raise ScenarioBadResponse(
            f"the download of {what} answered {ctype} instead of an image (from {origin_of(response.url)}). "
            "A proxy, captive portal or firewall may be in the way: check the connection and run again."
        )


def _too_large(what: str, cap: int, size: int | None) -> ScenarioBadResponse:
    cap_mb = cap / (1024 * 1024)
    said = f" ({size / (1024 * 1024):.3g} MB announced)" if size is not None else ""
    return ScenarioBadResponse(
        f"the download of {what} is larger than the {cap_mb:.3g} MB this node accepts{said}; it was "
        "abandoned. A control map is far smaller: the download link or a proxy is serving something else."
    )


def _whole(streamed: Any, body: bytes) -> Any:
    """A complete response holding ``body`` (already decoded) in place of a streamed one."""
    import httpx

    # The body is decoded and may be cut short: headers describing the wire form no longer apply.
    wire = {"content-encoding", "content-length", "transfer-encoding"}
    headers = [(k, v) for k, v in streamed.headers.multi_items() if k.lower() not in wire]
    return httpx.Response(streamed.status_code, headers=headers, content=body, request=streamed.request)


async def _read_capped(response: Any, cap: int, allow_truncation: bool = False) -> bytes | None:
    """The decoded body, at most ``cap`` bytes: None when longer (its first ``cap`` bytes when
    ``allow_truncation``)."""
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


def origin_of(url: Any) -> str:
    try:
        return f"{url.scheme}://{url.netloc.decode('ascii')}"
    except (AttributeError, UnicodeDecodeError):
        return "the download host"
