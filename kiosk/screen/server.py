"""A tiny local HTTP server for the door screen: GET / (the page) and GET /state.json."""

from __future__ import annotations

import html
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kiosk.screen.page import PAGE_HTML
from kiosk.screen.state import ScreenState

logger = logging.getLogger(__name__)


# Host names the door screen answers to when it listens on the loopback address: a web page
# in the Pi's browser that rebinds its own DNS name to 127.0.0.1 sends its own name as Host, and
# is refused, so it cannot read the names of people arriving.
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


def host_allowed(host_header: str | None, bound_host: str) -> bool:
    """Whether a request's Host header (e.g. "127.0.0.1:8081") may see the screen bound to
    bound_host: loopback names only, unless the screen was put on another address on purpose."""
    if bound_host not in LOCAL_HOSTS:
        return True  # screen.host set to a network address: whoever reaches it may see it
    name = (host_header or "").strip().lower()
    if name.startswith("["):
        name = name.split("]", 1)[0] + "]"
    else:
        name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    return name in LOCAL_HOSTS


def _handler(state: ScreenState, title: str, bound_host: str) -> type[BaseHTTPRequestHandler]:
    page = PAGE_HTML.replace("{{TITLE}}", html.escape(title)).encode("utf-8")  # site.name is text, not markup

    class Handler(BaseHTTPRequestHandler):
        server_version = "kiosk-screen"

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            path = self.path.split("?", 1)[0]
            if not host_allowed(self.headers.get("Host"), bound_host):
                self._send(403, "text/plain; charset=utf-8", b"forbidden\n")
            elif path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", page)
            elif path == "/state.json":
                body = json.dumps(state.snapshot()).encode("utf-8")
                self._send(200, "application/json", body)
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found\n")

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: Any) -> None:
            logger.debug("screen %s", fmt % args)

    return Handler


class ScreenServer:
    """Serves the door screen from a daemon thread; port 0 picks a free port (see .port)."""

    def __init__(self, state: ScreenState, host: str = "127.0.0.1", port: int = 8081,
                 title: str = "Attendance") -> None:
        self.state = state
        self._httpd = ThreadingHTTPServer((host, port), _handler(state, title, host))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """http://host:port/ of the page."""
        host = self._httpd.server_address[0]
        if isinstance(host, bytes):
            host = host.decode("ascii")
        return f"http://{host}:{self.port}/"

    def start(self) -> ScreenServer:
        """Serve in a background thread; returns self."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="screen", daemon=True)
        self._thread.start()
        logger.info("door screen at %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
