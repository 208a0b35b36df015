"""A small local STAC API, for tests that must not touch the network.

It serves a landing page that conforms to STAC API item search, ``/search`` (GET and POST,
filtering by collection, bbox and datetime), and the asset files under ``/files/`` with HTTP
range requests (206 Partial Content), as GDAL's ``/vsicurl/`` reads COGs. It listens on
127.0.0.1 on a free port and records every request. ``mode`` makes it misbehave: ``"hang"``
accepts connections and never answers, ``"garbage"`` answers every request with HTML, and
``"broken-assets"`` serves truncated asset files.

Example::

    with StacStandin(items, files=root) as server:
        client = pystac_client.Client.open(server.url)
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from tests.data.loopback import LoopbackServer

Mode = Literal["ok", "hang", "garbage", "broken-assets"]
_CONFORMS = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
]


def _parse_time(text: str) -> dt.datetime | None:
    if text in ("", ".."):
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _matches(item: dict[str, Any], params: dict[str, Any]) -> bool:
    if params.get("collections") and item.get("collection") not in params["collections"]:
        return False
    if params.get("bbox"):
        x0, y0, x1, y1 = (float(v) for v in params["bbox"])
        a0, b0, a1, b1 = item["bbox"]
        if a0 > x1 or a1 < x0 or b0 > y1 or b1 < y0:
            return False
    if params.get("datetime"):
        start, _, end = str(params["datetime"]).partition("/")
        when = _parse_time(item["properties"]["datetime"])
        lo, hi = _parse_time(start), _parse_time(end or start)
        if when is None or (lo and when < lo) or (hi and when > hi):
            return False
    cloud = (params.get("query") or {}).get("eo:cloud_cover", {}).get("lte")
    return not (cloud is not None and item["properties"].get("eo:cloud_cover", 0) > cloud)


class StacStandin(LoopbackServer):
    """Threaded HTTP server answering STAC item searches and serving asset files.

    Attributes:
        items: item dicts served (their asset hrefs should point at :attr:`files_url`).
        requests: ``(method, path)`` of every request received.
        mode: how it behaves (see the module docstring); may be changed while it runs.
    """

    def __init__(
        self, items: list[dict[str, Any]], *, files: Path | None = None, mode: Mode = "ok"
    ) -> None:
        self.items = items
        self.files = files
        self.mode: Mode = mode
        self.busy = 0  # answer this many more requests with 503 Service Unavailable
        self.requests: list[tuple[str, str]] = []
        self._stop = threading.Event()
        super().__init__()

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def files_url(self) -> str:
        return f"{self.url}/files"

    def asset_requests(self) -> int:
        with self._lock:
            return sum(1 for _, p in self.requests if p.startswith("/files/"))

    def stop(self) -> None:
        self._stop.set()  # a hanging answer ends
        super().stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

            def do_HEAD(self) -> None:
                self._answer("HEAD", {})

            def do_GET(self) -> None:
                q = parse_qs(urlsplit(self.path).query)
                params: dict[str, Any] = {k: v[0] for k, v in q.items()}
                if "bbox" in params:
                    params["bbox"] = params["bbox"].split(",")
                if "collections" in params:
                    params["collections"] = params["collections"].split(",")
                if "query" in params:
                    params["query"] = json.loads(params["query"])
                self._answer("GET", params)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                self._answer("POST", json.loads(body or b"{}"))

            def _answer(self, method: str, params: dict[str, Any]) -> None:
                path = urlsplit(self.path).path
                with standin._lock:
                    standin.requests.append((method, path))
                    busy = standin.busy > 0
                    standin.busy -= busy
                if busy:
                    self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"busy", "text/plain")
                    return
                if standin.mode == "hang":
                    standin._stop.wait(120)  # bounded: the server's stop ends it
                    return
                if standin.mode == "garbage":
                    self._send(HTTPStatus.OK, b"<html>maintenance</html>", "text/html")
                    return
                if path.startswith("/files/"):
                    self._file(method, path[len("/files/") :])
                elif path in ("", "/"):
                    self._json(self._landing())
                elif path == "/search":
                    feats = [d for d in standin.items if _matches(d, params)]
                    self._json({"type": "FeatureCollection", "features": feats, "links": []})
                else:
                    self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

            def _landing(self) -> dict[str, Any]:
                base = standin.url
                return {
                    "type": "Catalog",
                    "stac_version": "1.0.0",
                    "id": "standin",
                    "description": "local STAC API stand-in",
                    "conformsTo": _CONFORMS,
                    "links": [
                        {"rel": "self", "href": base + "/", "type": "application/json"},
                        {"rel": "root", "href": base + "/", "type": "application/json"},
                        {"rel": "search", "href": base + "/search", "method": "GET",
                         "type": "application/geo+json"},
                        {"rel": "search", "href": base + "/search", "method": "POST",
                         "type": "application/geo+json"},
                    ],
                }  # fmt: skip

            def _file(self, method: str, rel: str) -> None:
                root = standin.files
                path = (root / rel).resolve() if root is not None else None
                if path is None or root is None or not path.is_relative_to(root.resolve()):
                    self._send(HTTPStatus.FORBIDDEN, b"", "text/plain")
                    return
                if not path.is_file():
                    self._send(HTTPStatus.NOT_FOUND, b"", "text/plain")
                    return
                data = path.read_bytes()
                if standin.mode == "broken-assets":
                    data = data[: min(len(data), 600)]
                size = len(data)
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start_s, _, end_s = rng[6:].partition("-")
                    start = int(start_s or 0)
                    end = min(int(end_s) if end_s else size - 1, size - 1)
                    if start >= size:
                        self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.end_headers()
                        return
                    body = data[start : end + 1]
                    self.send_response(HTTPStatus.PARTIAL_CONTENT)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                else:
                    body = data
                    self.send_response(HTTPStatus.OK)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "image/tiff")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(body)

            def _json(self, obj: Any) -> None:
                self._send(HTTPStatus.OK, json.dumps(obj).encode(), "application/json")

            def _send(self, status: HTTPStatus, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        return Handler
