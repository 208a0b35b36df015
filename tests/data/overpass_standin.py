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
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

try:
    from tests.data.loopback import LoopbackServer
    from tests.data.make_osm import overpass_json
except ModuleNotFoundError:  # run from tests/data itself
    from loopback import LoopbackServer  # type: ignore[no-redef]
    from make_osm import overpass_json  # type: ignore[no-redef]

_STATUS = (
    "Connected as: 2130706433\n"
    "Current time: 2024-01-01T00:00:00Z\n"
    "Announced endpoint: none\n"
    "Rate limit: 2\n"
    "2 slots available now.\n"
    "Currently running queries (pid, space limit, time limit, start time):\n"
)


class OverpassStandin(LoopbackServer):
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
        super().__init__()

    @property
    def url(self) -> str:
        """Base URL to give osmnx (``settings.overpass_url``), without ``/interpreter``."""
        return f"{self.base_url}/api"

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


def point_osmnx_at(monkeypatch: Any, server: OverpassStandin) -> None:
    """Send osmnx's Overpass queries to ``server`` only, through osmnx's settings: no cache,
    no rate-limit pause, no DNS over HTTPS to another host, no proxy; osmnx pins the Overpass
    host by replacing ``socket.getaddrinfo``, which the monkeypatch undoes afterwards."""
    import socket

    import osmnx as ox

    monkeypatch.setattr(ox.settings, "overpass_url", server.url)
    monkeypatch.setattr(ox.settings, "overpass_rate_limit", False)
    monkeypatch.setattr(ox.settings, "use_cache", False)
    monkeypatch.setattr(ox.settings, "requests_timeout", 10)
    monkeypatch.setattr(ox.settings, "doh_url_template", None)
    monkeypatch.setattr(socket, "getaddrinfo", socket.getaddrinfo)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
