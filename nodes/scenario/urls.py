"""Where the key and a result may go: the URL policy of the Scenario backend.

The API address is ``https://`` (plain ``http://`` only to a loopback host), never with a user
name, password, query or fragment. Server-supplied ids go into paths through :func:`api_path` and
every path stays under the API root (:func:`check_api_path`). Result downloads are ``https://``, or
plain ``http://`` to a loopback host when the API itself is loopback (a local test server).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import quote, unquote, urlsplit

from .errors import ScenarioBadResponse, ScenarioConfigError, scrub

DEFAULT_BASE_URL = "https://api.cloud.scenario.com/v1"


def resolve_addresses(name: str) -> list[str]:
    """Every address ``name`` resolves to on this machine ([] when it does not resolve)."""
    try:
        return [info[4][0] for info in socket.getaddrinfo(name, None)]
    except (OSError, UnicodeError):
        return []


def is_loopback_host(
    host_name: str | None, resolve: Callable[[str], Iterable[str]] = resolve_addresses
) -> bool:
    """True for ``localhost``, loopback IPs, and ``*.localhost`` names whose every address is
    loopback. Other names never count: a public name (``127.0.0.1.nip.io``) can resolve elsewhere by
    the time the request connects, and the key would cross the network in clear text."""
    if not host_name:
        return False
    name = host_name.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    if name.endswith(".localhost"):
        found = [_ip(a) for a in resolve(name)]
        return bool(found) and all(ip is not None and ip.is_loopback for ip in found)
    ip = _ip(name)
    return ip is not None and ip.is_loopback


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("%")[0])  # an IPv6 zone (fe80::1%eth0) is not part of it
    except ValueError:
        return None


def check_base_url(url: str, where: str) -> str:
    """``url`` without its trailing slash, or a ScenarioConfigError saying what is wrong with it
    (``where``: its source, for the message)."""
    url = url.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        parts = None
    shown = f"{parts.scheme}://{parts.hostname}" if parts and parts.hostname else "it"
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problem = "is not an http(s) address with a host name"
    elif parts.username is not None or parts.password is not None:
        problem = "carries a user name or password; the key and secret are sent by this node itself"
    elif parts.query or parts.fragment:
        problem = "has a query or fragment; give the API root only, e.g. " + DEFAULT_BASE_URL
    elif parts.scheme == "http" and not is_loopback_host(parts.hostname):
        problem = (
            f"uses plain http:// to {parts.hostname}, which would send the key unencrypted; use https:// "
            "(plain http is accepted for this machine only: localhost, 127.0.0.1, ::1)"
        )
    else:
        return url
    raise ScenarioConfigError(f"the Scenario API address from {where} ({shown}) {problem}.")


def api_path(*segments: str) -> str:
    """``/jobs/<id>/action`` from its segments, each escaped as one segment, so a server-supplied id
    (``../x``, ``a/action``, ``a?b``) stays one segment under the API root. An id of dots only is
    refused (servers may decode and resolve ``%2E%2E``)."""
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


def check_api_path(path: str) -> str:
    """``path`` relative to the API root, or a ScenarioBadResponse when it would leave the root or
    smuggle a query: such a request is never sent with the key."""
    relative = path.lstrip("/")
    segments = [unquote(s) for s in relative.split("/")]
    if "?" in relative or "#" in relative or any(s in (".", "..") for s in segments) or "\\" in relative:
        raise ScenarioBadResponse(
            f"refusing to send {_shown(path)}: a server-supplied id would leave the API root or add a query. "
            "Scenario's answer looks damaged or was altered on the way."
        )
    return relative


def check_download_url(url: str, what: str, api_is_loopback: bool = False) -> str:
    """``url`` when a result may be downloaded from it (see the module docstring), else a
    ScenarioBadResponse (nothing is requested)."""
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


def api_is_loopback(base_url: str) -> bool:
    """True when the API address is on this machine (plain-http downloads are then allowed)."""
    try:
        return is_loopback_host(urlsplit(base_url).hostname)
    except ValueError:
        return False
