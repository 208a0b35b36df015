"""A tiny local stand-in for the Overpass API, for tests that must not touch the network.

It serves ``/api/interpreter`` (POST form or GET query string with ``data=`` the Overpass QL,
as osmnx sends it) with an Overpass JSON response holding fixed elements, and ``/api/status``
in the Overpass text format. It listens on 127.0.0.1 on a free port and records every query.
Point osmnx at it through ``osmnx.settings.overpass_url = server.url`` only.

Example::

    with OverpassStandin(elements) as server:
        ox.settings.overpass_url = server.url
        ...
        assert "power" in server.queries[0]
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

try:
    from tests.data.make_osm import overpass_json
except ModuleNotFoundError:  # run from tests/data itself
    from make_osm import overpass_json  # type: ignore[no-redef]

_STATUS = (
    "Connected as: 2130706433\n"
    "Current time: 2024-01-01T00:00:00Z\n"
    "Announced endpoint: none\n"
    "Rate limit: 2\n"
    "2 slots available now.\n"
    "Currently running queries (pid, space limit, time limit, start time):\n"
)


class OverpassStandin:
    """Threaded HTTP server answering Overpass requests with fixed elements.

    Attributes:
        elements: Overpass JSON elements served for every interpreter query (may be replaced).
        queries: Overpass QL strings received, in order.
        requests: ``(method, path)`` of every request received.
    """

    def __init__(self, elements: list[dict[str, Any]] | None = None) -> None:
        self.elements: list[dict[str, Any]] = list(elements or [])
        self.queries: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL to give osmnx (``settings.overpass_url``), without ``/interpreter``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/api"

    def start(self) -> OverpassStandin:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> OverpassStandin:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _record(self, method: str, path: str, query: str | None) -> list[dict[str, Any]]:
        with self._lock:
            self.requests.append((method, path))
            if query is not None:
                self.queries.append(query)
            return list(self.elements)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                self._answer("GET", parts.path, parse_qs(parts.query))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8")
                self._answer("POST", urlsplit(self.path).path, parse_qs(body))

            def _answer(self, method: str, path: str, params: dict[str, list[str]]) -> None:
                path = path.rstrip("/")
                if path == "/api/status":
                    standin._record(method, path, None)
                    self._send(HTTPStatus.OK, _STATUS.encode(), "text/plain")
                elif path == "/api/interpreter":
                    query = params.get("data", [None])[0]
                    elements = standin._record(method, path, query)
                    if not query:
                        self._send(HTTPStatus.BAD_REQUEST, b"no data= query", "text/plain")
                        return
                    body = json.dumps(overpass_json(elements)).encode()
                    self._send(HTTPStatus.OK, body, "application/json")
                else:
                    standin._record(method, path, None)
                    self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

            def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        return Handler
