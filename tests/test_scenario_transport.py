"""The Scenario HTTP client on its own, over real loopback HTTP: every httpx error becomes one of the
pack's errors with a message a person can act on; a POST that may have reached the server is never
repeated; result downloads carry no credentials, stay on https (plain http on loopback only),
follow bounded and re-checked redirects, are capped in size and must be images; server ids stay
inside the API root; the API client never follows a redirect. No secret in any message or log."""

from __future__ import annotations

import asyncio
import base64
import gzip
import inspect
import io
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import numpy as np
import pytest
from fake_scenario import FakeScenario
from PIL import Image
from scenario_support import FAST_POLICY, assert_no_secret, creds, secret_free_logs_fixture

from scenario_detect.nodes.scenario.client import RetryPolicy, ScenarioClient, never_sent, transport_error
from scenario_detect.nodes.scenario.credentials import Credentials
from scenario_detect.nodes.scenario.downloads import ContentExpired
from scenario_detect.nodes.scenario.errors import (
    ScenarioBadResponse,
    ScenarioConfigError,
    ScenarioError,
    ScenarioMaybeSent,
    ScenarioRequestError,
    ScenarioServerError,
    ScenarioUnreachable,
)
from scenario_detect.nodes.scenario.urls import api_path

pytestmark = pytest.mark.timeout(60)

DETECT = "/generate/detect"


@pytest.fixture()
def fake() -> Iterator[FakeScenario]:
    with FakeScenario(job_seconds=0.1) as server:
        yield server


_no_secret_in_logs = secret_free_logs_fixture()


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


DETECT_BODY = {"image": "data:image/png;base64," + base64.b64encode(_png()).decode(), "modality": "canny"}


def with_client(
    credentials: Credentials, action: Callable[[ScenarioClient], Awaitable[Any]], **policy: Any
) -> tuple[Any, ScenarioClient]:
    """Run ``action(client)`` in a fresh client session; (its result, the client for its stats)."""
    client = ScenarioClient(credentials, RetryPolicy(**{**FAST_POLICY, **policy}))

    async def go() -> Any:
        async with client:
            return await action(client)

    return asyncio.run(go()), client


def fails(exc_type: type[ScenarioError], fake: FakeScenario, credentials: Credentials, action, **policy) -> str:
    """The message of the error ``action`` must raise; checked to hold no secret and no traceback,
    and that no exception reachable from it (``__cause__``, ``__context__``) carries one."""
    with pytest.raises(exc_type) as info:
        with_client(credentials, action, **policy)
    text = str(info.value)
    assert_no_secret(text, fake)
    assert "Traceback" not in text and info.value.__cause__ is None
    assert_chain_holds_no_secret(info.value, fake)
    return text


def exception_chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception reachable from it through ``__cause__`` and ``__context__``."""
    seen: list[BaseException] = []
    stack: list[BaseException | None] = [error]
    while stack:
        exc = stack.pop()
        if exc is None or any(exc is s for s in seen):
            continue
        seen.append(exc)
        stack += [exc.__cause__, exc.__context__]
    return seen


def _carried_text(exc: BaseException) -> list[str]:
    """Everything an exception object holds that a handler, a logger or a debugger would show:
    message, args, attributes, and for httpx exceptions the request's URL and raw headers (their
    repr masks Authorization; the values are still there)."""
    texts = [str(exc), repr(exc), *map(repr, exc.args), *map(repr, vars(exc).values())]
    texts.append(repr(getattr(exc, "object", "")))  # UnicodeDecodeError's bytes are not in vars()
    request = getattr(exc, "_request", None)
    if request is not None:
        texts += [str(request.url), *(f"{name}: {value}" for name, value in request.headers.items())]
    return texts


def assert_chain_holds_no_secret(error: BaseException, fake: FakeScenario) -> None:
    basic = base64.b64encode(f"{fake.key}:{fake.secret}".encode()).decode()
    for exc in exception_chain(error):
        for text in _carried_text(exc):
            for needle in (fake.key, fake.secret, basic, "X-Amz-Signature=", "Signature="):
                assert needle not in text, f"{type(exc).__name__} from {type(error).__name__} holds {needle!r}"


def result_url(fake: FakeScenario, mode: str = "normal") -> str:
    """A finished job's signed result URL in one of the fake's forms (see FakeScenario.content_url)."""
    fake.immediate_success = True
    fake.content_url = mode
    (answer, _) = with_client(creds(fake), lambda c: c.post(DETECT, DETECT_BODY, what="the detect request"))
    return answer.data["asset"]["url"]


# -- every httpx exception type -------------------------------------------------------------------


def _httpx_exception_types() -> list[type[Exception]]:
    return sorted(
        (
            obj
            for name in httpx.__all__
            if inspect.isclass(obj := getattr(httpx, name)) and issubclass(obj, Exception)
        ),
        key=lambda t: t.__name__,
    )


def _instance(kind: type[Exception]) -> Exception:
    request = httpx.Request("POST", "https://api.example/v1/generate/detect?X-Amz-Signature=abc")
    if kind is httpx.HTTPStatusError:
        return kind("500", request=request, response=httpx.Response(500, request=request))
    if issubclass(kind, httpx.RequestError):
        return kind("boom at https://cdn.example/a.png?X-Amz-Signature=abc", request=request)
    try:
        return kind("boom")
    except TypeError:  # StreamConsumed and its kin take no message
        return kind()


NOT_SENT = {"ConnectError", "ConnectTimeout", "PoolTimeout", "ProxyError", "UnsupportedProtocol", "InvalidURL",
            "LocalProtocolError"}


@pytest.mark.parametrize("kind", _httpx_exception_types(), ids=lambda t: t.__name__)
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_every_httpx_error_type_becomes_an_actionable_pack_error(kind: type[Exception], method: str) -> None:
    exc = _instance(kind)
    error = transport_error(exc, "the detect request", target="the Scenario API at https://api.example/v1",
                            method=method, timeout_s=30)
    text = str(error)
    assert isinstance(error, ScenarioError)
    assert "X-Amz-Signature=abc" not in text and "Traceback" not in text
    assert text.rstrip().endswith((".", ")")) and len(text) > 60  # a sentence with advice, not a bare name
    assert never_sent(exc) == (kind.__name__ in NOT_SENT)
    if kind.__name__ in NOT_SENT:
        assert isinstance(error, ScenarioUnreachable) and "Nothing was sent" in text
    elif method == "POST":
        # Anything else may have reached the server: a detect is never repeated blindly.
        assert isinstance(error, ScenarioMaybeSent) and "NOT retried" in text and "app.scenario.com" in text
    else:
        assert isinstance(error, (ScenarioServerError, ScenarioBadResponse))


def test_the_table_covers_every_httpx_exception_type() -> None:
    """A new httpx exception type must be classified here (and in client.never_sent) on purpose."""
    known = NOT_SENT | {
        "CloseError", "CookieConflict", "DecodingError", "HTTPError", "HTTPStatusError", "NetworkError",
        "ProtocolError", "ReadError", "ReadTimeout", "RemoteProtocolError", "RequestError", "RequestNotRead",
        "ResponseNotRead", "StreamClosed", "StreamConsumed", "StreamError", "TimeoutException", "TooManyRedirects",
        "TransportError", "WriteError", "WriteTimeout",
    }
    assert {t.__name__ for t in _httpx_exception_types()} == known


# -- the POST policy over real HTTP ----------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection_is_retried_then_says_nothing_was_sent(fake: FakeScenario) -> None:
    dead = Credentials(fake.key, fake.secret, f"http://127.0.0.1:{_closed_port()}/v1", "test")
    client_box: list[ScenarioClient] = []

    async def post(c: ScenarioClient):
        client_box.append(c)
        return await c.post(DETECT, DETECT_BODY, what="the detect request")

    text = fails(ScenarioUnreachable, fake, dead, post)
    assert "Nothing was sent" in text and "ConnectError" in text
    assert client_box[0].stats["POST generate"] == RetryPolicy().post_connect_attempts


@pytest.mark.parametrize("action", ["bad_encoding", "reset", "drop"])
def test_detect_answer_that_breaks_after_sending_is_never_repeated(fake: FakeScenario, action: str) -> None:
    """An undecodable answer, a reset or a hang-up after the job was created: one POST, one job."""
    fake.add_fault("POST", DETECT, 200, action=action, create_job=True)
    text = fails(ScenarioMaybeSent, fake, creds(fake),
                 lambda c: c.post(DETECT, DETECT_BODY, what="the detect request"))
    assert "NOT retried" in text
    assert len(fake.requests_to("POST", DETECT)) == 1 and len(fake.billed_jobs) == 1


def test_detect_read_timeout_names_the_wait_and_is_never_repeated(fake: FakeScenario) -> None:
    fake.add_fault("POST", DETECT, action="delay", delay_s=1.0, create_job=True)
    text = fails(ScenarioMaybeSent, fake, creds(fake),
                 lambda c: c.post(DETECT, DETECT_BODY, what="the detect request"), read_timeout_s=0.3)
    assert "no answer came within 0.3 s" in text and "ReadTimeout" in text
    assert len(fake.requests_to("POST", DETECT)) == 1


@pytest.mark.parametrize("action", ["bad_encoding", "reset", "drop"])
def test_a_poll_that_breaks_is_retried(fake: FakeScenario, action: str) -> None:
    job_id = with_client(creds(fake), lambda c: c.post(DETECT, DETECT_BODY, what="detect"))[0].data["job"]["jobId"]
    fake.add_fault("GET", "/jobs/", 200, action=action, times=2)
    data, client = with_client(creds(fake), lambda c: c.get(api_path("jobs", job_id), what="the job"))
    assert data["job"]["jobId"] == job_id and client.stats["GET retries"] == 2


def test_the_api_client_never_follows_a_redirect(fake: FakeScenario, real_api_guard) -> None:
    fake.add_fault("POST", DETECT, 307, headers={"Location": "https://elsewhere.example/v1/generate/detect"})
    text = fails(ScenarioBadResponse, fake, creds(fake),
                 lambda c: c.post(DETECT, DETECT_BODY, what="the detect request"))
    assert "redirect (HTTP 307) to https://elsewhere.example" in text and "not followed" in text
    assert len(fake.requests_to("POST", DETECT)) == 1
    assert real_api_guard.take() == []  # not even attempted


@pytest.mark.parametrize("base_url", ["http://api.example.com/v1", "ftp://127.0.0.1/v1"])
def test_credentials_built_in_code_cannot_send_the_key_in_clear(fake: FakeScenario, base_url: str) -> None:
    bad = Credentials(fake.key, fake.secret, base_url, "test")
    fails(ScenarioConfigError, fake, bad, lambda c: c.get("/jobs/x", what="a job"))
    assert fake.requests == []


# -- server-supplied ids ---------------------------------------------------------------------------


def test_api_path_escapes_each_segment() -> None:
    assert api_path("jobs", "job_1", "action") == "/jobs/job_1/action"
    assert api_path("jobs", "../../x") == "/jobs/..%2F..%2Fx"
    assert api_path("jobs", "a/action") == "/jobs/a%2Faction"
    assert api_path("assets", "a?b#c") == "/assets/a%3Fb%23c"
    for hostile in ("..", ".", ""):
        with pytest.raises(ScenarioBadResponse):
            api_path("jobs", hostile)


def test_an_escaped_hostile_id_stays_under_v1(fake: FakeScenario) -> None:
    fails(ScenarioRequestError, fake, creds(fake),
          lambda c: c.get(api_path("jobs", "../../content/x"), what="job ../../content/x"))
    [request] = fake.requests
    assert request.path.startswith("/v1/jobs/") and request.path.count("/") == 3
    assert request.headers.get("Authorization")  # the API client does send the key, to the API only


@pytest.mark.parametrize("path", ["/jobs/../assets/x", "/jobs/x?admin=1", "/jobs/%2E%2E/x", "/jobs/x#y"])
def test_a_path_that_would_leave_the_api_root_is_never_sent(fake: FakeScenario, path: str) -> None:
    text = fails(ScenarioBadResponse, fake, creds(fake), lambda c: c.get(path, what="a job"))
    assert "leave the API root" in text
    fails(ScenarioBadResponse, fake, creds(fake), lambda c: c.post(path, {}, what="a cancel"))
    assert fake.requests == []


# -- result downloads ------------------------------------------------------------------------------


def _content_requests(fake: FakeScenario) -> list:
    return [r for r in fake.requests if not r.path.startswith("/v1/")]


@pytest.mark.parametrize("mode", ["normal", "other_host"])
def test_downloads_never_carry_credentials(fake: FakeScenario, mode: str) -> None:
    url = result_url(fake, mode)
    content, _ = with_client(creds(fake), lambda c: c.download(url, what="the result"))
    assert content.startswith(b"\x89PNG")
    [request] = _content_requests(fake)
    assert not any(name.lower() in ("authorization", "cookie") for name in request.headers)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://storage.example.com/content/a.png?X-Amz-Signature=abc", "plain http://"),
        ("ftp://127.0.0.1/a.png", "not an http(s) address"),
        ("https://user:pw@127.0.0.1/a.png", "user name or password"),
        ("not a url", "not an http(s) address"),
    ],
)
def test_unsafe_download_links_are_not_fetched(fake: FakeScenario, real_api_guard, url: str, problem: str) -> None:
    text = fails(ScenarioBadResponse, fake, creds(fake), lambda c: c.download(url, what="asset a"))
    assert problem in text and "abc" not in text and "pw" not in text
    assert fake.requests == [] and real_api_guard.take() == []


def test_the_fakes_remote_http_link_is_refused(fake: FakeScenario, real_api_guard) -> None:
    url = result_url(fake, "http_remote")
    text = fails(ScenarioBadResponse, fake, creds(fake), lambda c: c.download(url, what="asset a"))
    assert "http://storage.example.com" in text and "plain http://" in text
    assert _content_requests(fake) == [] and real_api_guard.take() == []


def test_plain_http_downloads_only_when_the_api_itself_is_loopback(fake: FakeScenario, real_api_guard) -> None:
    """A loopback http link is a local test server's; from the https API it is a planted link."""
    url = result_url(fake)
    assert url.startswith("http://127.0.0.1:")
    remote_api = Credentials(fake.key, fake.secret, "https://api.example.com/v1", "test")
    text = fails(ScenarioBadResponse, fake, remote_api, lambda c: c.download(url, what="asset a"))
    assert "plain http://" in text and "from an API on it" in text
    assert _content_requests(fake) == [] and real_api_guard.take() == []
    content, _ = with_client(creds(fake), lambda c: c.download(url, what="asset a"))  # loopback API: allowed
    assert content.startswith(b"\x89PNG") and len(_content_requests(fake)) == 1


def test_redirects_are_bounded(fake: FakeScenario) -> None:
    url = result_url(fake, "redirect_loop")
    text = fails(ScenarioBadResponse, fake, creds(fake), lambda c: c.download(url, what="asset a"))
    assert "redirected more than 5 times" in text
    assert len(_content_requests(fake)) == 6  # the first request and 5 hops, then it stops


def test_every_redirect_hop_is_checked_again(fake: FakeScenario, real_api_guard) -> None:
    url = result_url(fake)
    fake.add_fault("GET", "/content/", 302, headers={"Location": "http://storage.example.com/a.png?X-Amz-Signature=z"})
    text = fails(ScenarioBadResponse, fake, creds(fake), lambda c: c.download(url, what="asset a"))
    assert "plain http://" in text and "storage.example.com" in text
    assert len(_content_requests(fake)) == 1 and real_api_guard.take() == []


def test_a_redirect_to_another_loopback_origin_is_followed_without_credentials(fake: FakeScenario) -> None:
    url = result_url(fake)
    local = url.replace("127.0.0.1", "localhost")
    fake.add_fault("GET", "/content/", 302, headers={"Location": local})
    content, _ = with_client(creds(fake), lambda c: c.download(url, what="asset a"))
    assert content.startswith(b"\x89PNG")
    hops = _content_requests(fake)
    assert len(hops) == 2 and hops[1].headers.get("Host", "").startswith("localhost")
    assert not any("authorization" == name.lower() for hop in hops for name in hop.headers)


def test_an_announced_oversized_body_is_refused_before_reading(fake: FakeScenario) -> None:
    url = result_url(fake, "oversized")
    text = fails(ScenarioBadResponse, fake, creds(fake), lambda c: c.download(url, what="asset a"))
    assert "larger than the 256 MB this node accepts (512 MB announced)" in text


def test_a_body_over_the_cap_is_refused(fake: FakeScenario) -> None:
    url = result_url(fake)
    text = fails(ScenarioBadResponse, fake, creds(fake), lambda c: c.download(url, what="asset a"),
                 max_download_bytes=100)
    assert "larger than" in text


def test_content_that_is_not_an_image_type_is_refused(fake: FakeScenario) -> None:
    url = result_url(fake)
    fake.add_fault("GET", "/content/", 200, action="html")
    text = fails(ScenarioBadResponse, fake, creds(fake), lambda c: c.download(url, what="asset a"))
    assert "text/html instead of an image" in text and "captive portal" in text


def test_an_expired_link_is_reported_for_a_fresh_one(fake: FakeScenario) -> None:
    url = result_url(fake)
    fake.expire_urls()
    fails(ContentExpired, fake, creds(fake), lambda c: c.download(url, what="asset a"))


def test_a_dead_download_host_is_unreachable_after_retries(fake: FakeScenario) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/content/a.png?X-Amz-Signature=secretsig"
    text = fails(ScenarioUnreachable, fake, creds(fake), lambda c: c.download(url, what="asset a"))
    assert "the download host" in text and "secretsig" not in text


# -- a server of our own for what the fake does not do: unannounced and compressed bodies ---------


class _Bodies(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/chunked"):
            # No Content-Length: the size is only known by counting.
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(64):
                self.wfile.write(b"4000\r\n" + b"\0" * 0x4000 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:  # a compression bomb: 20 kB on the wire, 20 MB decoded
            body = gzip.compress(b"\0" * (20 * 1024 * 1024))
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


@pytest.fixture()
def bodies() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Bodies)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path", ["/chunked", "/bomb"])
def test_unannounced_or_compressed_bodies_are_counted_against_the_cap(fake: FakeScenario, bodies: str, path: str):
    text = fails(ScenarioBadResponse, fake, creds(fake),
                 lambda c: c.download(bodies + path, what="asset a"), max_download_bytes=512 * 1024)
    assert "larger than the 0.5 MB this node accepts" in text
    content, _ = with_client(creds(fake), lambda c: c.download(bodies + path, what="asset a"))
    assert len(content) in (64 * 0x4000, 20 * 1024 * 1024)  # under the default cap it arrives whole


# -- secrets ---------------------------------------------------------------------------------------


def test_a_server_echoing_secrets_and_signed_urls_gets_them_scrubbed(fake: FakeScenario, caplog) -> None:
    """Error paths quote the API's own words: a key, an auth header or a signed URL in them is blanked."""
    auth = "Basic " + base64.b64encode(f"{fake.key}:{fake.secret}".encode()).decode()
    signed = f"{fake.origin}/content/a.png?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIAFAKE"
    echo = {"reason": f"bad key {fake.key} / {fake.secret}", "details": {"auth": auth, "url": signed}}
    fake.add_fault("POST", DETECT, 400, body=echo)
    fake.add_fault("POST", DETECT, 503, body=echo)
    fake.add_fault("GET", "/jobs/", 401, body=echo)
    texts = [
        fails(ScenarioRequestError, fake, creds(fake), lambda c: c.post(DETECT, DETECT_BODY, what="the detect")),
        fails(ScenarioMaybeSent, fake, creds(fake), lambda c: c.post(DETECT, DETECT_BODY, what="the detect")),
        fails(ScenarioError, fake, creds(fake), lambda c: c.get(api_path("jobs", "j"), what="a job")),
        fails(ScenarioBadResponse, fake, creds(fake), lambda c: c.download(signed.replace("http:", "ftp:"), what="a")),
        fails(ScenarioUnreachable, fake, creds(fake),
              lambda c: c.download(signed.replace(str(fake.port), str(_closed_port())), what="a")),
    ]
    for text in texts:
        for needle in (fake.key, fake.secret, auth.split()[1], "deadbeef", "AKIAFAKE"):
            assert needle not in text, (needle, text)
    assert "<redacted>" in texts[0] and "<redacted>" in texts[1]
    for needle in (fake.key, fake.secret, auth.split()[1], "deadbeef", "AKIAFAKE"):
        assert needle not in caplog.text


# -- whole runs: nothing secret reachable from the error a caller gets -------------------------------


def _run_error(fake: FakeScenario, setup: Callable[[FakeScenario], Any], **kwargs: Any) -> BaseException:
    from scenario_support import images, run

    from scenario_detect.nodes.scenario.errors import ScenarioError

    fake.reset()
    setup(fake)
    with pytest.raises(ScenarioError) as info:
        run(fake, images(2), **kwargs)
    return info.value


RUN_FAULTS = {
    "a detect answer that breaks": (lambda f: f.add_fault("POST", DETECT, 200, action="reset", create_job=True), {}),
    "polls failing on every try": (lambda f: f.add_fault("GET", "/jobs/", action="reset", times=1000), {}),
    "a dead download host": (lambda f: setattr(f, "content_url", "dead_host"), {}),
    "a job past timeout_s": (lambda f: (f.queue_outcome("stuck"), f.queue_outcome("stuck")), {"timeout_s": 0.5}),
    "a download past timeout_s": (lambda f: setattr(f, "content_url", "stall"), {"timeout_s": 1.0}),
}


@pytest.mark.parametrize("fault", list(RUN_FAULTS))
def test_no_exception_reachable_from_a_run_error_carries_a_secret(fake: FakeScenario, fault: str) -> None:
    """Through run_scenario (jobs, batch, timeout): the error the node or CLI gets, and everything
    reachable from it by ``__cause__``/``__context__``, holds no key, auth header or signed URL."""
    setup, kwargs = RUN_FAULTS[fault]
    error = _run_error(fake, setup, **kwargs)
    assert_no_secret(str(error), fake)
    assert_chain_holds_no_secret(error, fake)
