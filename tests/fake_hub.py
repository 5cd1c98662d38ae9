"""A loopback HTTP server that answers like the Hugging Face hub's file endpoint, for download tests.

``HEAD``/``GET /<org>/<repo>/resolve/main/<file>`` answer with what huggingface_hub reads:
``X-Repo-Commit``, the ETag (the content's SHA-256 in ``X-Linked-Etag``, as for large files),
``Content-Length``, ``Accept-Ranges`` and ``206`` answers to ``Range: bytes=N-``. The file name picks
a behaviour, so one server covers every case:

- ``missing`` in the name: 404 (``X-Error-Code: EntryNotFound``), like a file the repository lacks;
- ``redirect``: a 302 to ``/cdn/<org>/<repo>/<file>`` on ANOTHER host name (``localhost`` instead of
  ``127.0.0.1``), carrying the linked ETag and size, as the hub sends large files to its CDN;
- ``corrupt``: an announced SHA-256 that does not match the content;
- ``flaky``: the first full ``GET`` sends half the file and closes the connection;
- ``norange``: ``Range`` headers are ignored (a ``200`` with the whole file, as some proxies do);
- the first ``slow_gets`` full ``GET``\\s trickle (64 KiB every 0.2 s), so a Cancel lands mid-file;
- ``mid_file`` (a callable, when set): every full ``GET`` sends its first ``mid_file_at`` bytes
  (64 KiB unless set), calls ``mid_file(key)`` and sends the rest when it returns, so a test holds
  a download mid-file for as long as it wants (driven by its own hooks, not by sleeps).

Content: ``files["org/repo/file"]`` when set, else ``default``. Every request is recorded in
``hits`` as (method, path, Range header).
"""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

COMMIT = "c0ffee" + "0" * 34


class FakeHub:
    def __init__(self, default: bytes = b"") -> None:
        self.default = default
        self.files: dict[str, bytes] = {}
        self.hits: list[tuple[str, str, str]] = []
        self.slow_gets = 0
        self.mid_file: Callable[[str], None] | None = None
        self.mid_file_at = 1 << 16
        self.url = ""

    def content(self, key: str) -> bytes:
        return self.files.get(key, self.default)

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Run the server in a thread; yields its base URL (what ``HF_ENDPOINT`` is set to)."""
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self.url
        finally:
            server.shutdown()
            server.server_close()


def _handler(hub: FakeHub) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # Content-Length framing: a cut body is visible as such

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            self._route(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._route(body=True)

        def _route(self, body: bool) -> None:
            hub.hits.append((self.command, self.path, self.headers.get("Range", "")))
            name = self.path.rsplit("/", 1)[-1]
            cdn = self.path.startswith("/cdn/")
            if not cdn and "/resolve/main/" not in self.path:  # any other hub API (huggingface_hub asks for some)
                return self._reply(404, b"", {}, body)
            key = self.path[len("/cdn/") :] if cdn else self.path.lstrip("/").replace("/resolve/main/", "/", 1)
            payload = hub.content(key)  # key: "org/repo/file"
            sha = "0" * 64 if "corrupt" in name else hashlib.sha256(payload).hexdigest()
            if "missing" in name:
                return self._reply(404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}, body)
            if "redirect" in name and not cdn:
                port = self.server.server_address[1]
                headers = {"Location": f"http://localhost:{port}/cdn/{key}", "X-Repo-Commit": COMMIT,
                           "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(payload))}
                return self._reply(302, b"", headers, body)
            headers = {"X-Repo-Commit": COMMIT, "X-Linked-Etag": f'"{sha}"', "ETag": f'"{sha}"',
                       "Accept-Ranges": "bytes"}
            ranged = None if "norange" in name else re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if body and ranged:
                start = int(ranged.group(1))
                headers["Content-Range"] = f"bytes {start}-{len(payload) - 1}/{len(payload)}"
                return self._reply(206, payload[start:], headers, body)
            if body and "flaky" in name:  # announce the whole file, send half, close
                self._head(200, {**headers, "Content-Length": str(len(payload))})
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return None
            if body and hub.mid_file is not None:
                self._head(200, {**headers, "Content-Length": str(len(payload))})
                head = hub.mid_file_at
                try:
                    self.wfile.write(payload[:head])
                    self.wfile.flush()
                    hub.mid_file(key)
                    self.wfile.write(payload[head:])
                    self.wfile.flush()
                except OSError:  # the client gave up on the file
                    self.close_connection = True
                return None
            if body and hub.slow_gets > 0:
                hub.slow_gets -= 1
                self._head(200, {**headers, "Content-Length": str(len(payload))})
                try:
                    for start in range(0, len(payload), 1 << 16):
                        self.wfile.write(payload[start : start + (1 << 16)])
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:  # the client hung up: that is the point
                    self.close_connection = True
                return None
            return self._reply(200, payload, headers, body)

        def _head(self, status: int, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()

        def _reply(self, status: int, content: bytes, headers: dict[str, str], body: bool) -> None:
            # A HEAD gets the Content-Length the GET would have, and no body.
            self._head(status, {**headers, "Content-Length": str(len(content))})
            if body and content:
                self.wfile.write(content)

    return Handler
